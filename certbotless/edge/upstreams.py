"""The services nginx proxies to. From nginx 1.27.3 (the edge image's nginx:stable), one
upstream block per service whose server follows Swarm's DNS (`resolve`: every task of a dnsrr
service, re-read as the resolver's `valid` says) and keeps idle connections open for the next
requests (keep-alive), instead of a TCP connection per request. Older nginx re-resolves a
variable in `proxy_pass` at each request and connects anew each time.

A location names its upstream by a variable either way (`set $upstream …; proxy_pass
$upstream`): nginx takes a name that is an upstream block's as that block, so the pool applies,
and nginx starts even when a service has no task yet. An h2c service (HTTP/2 without TLS) is
reached by grpc_pass, whose `grpc://` upstreams pool the same way."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from certbotless.edge.mounts import UPSTREAMS_DIR
from certbotless.edge.nginx_version import NginxVersion
from certbotless.model import Route

UPSTREAM_RESOLVE_SINCE: NginxVersion = (1, 27, 3)
# Idle connections kept per worker and service, and how long: closed before any common server's
# own keep-alive timeout (gunicorn 2 s, Node 5 s, Go's none), so a request never meets a
# connection the service is closing; under load they are reused long before.
POOL_CONNECTIONS = 32
POOL_IDLE_TIMEOUT = "1s"
# The shared memory every upstream's resolved addresses live in: a base, and room per service.
_ZONE_BASE_KIB = 1024
_ZONE_KIB_PER_UPSTREAM = 8
_FILES = 16  # upstream blocks spread over files by their name's first hex digit


def pools_upstreams(nginx_version: NginxVersion) -> bool:
    return nginx_version >= UPSTREAM_RESOLVE_SINCE


def upstream_address(route: Route) -> str:
    """host:port nginx connects to: a server URL's host (Traefik's server.url, its authority
    as written in `server_authority`, its port in `port`), else the service's name."""
    host = route.server_authority or route.service
    if route.server_authority and not host.endswith("]") and ":" in host:
        host = host.rpartition(":")[0]
    return f"{host}:{route.port}"


def upstream_url(route: Route, pooled: bool) -> str:
    """What the route's `$upstream` holds: its upstream block's name, or the service's
    address."""
    target = _name(route) if pooled else upstream_address(route)
    scheme = "grpc" if route.upstream_scheme == "h2c" else route.upstream_scheme
    return f"{scheme}://{target}"


def _name(route: Route) -> str:
    host = upstream_address(route).rpartition(":")[0]
    key = f"{route.upstream_scheme}|{host}|{route.port}"
    return "certbotless_" + hashlib.sha256(key.encode()).hexdigest()[:16]


def upstream_files(routes: Iterable[Route]) -> dict[str, str]:
    """Each service's upstream block, in files under UPSTREAMS_DIR (nginx.conf includes them);
    the first declares the shared zone's size."""
    names = sorted({_name(route): route for route in routes}.items())
    size = _ZONE_BASE_KIB + _ZONE_KIB_PER_UPSTREAM * len(names)
    by_file: dict[str, list[str]] = {}
    for index, (name, route) in enumerate(names):
        zone = f"certbotless_upstreams {size}k" if index == 0 else "certbotless_upstreams"
        target = f"{UPSTREAMS_DIR}/{int(name.removeprefix('certbotless_')[0], 16) % _FILES:x}.conf"
        by_file.setdefault(target, []).append(f"""
upstream {name} {{
    zone {zone};
    server {upstream_address(route)} resolve;
    keepalive {POOL_CONNECTIONS};
    keepalive_timeout {POOL_IDLE_TIMEOUT};
}}""")
    header = "# Rendered by certbotless (services' upstreams). Do not edit.\n"
    return {target: header + "".join(blocks) + "\n" for target, blocks in sorted(by_file.items())}
