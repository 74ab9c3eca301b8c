"""A route's conditions on the request (Traefik's Method, Header, HeaderRegexp, Query,
QueryRegexp and ClientIP matchers, negated or not), checked first in its location: a request
that fails one gets 404, as from Traefik when no router matches. Client networks are looked up
once per request by an http-level `geo` per distinct set, on the client's address (the PROXY
protocol's behind the front, as Traefik's ClientIP reads the remote address)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from certbotless.model import Route
from certbotless.request_conditions import Check, RequestCondition

_NOT_FOUND = "{ return 404; }"


def condition_checks(route: Route) -> str:
    """The location's checks, in nginx's rewrite phase (before access and auth)."""
    lines = []
    if route.methods:
        lines.append(f"if ($request_method !~ ^({'|'.join(route.methods)})$) {_NOT_FOUND}")
    lines += [
        f'if ({_header_variable(name)} !~ "{header_value_regex(value)}") {_NOT_FOUND}'
        for name, value in route.match_headers
    ]
    lines += [_check(condition) for condition in route.conditions]
    return "".join(f"\n            {line}" for line in lines)


def header_value_regex(value: str) -> str:
    """Traefik matches a header sent several times when any of its lines has the value; nginx
    (from 1.23) joins the lines with ", ", so the value must be one of the joined items. (Values
    are checked printable ASCII without '"', '$' and '\\': nothing nginx would read.)"""
    return f"^(.*, )?{re.escape(value)}(, .*)?$"


def _check(condition: RequestCondition) -> str:
    """One `if` that answers 404 when the request fails the condition."""
    fails = "~" if condition.negated else "!~"  # the operator true when it fails
    if condition.check is Check.METHOD:
        return f"if ($request_method {fails} ^({'|'.join(condition.values)})$) {_NOT_FOUND}"
    if condition.check is Check.HEADER:
        name, value = condition.values
        return f'if ({_header_variable(name)} {fails} "{header_value_regex(value)}") {_NOT_FOUND}'
    if condition.check is Check.HEADER_REGEXP:
        # Searched anywhere in a value that is there: a header absent (or empty) matches nothing.
        regex = quoted(f"^(?=.).*?(?:{condition.pcre})")
        return f'if ({_header_variable(condition.values[0])} {fails} "{regex}") {_NOT_FOUND}'
    if condition.check in (Check.QUERY, Check.QUERY_REGEXP):
        return f'if ($args {fails} "{quoted(condition.pcre)}") {_NOT_FOUND}'
    inside = "0" if condition.negated else "1"
    return f"if ({client_variable(condition.values)} != {inside}) {_NOT_FOUND}"


def _header_variable(name: str) -> str:
    return f"$http_{name.lower().replace('-', '_')}"


def quoted(regex: str) -> str:
    """A regex inside an nginx "…" string, which reads `\\\\` and `\\"` as one character (the
    other escapes it reads, `\\t \\n \\r`, mean the same to PCRE)."""
    return regex.replace("\\", "\\\\").replace('"', '\\"')


def client_variable(networks: Iterable[str]) -> str:
    """The variable that is 1 when the client's address is in one of `networks`, else 0."""
    digest = hashlib.sha256(" ".join(sorted(networks)).encode()).hexdigest()[:12]
    return f"$certbotless_client_{digest}"


def client_geos(routes: Iterable[Route]) -> str:
    """One http-level `geo` per distinct set of client networks the routes' ClientIP ask."""
    sets = {
        tuple(sorted(condition.values))
        for route in routes
        for condition in route.conditions
        if condition.check is Check.CLIENT_IP
    }
    blocks = []
    for networks in sorted(sets):
        entries = "".join(f"\n        {network} 1;" for network in networks)
        blocks.append(f"""
    geo {client_variable(networks)} {{
        default 0;{entries}
    }}""")
    if not blocks:
        return ""
    why = "\n    # Traefik's ClientIP: whether the client's address is in a router's networks."
    return why + "".join(blocks) + "\n"
