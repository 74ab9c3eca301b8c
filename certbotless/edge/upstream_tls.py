"""How the edge reaches a service as its Traefik serversTransport says
(upstream_options.ServersTransport): over HTTPS, the service's certificate verified against the
transport's rootCAs (a file of the rendered configuration) or the image's CAs, for its
serverName; the dial and response timeouts."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from certbotless.edge.mounts import SYSTEM_CAS, UPSTREAM_CA_DIR
from certbotless.model import Route


def upstream_ca_target(pem: str) -> str:
    return f"{UPSTREAM_CA_DIR}/{hashlib.sha256(pem.encode()).hexdigest()[:16]}.pem"


def upstream_ca_files(routes: Iterable[Route]) -> dict[str, str]:
    """The rootCAs of the routes' serversTransports (target → PEM)."""
    pems = {route.upstream.transport.ca_pem for route in routes if route.upstream_scheme == "https"}
    return {upstream_ca_target(pem): pem for pem in sorted(pems) if pem}


def transport_directives(route: Route) -> list[str]:
    """The route's serversTransport: Go's dial timeout is nginx's connect timeout; its
    response header timeout is nginx's read timeout (which also bounds each wait between
    reads of the body, where Go's stops at the headers); over HTTPS, verification as Go's
    client does it, any chain length."""
    transport = route.upstream.transport
    lines = []
    if transport.connect_timeout:
        lines.append(f"proxy_connect_timeout {transport.connect_timeout};")
    if transport.response_timeout and route.timeout is None:
        lines.append(f"proxy_read_timeout {transport.response_timeout};")
    if route.upstream_scheme == "https" and transport.verify:
        ca = upstream_ca_target(transport.ca_pem) if transport.ca_pem else SYSTEM_CAS
        lines += ["proxy_ssl_verify on;", "proxy_ssl_verify_depth 100;",
                  f"proxy_ssl_trusted_certificate {ca};"]  # fmt: skip
    return lines
