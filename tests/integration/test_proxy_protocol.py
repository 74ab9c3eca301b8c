"""The sidecar's own checks against an nginx that listens with PROXY protocol, as the edge does
behind the L4 front: a real nginx on loopback, a real challenge responder, a real TLS listener.
nginx must accept the checks' LOCAL header, and refuse a connection that sends none."""

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from certbotless.acme.challenges import TokenStore
from certbotless.acme.http01 import ChallengeNotServed, EdgeSelfCheck
from certbotless.acme.responder import ChallengeResponder
from certbotless.edge.rollout import ServedCertificates
from certbotless.edge.snippets import placeholder_certificate
from certbotless.proxy_protocol import PROXY_V2_LOCAL
from certbotless.swarm.store import serial_hex
from tests.conftest import IN_CI
from tests.support.ports import unused_ports


@dataclass(frozen=True)
class EdgeBehindFront:
    http_port: int
    https_port: int
    serial: str


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EdgeBehindFront, TokenStore]]:
    if shutil.which("nginx") is None:
        if IN_CI:
            pytest.fail("nginx is not installed (apt-get install nginx-light)")
        pytest.skip("nginx is not installed")
    work = tmp_path_factory.mktemp("pp-nginx")
    tokens = TokenStore(work / "tokens")
    responder = ChallengeResponder(tokens, "127.0.0.1", 0)
    responder.start()
    chain, key = placeholder_certificate()
    (work / "chain.pem").write_bytes(chain)
    (work / "key.pem").write_bytes(key)
    for _attempt in range(3):  # another process may take a chosen port before nginx binds it
        http_port, https_port = unused_ports(2)
        nginx = start_nginx(work, http_port, https_port, responder.port)
        if nginx is not None:
            break
    else:
        raise AssertionError("nginx did not listen: " + (work / "error.log").read_text())
    serial = serial_hex(x509.load_pem_x509_certificate(chain).serial_number)
    try:
        yield EdgeBehindFront(http_port, https_port, serial), tokens
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
        responder.stop()


def start_nginx(
    work: Path, http_port: int, https_port: int, responder_port: int
) -> subprocess.Popen[bytes] | None:
    """nginx listening with PROXY protocol on both ports, or None when it did not come up."""
    (work / "nginx.conf").write_text(
        f"""
pid {work}/nginx.pid;
error_log {work}/error.log;
events {{}}
http {{
    access_log off;
    server {{
        listen 127.0.0.1:{http_port} proxy_protocol;
        location /.well-known/acme-challenge/ {{
            proxy_pass http://127.0.0.1:{responder_port};
        }}
    }}
    server {{
        listen 127.0.0.1:{https_port} ssl proxy_protocol;
        ssl_certificate {work}/chain.pem;
        ssl_certificate_key {work}/key.pem;
    }}
}}
"""
    )
    nginx = subprocess.Popen(
        ["nginx", "-p", f"{work}/", "-c", f"{work}/nginx.conf", "-g", "daemon off;"],
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and nginx.poll() is None:
        try:
            for port in (http_port, https_port):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return nginx
        except OSError:
            time.sleep(0.05)
    if nginx.poll() is None:
        nginx.terminate()
    nginx.wait(timeout=10)
    return None


def test_the_challenge_self_check_speaks_proxy_protocol_to_each_edge_task(
    edge: tuple[EdgeBehindFront, TokenStore],
) -> None:
    server, tokens = edge
    tokens.put("Tok_pp_0123456789abcdefghij", "Tok_pp_0123456789abcdefghij.thumbprint")
    EdgeSelfCheck(
        "localhost", timeout=5, port=server.http_port, proxy_protocol=True
    ).wait_until_served(
        "a.example.test", "Tok_pp_0123456789abcdefghij", "Tok_pp_0123456789abcdefghij.thumbprint"
    )
    # Without the header nginx reads the request line as a broken PROXY header and closes.
    with pytest.raises(ChallengeNotServed, match="does not serve the HTTP-01 token"):
        EdgeSelfCheck("localhost", timeout=0.5, port=server.http_port).wait_until_served(
            "a.example.test",
            "Tok_pp_0123456789abcdefghij",
            "Tok_pp_0123456789abcdefghij.thumbprint",
        )


def test_the_served_certificate_check_speaks_proxy_protocol_over_tls(
    edge: tuple[EdgeBehindFront, TokenStore],
) -> None:
    server, _ = edge
    behind_front = ServedCertificates("localhost", server.https_port, proxy_protocol=True)
    assert set(behind_front.serials("a.example.test").values()) == {server.serial}
    direct = ServedCertificates("localhost", server.https_port, timeout=1)
    assert all(s.startswith("no TLS answer") for s in direct.serials("a.example.test").values())


def test_the_header_is_proxy_v2_local() -> None:
    assert PROXY_V2_LOCAL[:12] == bytes.fromhex("0d0a0d0a000d0a515549540a")
    assert PROXY_V2_LOCAL[12] == 0x20  # version 2, LOCAL
    assert int.from_bytes(PROXY_V2_LOCAL[14:16], "big") == 0  # no address block
