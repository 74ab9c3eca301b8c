"""Routes to h2c services (Traefik's scheme h2c: HTTP/2 without TLS, edge/h2c.py): nginx's
grpc_pass proxies ordinary requests over h2c, with the headers an http route sends. The
service is an h2c front (tests/support/edge_nginx.py: it refuses anything but HTTP/2) before an
echo server; on the edge image's nginx generation (pooled upstreams) and bookworm's 1.22."""

from __future__ import annotations

from pathlib import Path

import pytest

from certbotless.edge.h2c import as_grpc
from certbotless.model import Route
from tests.support.edge_nginx import (
    FRONT_PROTOCOL_HEADER,
    HOST,
    LOCAL_NGINX,
    Echo,
    NginxBinary,
    echo_upstream,
    h2c_front,
    request,
    serve_routes,
    stop,
)


def _through_h2c(edge: NginxBinary, route: Route, tmp_path: Path) -> None:
    """GET and POST through the edge to the h2c service: its answer, and what reached it."""
    with echo_upstream() as echo, h2c_front(echo, tmp_path / "front", edge) as port:
        h2c = Route("127.0.0.1", (HOST,), port, redirect_to_https=False, upstream_scheme="h2c")
        nginx, http_port, _ = serve_routes([h2c, route], tmp_path / "edge", binary=edge)
        try:
            Echo.seen.clear()
            spoofed = [("X-Forwarded-For", "203.0.113.9")]
            status, body, headers = request(http_port, "/a%2Fb?q=1", headers=spoofed)
            assert (status, body) == (200, "/a%2Fb?q=1 -")
            # HTTP/2's names are lower case (as Traefik gets them too; Go's are canonical)
            assert {k.lower(): v for k, v in headers.items()}["x-echo-port"] == str(echo)
            path, seen = Echo.seen[-1]
            assert path == "/a%2Fb?q=1"  # the request target as the client wrote it
            assert seen[FRONT_PROTOCOL_HEADER.lower()] == "HTTP/2.0"
            assert seen["host"] == HOST
            assert seen["x-forwarded-for"] == "127.0.0.1"  # the client's address, not its word
            assert (seen["x-forwarded-proto"], seen["x-forwarded-host"]) == ("http", HOST)
            assert seen["x-real-ip"] == "127.0.0.1"
            status, body, _ = request(http_port, "/form", method="POST",
                                      headers=[("Content-Length", "5")], body=b"hello")  # fmt: skip
            assert (status, body) == (200, "/form -")
            assert Echo.seen[-1][1]["content-length"] == "5"
        finally:
            stop(nginx)


def test_the_edge_images_nginx_proxies_to_h2c_services(newest: NginxBinary, tmp_path: Path) -> None:
    other = Route("127.0.0.1", ("other.example.com",), 9, redirect_to_https=False)
    _through_h2c(newest, other, tmp_path)


def test_bookworms_nginx_proxies_to_h2c_services(tmp_path: Path) -> None:
    other = Route("127.0.0.1", ("other.example.com",), 9, redirect_to_https=False)
    _through_h2c(LOCAL_NGINX, other, tmp_path)


def test_h2c_directives_are_grpc_counterparts_without_http1s_own() -> None:
    written = as_grpc(
        "\n            proxy_pass $upstream;"
        "\n            proxy_http_version 1.1;"
        "\n            proxy_set_header Host $host;"
        "\n            proxy_set_header Connection $connection_upgrade;"
        "\n            proxy_next_upstream_tries 3;"
    )
    assert written.split() == ["grpc_pass", "$upstream;", "grpc_set_header", "Host", "$host;",
                               "grpc_next_upstream_tries", "3;"]  # fmt: skip
    with pytest.raises(ValueError, match="proxy_buffering"):
        as_grpc("\n            proxy_buffering off;")
    with pytest.raises(ValueError, match="upstream"):
        as_grpc('\n            if ($x) { set $upstream "${upstream}/a$is_args$args"; }')
