"""circuitBreaker: Traefik's (oxy's cbreaker), kept at the edge by njs (edge/breaker.py). Its
`expression` (breaker_expression.py) is checked at most every `checkPeriod` (100ms) after an
answer; when it holds, the router answers `responseCode` (503) with its status text for
`fallbackDuration` (10s), then lets a growing share of requests through for `recoveryDuration`
(10s), tripping again if the expression holds, and then lets every request through. Each router
has its own; each edge task keeps its own, as each Traefik instance does.

nginx asks the breaker in its rewrite phase, before its access checks (allow lists, rate and
connection limits, basic and forward auth): one of those listed before circuitBreaker is
reported, as the order differs from Traefik's."""

from __future__ import annotations

import math
import re
from dataclasses import replace

from certbotless.labels.traefik.middlewares.breaker_expression import (
    ExpressionError,
    compile_expression,
)
from certbotless.labels.traefik.middlewares.options import (
    Context,
    Middleware,
    Unsupported,
    access_checks_applied,
    known_fields,
)
from certbotless.model import CircuitBreaker, Route

_DURATION_PART_RE = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h)")
_MILLISECONDS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1, "s": 1e3, "m": 6e4, "h": 3.6e6}
_REDIRECTS = {301, 302, 303, 307, 308}  # nginx's `return` reads their text as the Location
# Go's http.StatusText, which Traefik's fallback writes as the body ("" for other codes).
_STATUS_TEXT = {
    200: "OK", 201: "Created", 202: "Accepted", 203: "Non-Authoritative Information",
    204: "No Content", 205: "Reset Content", 206: "Partial Content", 207: "Multi-Status",
    208: "Already Reported", 226: "IM Used", 300: "Multiple Choices", 304: "Not Modified",
    305: "Use Proxy", 400: "Bad Request", 401: "Unauthorized", 402: "Payment Required",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 409: "Conflict", 410: "Gone",
    411: "Length Required", 412: "Precondition Failed", 413: "Request Entity Too Large",
    414: "Request URI Too Long", 415: "Unsupported Media Type",
    416: "Requested Range Not Satisfiable", 417: "Expectation Failed", 418: "I'm a teapot",
    421: "Misdirected Request", 422: "Unprocessable Entity", 423: "Locked",
    424: "Failed Dependency", 425: "Too Early", 426: "Upgrade Required",
    428: "Precondition Required", 429: "Too Many Requests",
    431: "Request Header Fields Too Large", 451: "Unavailable For Legal Reasons",
    500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout", 505: "HTTP Version Not Supported",
    506: "Variant Also Negotiates", 507: "Insufficient Storage", 508: "Loop Detected",
    510: "Not Extended", 511: "Network Authentication Required",
}  # fmt: skip


def apply(route: Route, mw: Middleware, context: Context) -> Route:
    known_fields(mw, {"expression", "checkperiod", "fallbackduration", "recoveryduration",
                      "responsecode"})  # fmt: skip
    if route.circuit_breaker is not None:
        raise Unsupported(mw.label(), mw.name, "the router has a circuitBreaker already: the "
                          "edge keeps one per router; join the expressions with || in "
                          "one")  # fmt: skip
    expression = mw.value("expression")
    try:
        program = compile_expression(expression)
    except ExpressionError as error:
        raise Unsupported(mw.label("expression"), expression, f"circuitBreaker.expression: "
                          f"{error}") from None  # fmt: skip
    status = _status(mw)
    breaker = CircuitBreaker(
        expression, program,
        check_period_ms=_milliseconds(mw, "checkperiod", 100),
        fallback_ms=_milliseconds(mw, "fallbackduration", 10_000),
        recovery_ms=_milliseconds(mw, "recoveryduration", 10_000),
        status=status, text=_STATUS_TEXT.get(status, ""), label=mw.label("expression"),
    )  # fmt: skip
    _note_guards_before(route, mw, context)
    return replace(route, circuit_breaker=breaker)


def _milliseconds(mw: Middleware, key: str, default: int) -> int:
    """Traefik's Duration: a Go duration, or whole seconds; zero or less: the default."""
    text = mw.value(key).strip()
    if not text:
        return default
    sign, digits = ("-", text[1:]) if text.startswith("-") else ("", text)
    if re.fullmatch(r"[0-9]+", digits):
        milliseconds = int(digits) * 1000.0
    else:
        parts = _DURATION_PART_RE.findall(digits)
        if not parts or "".join(n + u for n, u in parts) != digits:
            raise Unsupported(mw.label(key), text, f"circuitBreaker.{key} must be a duration "
                              "(100ms, 10s, 1m30s) or whole seconds")  # fmt: skip
        milliseconds = sum(float(n) * _MILLISECONDS[u] for n, u in parts)
    if sign or milliseconds == 0:
        return default  # Traefik keeps oxy's default for a duration that is not positive
    return max(1, math.ceil(milliseconds))  # the edge's clock counts milliseconds


def _status(mw: Middleware) -> int:
    text = mw.value("responsecode").strip() or "503"
    if not re.fullmatch(r"[0-9]{3}", text) or not 200 <= int(text) <= 599:
        raise Unsupported(mw.label("responsecode"), text, "circuitBreaker.responseCode: the "
                          "edge answers a status from 200 to 599")  # fmt: skip
    if int(text) in _REDIRECTS:
        raise Unsupported(mw.label("responsecode"), text, "circuitBreaker.responseCode: a "
                          "redirect without a Location, which nginx's `return` cannot answer; "
                          "use another status, such as 503")  # fmt: skip
    return int(text)


def _note_guards_before(route: Route, mw: Middleware, context: Context) -> None:
    """nginx asks the breaker before its access checks: one listed before it is asked after."""
    earlier = access_checks_applied(route)
    if earlier:
        guards = ", ".join(earlier)
        context.note(mw.label(), mw.name, f"nginx asks the circuit breaker before the route's "
                     f"{guards} (listed before it here): while it is open, requests {guards} "
                     f"would refuse get its {mw.value('responsecode') or '503'} instead, and "
                     "their refusals count among the answers it watches; list circuitBreaker "
                     "before them to keep Traefik's order")  # fmt: skip
