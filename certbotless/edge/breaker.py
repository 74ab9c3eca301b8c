"""Traefik's circuitBreaker at the edge, by njs (njs/breaker.js, loaded only when a route has
one). Each route's breaker is its program (labels/traefik/middlewares/breaker_expression.py)
with its durations and an id; nginx asks `gate` in the route's rewrite phase (answering the
breaker's status while it is open) and `record` at the end of each request it let through
(an access log's condition: the log phase, when the answer is complete), which counts the answer
and checks the expression. Their state is in two njs shared dictionaries, shared by the
workers of one nginx: each edge task keeps its own breakers, as each Traefik instance does.

Needs njs 0.8.1 (js_shared_dict_zone, with health checks' js_periodic); edge/njs.py leaves a
breaker out where the edge's njs is older, and says so."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from certbotless.edge.conditions import quoted
from certbotless.edge.mounts import SNIPPETS_DIR
from certbotless.model import Route

BREAKER_JS_TARGET = f"{SNIPPETS_DIR}/njs/breaker.js"
_JS_SOURCE = Path(__file__).with_name("njs") / "breaker.js"
GATE = "$certbotless_breaker_gate"  # gate's answer: "" lets the request through
RECORD = "$certbotless_breaker_record"  # record's: always "" (nothing is logged)
# The edge's access log (render.py's http block): a location that adds a log of its own
# names it again.
EDGE_ACCESS_LOG = "access_log /dev/stdout certbotless;"
# Per-second counters (and latencies per 10 s) expire once no window reads them (the latency
# window is about a minute), the oldest evicted first should the zone fill up; the states (when
# it tripped, recovery's counts: five numbers a router) are kept for the task's life (each
# configuration rolls new tasks).
_ZONES = (
    "js_shared_dict_zone zone=certbotless_breaker_states:1m type=number;",
    "js_shared_dict_zone zone=certbotless_breaker_metrics:16m type=number timeout=70s evict;",
)


def _has_breaker(routes: Iterable[Route]) -> bool:
    return any(route.circuit_breaker is not None for route in routes)


def breaker_http(routes: Iterable[Route]) -> str:
    """nginx.conf's http-block part when a route has a breaker."""
    if not _has_breaker(routes):
        return ""
    lines = [f"js_import breaker from {BREAKER_JS_TARGET};", f"js_set {GATE} breaker.gate;",
             f"js_set {RECORD} breaker.record;", *_ZONES]  # fmt: skip
    return "".join(f"\n    {line}" for line in lines) + "\n"


def breaker_files(routes: Iterable[Route]) -> dict[str, str]:
    """The breaker's functions (target → text), when a route has one."""
    return {BREAKER_JS_TARGET: _JS_SOURCE.read_text()} if _has_breaker(routes) else {}


def breaker_checks(route: Route) -> str:
    """The route location's lines: the gate, and the record after the answer (beside the edge's
    access log, which a location's own log would otherwise replace)."""
    breaker = route.circuit_breaker
    if breaker is None:
        return ""
    program = json.loads(breaker.program) | {
        # Each router has its own breaker: a changed route starts afresh, as Traefik's
        # rebuilt handlers do.
        "id": hashlib.sha256(repr(route).encode()).hexdigest()[:16],
        "period": breaker.check_period_ms,
        "fallback": breaker.fallback_ms,
        "recovery": breaker.recovery_ms,
    }
    answer = f'{breaker.status} "{quoted(breaker.text)}"'
    lines = [
        f'set $certbotless_breaker "{quoted(json.dumps(program, separators=(",", ":")))}";',
        f"if ({GATE}) {{ return {answer}; }}",
        "set $certbotless_breaker_passed 1;",
    ]
    return "".join(f"\n            {line}" for line in lines) + breaker_logs(route)


def breaker_logs(route: Route) -> str:
    """Where a request of the route may end (its location, its error pages' location, which
    the log phase takes after an error_page): the record, beside the edge's access log, which
    a location's own log would otherwise replace."""
    if route.circuit_breaker is None:
        return ""
    lines = [EDGE_ACCESS_LOG, f"access_log /dev/null certbotless if={RECORD};"]
    return "".join(f"\n            {line}" for line in lines)
