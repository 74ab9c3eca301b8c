"""Upstream keep-alive (edge/upstreams.py): on the edge image's nginx generation (>= 1.27.3: the
rig's unpacked Debian forky, nginx 1.30) requests reuse pooled connections to the service, and
upgrades still pass; on bookworm's nginx 1.22 each request has its connection, as before."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import pytest

from certbotless.edge.upstreams import UPSTREAM_RESOLVE_SINCE
from certbotless.model import Route
from tests.support.edge_nginx import (
    HOST,
    LOCAL_NGINX,
    NginxBinary,
    request,
    serve_routes,
    serving,
    stop,
)

REQUESTS = 30


class KeepAlive(BaseHTTPRequestHandler):
    """An HTTP/1.1 service that keeps connections open; notes each request's connection (the
    client port nginx used) and its Connection and Upgrade headers."""

    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[tuple[int, str, str]]] = []

    def do_GET(self) -> None:
        KeepAlive.seen.append((self.client_address[1], self.headers.get("Connection", ""),
                               self.headers.get("Upgrade", "")))  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def service() -> Iterator[int]:
    KeepAlive.seen.clear()
    with serving(KeepAlive) as port:
        yield port


def _connections(binary: NginxBinary, port: int, tmp_path: Path) -> set[int]:
    route = Route("127.0.0.1", (HOST,), port, redirect_to_https=False)
    nginx, http_port, _ = serve_routes([route], tmp_path / "edge", binary=binary)
    try:
        for _ in range(REQUESTS):
            assert request(http_port)[0] == 200
        status, _, _ = request(http_port, headers=[("Upgrade", "websocket"),
                                                   ("Connection", "Upgrade")])  # fmt: skip
        assert status == 200
    finally:
        stop(nginx)
    return {connection for connection, _, _ in KeepAlive.seen[:REQUESTS]}


def test_the_edge_images_nginx_reuses_connections_to_the_service(
    newest: NginxBinary, service: int, tmp_path: Path
) -> None:
    # One pool per worker: at most as many connections as workers, not one per request.
    assert len(_connections(newest, service, tmp_path)) <= 4
    assert {connection for _, connection, _ in KeepAlive.seen[:REQUESTS]} == {""}
    assert KeepAlive.seen[-1][1:] == ("upgrade", "websocket")  # an upgrade still passes


def test_bookworms_nginx_connects_per_request(service: int, tmp_path: Path) -> None:
    assert LOCAL_NGINX.version < UPSTREAM_RESOLVE_SINCE
    assert len(_connections(LOCAL_NGINX, service, tmp_path)) == REQUESTS
