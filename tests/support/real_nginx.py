"""A real nginx on loopback running certbotless's rendered configuration, and the echo service
behind it: what tests use to check, by sending requests, that a route behaves as its labels say.
nginx listens on random ports; every upstream is reached at 127.0.0.1."""

from __future__ import annotations

import base64
import http.client
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from types import MappingProxyType

from certbotless.edge.render import render_nginx_conf
from certbotless.edge.validation import _write_scratch_tree
from certbotless.model import Route
from tests.support.factories import CERTS_DIR, RESPONDER
from tests.support.ports import unused_ports

HOST = "app.example.com"
ECHO_PORT_HEADER = "X-Echo-Port"  # which echo server answered: tells routers apart


class _Echo(BaseHTTPRequestHandler):
    """Answers every method with the path it was asked for and the Authorization it got."""

    def _answer(self) -> None:
        body = f"{self.path} {self.headers.get('Authorization', '-')}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header(ECHO_PORT_HEADER, str(self.request.getsockname()[1]))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _answer

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def echo_servers(count: int) -> Iterator[list[int]]:
    """`count` echo services on loopback; yields their ports."""
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _Echo) for _ in range(count)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield [int(server.server_address[1]) for server in servers]
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def serve_routes(
    routes: Sequence[Route],
    tmp_path: Path,
    extra: Mapping[str, str] = MappingProxyType({}),
    front_subnets: Sequence[str] = (),
) -> tuple[subprocess.Popen[bytes], int]:
    """nginx serving `routes` (the rendered configuration, and `extra` files: target → text,
    as the edge would mount them); returns the process and its plain-HTTP port. With
    `front_subnets`, every connection must start with a PROXY protocol header."""
    files = render_nginx_conf(routes, {}, RESPONDER, CERTS_DIR, front_subnets=front_subnets)
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
    for _ in range(200):
        if nginx.poll() is not None:
            raise AssertionError((tmp_path / "stderr").read_text())
        if "start worker process" in (tmp_path / "stderr").read_text() or _listening(port):
            return nginx, port
        time.sleep(0.025)
    nginx.kill()
    raise AssertionError("nginx did not listen within 5 s")


def _listening(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=0.1)
        connection.connect()
        connection.close()
        return True
    except OSError:
        return False


def stop(nginx: subprocess.Popen[bytes]) -> None:
    nginx.terminate()
    nginx.wait(timeout=10)


def get(
    port: int,
    path: str = "/",
    auth: str | None = None,
    method: str = "GET",
    headers: Mapping[str, str] = MappingProxyType({}),
) -> tuple[int, str]:
    """(status, body) of one request to HOST."""
    status, body, _ = answer_with_headers(port, method, path, headers, auth)
    return status, body


def answer_with_headers(
    port: int,
    method: str,
    path: str,
    headers: Mapping[str, str],
    auth: str | None = None,
) -> tuple[int, str, dict[str, str]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    sent = {"Host": HOST, **headers}
    if auth is not None:
        sent["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    connection.request(method, path, headers=sent)
    response = connection.getresponse()
    return response.status, response.read().decode(), dict(response.getheaders())
