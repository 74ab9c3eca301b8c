"""Traefik's active health checks (upstream_options.HealthCheck) by njs (njs/certbotless.js's
healthCheck and serviceDown): a js_periodic location of the port-80 default server per check
runs it, in one worker, when it is due, and writes "up" or "down" under the check's key in a
shared dict every worker reads; a route of a service that is down answers 503 as Traefik's
load balancer with no server up ("no available server"). Its routes start up, the first check
one interval after nginx starts, as Traefik's servers start up.

The check asks the address the edge proxies to: the service's name, so its VIP (one address),
as Traefik with `traefik.docker.lbswarm=true` checks and balances over the VIP; a service that
is down is down for every task.

njs ends a periodic handler still running when its next run is due, so a check's location runs
it at its shorter interval, or just after its timeout when that is longer (the .js takes the
longer interval in those steps). js_var values are global in nginx: the checks travel in one
variable, as JSON by key, and each location names its own by its `root` (read as
$document_root; no file is read)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from urllib.parse import urljoin

from certbotless.edge.mounts import SYSTEM_CAS
from certbotless.edge.upstreams import upstream_address
from certbotless.model import Route
from certbotless.upstream_options import HealthCheck

ZONE = "certbotless_health"
SERVICE_DOWN = "$certbotless_service_down"  # serviceDown's answer: "1" when down
KEY = "$certbotless_health_key"  # the route's check, for serviceDown
CHECKS = "$certbotless_health_checks"  # every check by key, as JSON, for healthCheck
# How much longer than a check's timeout its location's runs are at least apart.
_AFTER_TIMEOUT_MS = 100
ROOT = "/certbotless-health"  # a check location's root: ROOT/<key>
NO_SERVER = '"no available server\\n"'  # Traefik's body (Go's http.Error adds the newline)


def needs_health_checks(route: Route) -> bool:
    return route.upstream.health_check is not None


def check_url(route: Route, check: HealthCheck) -> str:
    """What is asked: the check's path resolved against the service's URL (Go's URL.Parse, as
    Traefik does), its scheme and port when it gives them."""
    scheme = check.scheme or route.upstream_scheme
    host, _, port = upstream_address(route).rpartition(":")
    authority = f"{host}:{check.port or port}"
    return urljoin(f"{scheme}://{authority}/", check.path or "/")


def check_key(route: Route) -> str:
    """The check's key in the shared dict: one per service address and check, so that two
    routes of one service share it, and a changed check starts up again."""
    check = route.upstream.health_check
    text = repr((check_url(route, check), check)) if check is not None else ""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _tick_ms(check: HealthCheck) -> int:
    """How often the check's location runs (the .js checks when it is due)."""
    shorter = min(check.interval_ms, check.unhealthy_interval_ms)
    return max(shorter, check.timeout_ms + _AFTER_TIMEOUT_MS)


def _described(route: Route, check: HealthCheck) -> dict[str, object]:
    return {
        "url": check_url(route, check), "method": check.method, "tick": _tick_ms(check),
        "host": check.hostname, "headers": [list(pair) for pair in check.headers],
        "status": check.status, "follow": check.follow_redirects,
        "timeout": check.timeout_ms, "interval": check.interval_ms,
        "unhealthy": check.unhealthy_interval_ms, "verify": route.upstream.transport.verify,
    }  # fmt: skip


def _checks(routes: Iterable[Route]) -> dict[str, tuple[Route, HealthCheck]]:
    """Every check the routes ask for, once, by key."""
    found = {check_key(route): (route, route.upstream.health_check) for route in routes
             if route.upstream.health_check is not None}  # fmt: skip
    return {key: (route, check) for key, (route, check) in sorted(found.items()) if check}


def checks_json(routes: Iterable[Route]) -> str:
    """Every check by key (healthCheck reads them)."""
    described = {key: _described(*found) for key, found in _checks(routes).items()}
    return json.dumps(described, separators=(",", ":"))


def health_locations(routes: Iterable[Route]) -> str:
    """The default server's locations that run the checks: each fetch bounded by its timeout,
    over https verified against the image's CAs when its serversTransport verifies."""
    blocks = []
    for key, (route, check) in _checks(routes).items():
        lines = [f"root {ROOT}/{key};", f"js_fetch_timeout {check.timeout_ms}ms;",
                 f"js_periodic certbotless.healthCheck interval={_tick_ms(check)}ms;"]  # fmt: skip
        if route.upstream.transport.verify:
            lines.insert(2, f"js_fetch_trusted_certificate {SYSTEM_CAS};")
        body = "".join(f"\n            {line}" for line in lines)
        blocks.append(f"\n        location @certbotless_health_{key} {{{body}\n        }}")
    return "".join(blocks)


def down_answer(route: Route) -> str:
    """The route's answer while its service is down: 503, through the route's error page when
    it catches 503 (as Traefik's errors middleware catches its load balancer's), else Traefik's
    words. Before the path's rewrites, whose `break` ends the rewrite phase."""
    if route.upstream.health_check is None:
        return ""
    pages = route.error_pages
    answer = "503" if pages is not None and 503 in pages.statuses else f"503 {NO_SERVER}"
    return (
        f"\n            set {KEY} {check_key(route)};"
        f"\n            if ({SERVICE_DOWN}) {{ return {answer}; }}"
    )
