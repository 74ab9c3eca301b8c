"""Routes to h2c services (Traefik's scheme h2c: HTTP/2 without TLS, as gRPC services speak).
nginx's grpc_pass proxies any HTTP request over h2c, not only gRPC calls, so an h2c route's
location is the one an http route has, each proxy_* directive given its grpc_* counterpart;
HTTP/1.1's own (its version, the Upgrade and Connection headers) have no place in HTTP/2 and
are left out. A raw request target in the upstream's address (the path middlewares' way of
keeping the client's escapes) has none: grpc_pass takes an address only, so labels refuse those
middlewares on h2c routes, and meeting one here is a bug."""

from __future__ import annotations

import re

# proxy_* directives of a route's location that grpc_* has too.
_COUNTERPARTS = frozenset({
    "pass", "set_header", "hide_header", "read_timeout", "send_timeout", "connect_timeout",
    "next_upstream", "next_upstream_tries", "next_upstream_timeout", "intercept_errors",
    "ssl_server_name", "ssl_name",
})  # fmt: skip
_HTTP1_ONLY = ("proxy_http_version ", "proxy_set_header Upgrade ", "proxy_set_header Connection ")
_DIRECTIVE = re.compile(r"^(\s*)proxy_([a-z_]+)\s")
_RAW_TARGET = 'set $upstream "${upstream}'


def as_grpc(directives: str) -> str:
    """A location's directives (one a line) for an h2c upstream."""
    lines = []
    for line in directives.split("\n"):
        stripped = line.strip()
        if stripped.startswith(_HTTP1_ONLY):
            continue
        found = _DIRECTIVE.match(line)
        if found is not None and found[2] in _COUNTERPARTS:
            line = found[1] + "grpc_" + line[found.end(1) + len("proxy_") :]
        elif "proxy_" in line or _RAW_TARGET in line:
            raise ValueError(f"no counterpart for an h2c upstream: {stripped}")
        lines.append(line)
    return "\n".join(lines)
