"""The rig's client loops (rig/traffic.py) move to the next address when one refuses, as
browsers do with several A records, and count that apart from failures."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography.x509.oid import NameOID

from rig.traffic import KeepAliveLoop, NewConnectionLoop, Target
from tests.support.client_ca import throwaway_ca

ANSWERING, REFUSING = "127.0.0.2", "127.0.0.1"


class _Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def answering(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """An HTTPS server on ANSWERING only (its port is closed on REFUSING); (port, CA file)."""
    server = ThreadingHTTPServer((ANSWERING, 0), _Ok)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    issued = throwaway_ca().issue(((NameOID.COMMON_NAME, "front"),), ip=ANSWERING)
    context.load_cert_chain(*issued.files(tmp_path, "server"))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    (tmp_path / "ca.pem").write_text(throwaway_ca().cert_pem)
    yield int(server.server_address[1]), tmp_path / "ca.pem"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("kind", [NewConnectionLoop, KeepAliveLoop])
def test_a_refused_address_is_left_for_the_next_and_counted_as_a_failover(
    answering: tuple[int, Path], kind: type[NewConnectionLoop] | type[KeepAliveLoop]
) -> None:
    port, ca = answering
    target = Target(REFUSING, port, ANSWERING, ca_file=ca, alternates=(ANSWERING,))
    with kind(target, max_requests=5, max_seconds=10) as loop:
        assert loop.wait(15)
    summary = loop.summary()
    assert (summary.requests, summary.failed, summary.failovers) == (5, 0, 1), summary
    [refused] = summary.failover_errors
    assert refused.startswith(f"{REFUSING}: ConnectionRefusedError")


def test_without_alternates_a_refusal_is_a_failure(answering: tuple[int, Path]) -> None:
    port, ca = answering
    with NewConnectionLoop(Target(REFUSING, port, ANSWERING, ca_file=ca), max_requests=2,
                           max_seconds=5) as loop:  # fmt: skip
        assert loop.wait(10)
    assert (loop.failed, loop.summary().failovers) == (2, 0)


def test_a_tls_answer_is_not_a_refusal(answering: tuple[int, Path], tmp_path: Path) -> None:
    """A certificate that fails verification came from a server that answered: a failure."""
    port, _ = answering
    other = tmp_path / "other-ca.pem"
    other.write_text(throwaway_ca().issue(((NameOID.COMMON_NAME, "x"),)).cert_pem)
    target = Target(ANSWERING, port, ANSWERING, ca_file=other, alternates=(REFUSING,))
    with NewConnectionLoop(target, max_requests=1, max_seconds=5) as loop:
        assert loop.wait(10)
    assert (loop.failed, loop.summary().failovers) == (1, 0)
