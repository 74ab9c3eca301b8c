"""A real nginx on loopback running a rendered configuration, an echo upstream behind it, and
plain HTTP requests to it: what the edge-request tests of every dialect share."""

from __future__ import annotations

import base64
import http.client
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from types import MappingProxyType

import pytest

from certbotless.edge.render import render_nginx_conf
from certbotless.edge.validation import _write_scratch_tree
from certbotless.model import Route
from tests.support.factories import CERTS_DIR, RESPONDER
from tests.support.ports import unused_ports

HOST = "app.example.com"


class _Echo(BaseHTTPRequestHandler):
    """Answers every request with its path (as it reached the service) and its Authorization;
    X-Served-By names the port it listens on, for tests with several upstreams."""

    def _answer(self) -> None:
        body = f"{self.path} {self.headers.get('Authorization', '-')}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Served-By", str(self.server.server_address[1]))  # type: ignore[index]
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


def start_echo() -> tuple[ThreadingHTTPServer, int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, int(server.server_address[1])


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    """An echo upstream's port."""
    server, port = start_echo()
    yield port
    server.shutdown()


def serve_routes(
    routes: Sequence[Route], tmp_path: Path, extra: Mapping[str, str] = MappingProxyType({})
) -> tuple[subprocess.Popen[bytes], int]:
    """nginx serving `routes` (the rendered configuration, and `extra` files: target → text,
    as the edge would mount them), plain HTTP on a random loopback port."""
    files = render_nginx_conf(routes, {}, RESPONDER, CERTS_DIR, front_subnets=())
    files.update(extra)
    port, tls_port = unused_ports(2)
    files = {
        target: text.replace("listen 80", f"listen 127.0.0.1:{port}")
        .replace("listen 443", f"listen 127.0.0.1:{tls_port}")
        .replace("access_log /dev/stdout certbotless;", "access_log off;")
        for target, text in files.items()
    }
    tmp_path.mkdir(parents=True)
    _write_scratch_tree(files, Path("/"), PurePosixPath(tmp_path))
    nginx = subprocess.Popen(
        ["nginx", "-p", f"{tmp_path}/", "-c", f"{tmp_path}/nginx.conf", "-g",
         f"daemon off; pid {tmp_path}/nginx.pid; user root;"],  # workers read pytest's 0700 dirs
        stderr=(tmp_path / "stderr").open("wb"),
    )  # fmt: skip
    for _ in range(100):
        if nginx.poll() is not None:
            raise AssertionError((tmp_path / "stderr").read_text())
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return nginx, port
        except OSError:
            time.sleep(0.05)
    nginx.kill()
    raise AssertionError("nginx did not listen within 5 s")


def request(
    port: int,
    path: str = "/",
    method: str = "GET",
    headers: Sequence[tuple[str, str]] = (),
    host: str = HOST,
) -> tuple[int, str, dict[str, str]]:
    """(status, body, answer headers); `headers` in order, a name may come twice."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    connection.putheader("Host", host)
    for name, value in headers:
        connection.putheader(name, value)
    connection.endheaders()
    response = connection.getresponse()
    return response.status, response.read().decode(), dict(response.getheaders())


def get(
    port: int,
    path: str = "/",
    auth: str | None = None,
    method: str = "GET",
    headers: Mapping[str, str] = MappingProxyType({}),
) -> tuple[int, str]:
    """(status, body) of one request to HOST, with basic-auth credentials `auth` (user:password)."""
    sent = list(headers.items())
    if auth is not None:
        sent.append(("Authorization", "Basic " + base64.b64encode(auth.encode()).decode()))
    status, body, _ = request(port, path, method, sent)
    return status, body
