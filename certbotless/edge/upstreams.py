"""The services nginx proxies to. From nginx 1.27.3 (the edge image's nginx:stable), one
upstream block per service whose server follows Swarm's DNS (`resolve`: every task of a dnsrr
service, re-read as the resolver's `valid` says) and keeps idle connections open for the next
requests (keep-alive), instead of a TCP connection per request. Older nginx re-resolves a
variable in `proxy_pass` at each request and connects anew each time.

A location names its upstream by a variable either way (`set $upstream …; proxy_pass
$upstream`): nginx takes a name that is an upstream block's as that block, so the pool applies,
and nginx starts even when a service has no task yet. An h2c service (HTTP/2 without TLS) is
reached by grpc_pass, whose `grpc://` upstreams pool the same way.

A route whose service balances otherwise (upstream_options: Traefik's `p2c` strategy, a sticky
cookie) has an upstream block of its own, over the service's tasks one by one (Swarm's
`tasks.<service>`, as Traefik balances over the tasks): `random two least_conn` (power of two
choices), or `hash <cookie>`, where a request without the cookie is hashed on a fresh id that
the answer's Set-Cookie then carries, so that request and every later one with the cookie reach
the same task while the service's tasks stay the same (when they change, a cookie may lead to
another task, where Traefik keeps a cookie's task while it lives and sets a new cookie when
it is gone)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import replace

from certbotless.edge.mounts import UPSTREAMS_DIR
from certbotless.edge.nginx_version import NginxVersion
from certbotless.model import LabelProblem, Route
from certbotless.upstream_options import DEFAULT_UPSTREAM, StickyCookie, Strategy

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
    if route.upstream.balances:  # its own block: the same service may be balanced otherwise
        key += f"|{route.upstream.strategy}|{route.upstream.sticky!r}"
    return "certbotless_" + hashlib.sha256(key.encode()).hexdigest()[:16]


def _sticky_id(cookie: StickyCookie) -> str:
    return hashlib.sha256(repr(cookie).encode()).hexdigest()[:12]


def sticky_cookie_variable(cookie: StickyCookie) -> str:
    """The Set-Cookie value for the answer: the cookie, when the request had none; else
    empty (nginx then sends no header)."""
    return f"$certbotless_sticky_set_{_sticky_id(cookie)}"


def _sticky_maps(cookie: StickyCookie) -> str:
    """The request's cookie (Go's req.Cookie: the first of that name), the hash key (it, else
    a fresh id: $request_id's first 16 hex digits, the length of Traefik's value) and the
    Set-Cookie for a request without it. Names are RFC 6265 tokens (labels checks them)."""
    name, sticky = re.escape(cookie.name), _sticky_id(cookie)
    seen, fresh = f"certbotless_sticky_{sticky}", "$certbotless_sticky_fresh"
    return f"""
map $http_cookie ${seen} {{
    "~(?:^|;)[ \\t]*{name}=(?<{seen}_v>[^;]*)" ${seen}_v;
    default "";
}}
map ${seen} $certbotless_sticky_key_{sticky} {{
    "" {fresh};
    default ${seen};
}}
map ${seen} {sticky_cookie_variable(cookie)} {{
    "" "{cookie.name}={fresh}{cookie.attributes()}";
    default "";
}}"""


_FRESH_ID = """
map $request_id $certbotless_sticky_fresh {
    "~^(?<certbotless_sticky_id>.{16})" $certbotless_sticky_id;
}"""


def _block(name: str, zone: str, route: Route) -> str:
    options, server = route.upstream, upstream_address(route)
    balancing = ""
    if options.sticky is not None:
        # Not `consistent`: that hashes on the `server` line's name, the same for every task
        # it resolves to, and takes those tasks in turn.
        balancing = f"\n    hash $certbotless_sticky_key_{_sticky_id(options.sticky)};"
    elif options.strategy == Strategy.POWER_OF_TWO_CHOICES:
        balancing = "\n    random two least_conn;"
    if options.balances and not route.server_authority:  # a server URL is one address
        server = f"tasks.{server}"
    # The balancing method comes before keepalive, which keeps its choice (nginx's rule).
    return f"""
upstream {name} {{
    zone {zone};{balancing}
    server {server} resolve;
    keepalive {POOL_CONNECTIONS};
    keepalive_timeout {POOL_IDLE_TIMEOUT};
}}"""


def upstream_files(routes: Iterable[Route]) -> dict[str, str]:
    """Each service's upstream block, in files under UPSTREAMS_DIR (nginx.conf includes them);
    the first declares the shared zone's size, and the first file holds the sticky cookies'
    maps."""
    routes = list(routes)
    names = sorted({_name(route): route for route in routes}.items())
    size = _ZONE_BASE_KIB + _ZONE_KIB_PER_UPSTREAM * len(names)
    by_file: dict[str, list[str]] = {}
    for index, (name, route) in enumerate(names):
        zone = f"certbotless_upstreams {size}k" if index == 0 else "certbotless_upstreams"
        target = f"{UPSTREAMS_DIR}/{int(name.removeprefix('certbotless_')[0], 16) % _FILES:x}.conf"
        by_file.setdefault(target, []).append(_block(name, zone, route))
    cookies = sorted({r.upstream.sticky for r in routes if r.upstream.sticky}, key=repr)
    if cookies:
        maps = [_FRESH_ID, *(_sticky_maps(cookie) for cookie in cookies)]
        by_file.setdefault(f"{UPSTREAMS_DIR}/0.conf", []).extend(maps)
    header = "# Rendered by certbotless (services' upstreams). Do not edit.\n"
    return {target: header + "".join(blocks) + "\n" for target, blocks in sorted(by_file.items())}


def without_unpooled_options(
    routes: Sequence[Route], nginx_version: NginxVersion
) -> tuple[list[Route], tuple[LabelProblem, ...]]:
    """On nginx before 1.27.3 (no upstream block follows Swarm's DNS), routes whose service
    balances otherwise (p2c, a sticky cookie) are served in turn, and a problem says so."""
    if pools_upstreams(nginx_version):
        return list(routes), ()
    kept, problems = [], {}
    version = ".".join(map(str, nginx_version))
    since = ".".join(map(str, UPSTREAM_RESOLVE_SINCE))
    for route in routes:
        if route.upstream.balances:
            what = "a sticky cookie" if route.upstream.sticky else "the p2c strategy"
            option = "sticky.cookie" if route.upstream.sticky else "strategy"
            problems[route.service] = LabelProblem(
                route.service, f"traefik.http.services.*.loadbalancer.{option}", "",
                f"{what} is not applied: the edge's nginx {version} cannot balance over a "
                f"service's tasks (it needs `resolve` in an upstream block, nginx {since} or "
                "later, the edge image's nginx:stable); its requests go to the tasks in turn",
            )  # fmt: skip
            route = replace(route, upstream=replace(route.upstream, strategy=DEFAULT_UPSTREAM
                                                    .strategy, sticky=None))  # fmt: skip
        kept.append(route)
    return kept, tuple(problems.values())
