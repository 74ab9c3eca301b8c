"""A host with several routes is served through edge/dispatch.py's named locations: what a
route's own location does must still happen there (error pages, forward auth, body limits),
checked by asking a real nginx on loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from certbotless.model import ErrorPages, Route
from tests.support.edge_nginx import HOST, request, serve_routes, stop


class Service(BaseHTTPRequestHandler):
    """/err/… answers a custom page; /check answers 200 with `Authorization: Bearer ok`, else
    401 (forward auth); /missing… 404; anything else 200 with the path."""

    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        status, body = 200, f"served {self.path}"
        if self.path.startswith("/err/"):
            body = f"custom error page {self.path}"
        elif self.path.startswith("/check"):
            status = 200 if self.headers.get("Authorization") == "Bearer ok" else 401
        elif self.path.startswith("/missing"):
            status, body = 404, "plain 404"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Service)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = int(server.server_address[1])
    # Letters right after {status}: the URL once rendered the unknown variable $statuspage.
    errors = ErrorPages(f"http://127.0.0.1:{port}/err/{{status}}page.html", (404,))
    routes = [
        Route("127.0.0.1", (HOST,), port, redirect_to_https=False, error_pages=errors),
        Route("127.0.0.1", (HOST,), port, path="/api", redirect_to_https=False,
              auth_url=f"http://127.0.0.1:{port}/check"),
        Route("127.0.0.1", (HOST,), port, path="/upload", redirect_to_https=False,
              max_body_size="1k"),
    ]  # fmt: skip
    nginx, http_port, _ = serve_routes(routes, Path(tmp_path_factory.mktemp("dispatch")) / "e")
    try:
        yield http_port
    finally:
        stop(nginx)
        server.shutdown()
        server.server_close()


def test_several_routes_go_through_named_locations(edge: int) -> None:
    status, body, _ = request(edge, "/hello")
    assert (status, body) == (200, "served /hello")


def test_a_routes_error_pages_apply_in_its_named_location(edge: int) -> None:
    status, body, _ = request(edge, "/missing/page")
    assert (status, body) == (404, "custom error page /err/404page.html")


def test_forward_auth_guards_a_named_location(edge: int) -> None:
    assert request(edge, "/api/x")[0] == 401
    granted = request(edge, "/api/x", headers=[("Authorization", "Bearer ok")])
    assert granted[:2] == (200, "served /api/x")


def test_a_routes_body_limit_holds_in_its_named_location_and_not_beyond(edge: int) -> None:
    small = request(edge, "/upload", "POST", [("Content-Length", "1024")], body=b"x" * 1024)
    large = request(edge, "/upload", "POST", [("Content-Length", "1025")], body=b"x" * 1025)
    assert (small[0], large[0]) == (200, 413)
    # nginx's own 1m applies to a route without a limit, not the upload route's 1k.
    assert request(edge, "/other", "POST", [("Content-Length", "4096")], body=b"x" * 4096)[0] == 200
