"""Routes for IP addresses (RFC 8738 certificates), asked of a real nginx on loopback: a client
writes an IPv6 address in brackets in its Host header (RFC 3986), in RFC 5952's form as
browsers serialize it, with or without a port."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from certbotless.model import Route
from tests.support.edge_nginx import request, serve_routes, stop


class Named(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"the address's service"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Named)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = int(server.server_address[1])
    routes = [Route("127.0.0.1", (address,), port, redirect_to_https=False)
              for address in ("2001:db8::7", "192.0.2.10")]  # fmt: skip
    nginx, http_port, _ = serve_routes(routes, Path(tmp_path_factory.mktemp("ip")) / "e")
    try:
        yield http_port
    finally:
        stop(nginx)
        server.shutdown()


@pytest.mark.parametrize(
    ("host", "served"),
    [
        ("[2001:db8::7]", True),
        ("[2001:DB8::7]:80", True),
        ("192.0.2.10", True),
        ("192.0.2.10:80", True),
        ("[2001:db8::8]", False),
        ("2001-db8--7", False),
    ],
)
def test_an_address_is_served_by_its_route_only(edge: int, host: str, served: bool) -> None:
    status, body, _ = request(edge, host=host)
    assert (status == 200 and body == "the address's service") is served, (status, body)
