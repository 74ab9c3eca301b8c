"""Traefik's router choice inside one server block, compiled for nginx: the server's routes are
tried in Traefik's order (priority, else nginx's own for certbotless's labels) and the first
whose every matcher holds serves the request (pkg/muxer/http/mux.go).

Each distinct matcher of the host's routes other than their path (method, header, query, client
address, host pattern, a negated path) is evaluated once per request by an http-level `map`
into a variable that is 1 or 0; those variables and the routing path make the key of one more
`map`, whose regexes, in Traefik's order, name the route's named location
(`@certbotless_route_N`): the bits a route asks for, then its path. The server's `location /`
jumps there; a request no route takes gets 404, as from Traefik. A host with only paths has one
map and one variable (`nginx -t` time grows faster than the number of variables), shared by
its two servers. A server whose first route takes every request needs none of it: its route is
`location /` itself.

Paths are matched as Traefik routes them: decoded, except for upper-case percent-encodings of
reserved characters, which stay encoded (withRoutingPath); `$certbotless_routing_path` is nginx's
decoded path, or the path as sent when it has such an encoding."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from certbotless.edge.conditions import client_variable, header_value_regex, header_variable, quoted
from certbotless.model import Route
from certbotless.request_conditions import Check, RequestCondition

NO_ROUTE = "@certbotless_no_route"
_RESERVED = ":/?#[]@!$&'()*+,;="
_KEPT_ENCODED = "|".join(f"%{ord(c):02X}" for c in _RESERVED + "%")
ROUTING_PATH_MAPS = f"""
    # The path as sent, when it has a percent-encoded reserved character that Traefik keeps
    # encoded to choose the route; empty otherwise. The path routes are chosen by: that, else
    # nginx's decoded one.
    map $request_uri $certbotless_reserved_path {{
        "~^(?<path>[^?]*(?:{_KEPT_ENCODED})[^?]*)" $path;
        default "";
    }}
    map $certbotless_reserved_path $certbotless_routing_path {{
        "" $uri;
        default $certbotless_reserved_path;
    }}"""
_ROUTING_PATH = "$certbotless_routing_path"


@dataclass(frozen=True)
class Test:
    """One matcher, evaluated into a variable that is 1 when `source` matches `pattern`."""

    source: str  # what nginx reads: a variable
    pattern: str  # a PCRE searched in it


def route_name(index: int) -> str:
    return f"@certbotless_route_{index}"


def routing_order(routes: Sequence[Route]) -> list[Route]:
    """Traefik's order: higher priority first. Routes of certbotless's own labels (no priority)
    come after, in nginx's: an exact path first, then the longest prefix."""
    return sorted(
        routes,
        key=lambda r: (r.priority is None, -(r.priority or 0), not r.exact_path, -len(r.path)),
    )


def takes_every_request(route: Route) -> bool:
    return not _has_path(route) and not condition_tests(route)


def _has_path(route: Route) -> bool:
    return route.path != "/" or route.exact_path


def traefik_path_regex(path: str) -> str:
    """What Traefik's routing path must start with to match `path`, as a PCRE: each character
    as written or percent-encoded, except that upper-case encodings of reserved characters stay
    encoded (do not match the character)."""
    parts = []
    for char in path:
        encoded = f"%{ord(char):02X}"
        if char in _RESERVED + "%":  # decoded only when not written in upper case
            forms = {encoded.lower()} - {encoded}
        else:
            forms = {encoded, encoded.lower()}
        literal = re.escape(char) if not char.isalnum() else char
        parts.append(f"(?:{'|'.join([literal, *sorted(forms)])})" if forms else literal)
    return "".join(parts)


def condition_tests(route: Route) -> list[tuple[Test, bool]]:
    """Each matcher of the route but its path, and whether it must hold (False: must not)."""
    tests: list[tuple[Test, bool]] = []
    if route.methods:
        tests.append((Test("$request_method", f"^({'|'.join(route.methods)})$"), True))
    for name, value in route.match_headers:
        tests.append((Test(header_variable(name), header_value_regex(value)), True))
    tests += [(_condition_test(c), not c.negated) for c in route.conditions]
    return tests


def _path_pattern(path: str, exact: bool) -> str:
    """The routing path (from its start) matching a route's path: exactly, or as a prefix."""
    return traefik_path_regex(path) + ("$" if exact else "")


def _path_test(path: str, exact: bool) -> Test:
    return Test(_ROUTING_PATH, "^" + _path_pattern(path, exact))


def _condition_test(condition: RequestCondition) -> Test:
    check, values = condition.check, condition.values
    if check is Check.METHOD:
        return Test("$request_method", f"^({'|'.join(values)})$")
    if check is Check.HEADER:
        return Test(header_variable(values[0]), header_value_regex(values[1]))
    if check is Check.HEADER_REGEXP:
        # Searched anywhere in a value that is there: a header absent (or empty) matches nothing.
        return Test(header_variable(values[0]), f"^(?=.).*?(?:{condition.pcre})")
    if check in (Check.QUERY, Check.QUERY_REGEXP):
        return Test("$args", condition.pcre)
    if check is Check.CLIENT_IP:
        return Test(client_variable(values), "^1$")
    if check is Check.HOST:
        return Test("$host", f"^{re.escape(values[0])}$")
    if check is Check.HOST_REGEXP:
        return Test("$host", condition.pcre)
    if check is Check.PATH_REGEXP:
        return Test(_ROUTING_PATH, condition.pcre)
    return _path_test(values[0], exact=check is Check.PATH)


def dispatch(server_key: str, routes: Sequence[Route]) -> tuple[str, str]:
    """For routes in Traefik's order: the http-level maps that choose one, and the server's
    `location /` that jumps to it. `server_key` names the maps' variables (the host: both of
    its servers choose alike)."""
    prefix = "certbotless_" + hashlib.sha256(server_key.encode()).hexdigest()[:10]
    tests: dict[Test, int] = {}
    for route in routes:
        for test, _ in condition_tests(route):
            tests.setdefault(test, len(tests))
    maps = [f"""
    map {test.source} ${prefix}_{number} {{
        "~{quoted(test.pattern)}" 1;
        default 0;
    }}""" for test, number in tests.items()]  # fmt: skip
    entries = []
    for index, route in enumerate(routes):
        bits = ["."] * len(tests)
        for test, holds in condition_tests(route):
            bits[tests[test]] = "1" if holds else "0"
        path = _path_pattern(route.path, route.exact_path) if _has_path(route) else ""
        entries.append(f'\n        "~{quoted("^" + "".join(bits) + path)}" {route_name(index)};')
        if not path and not condition_tests(route):
            break  # it takes every request that reaches it: the routes after it never do
    key = "".join(f"${prefix}_{number}" for number in tests.values()) + _ROUTING_PATH
    maps.append(f"""
    map "{key}" ${prefix}_route {{{"".join(entries)}
        default {NO_ROUTE};
    }}""")
    # Body sizes are checked by each route's location (body_size_check): nginx checks a request's
    # Content-Length only in the location it first finds, this one. Recursive error pages: or
    # this jump would be the request's only error page, and the route's own would not apply.
    location = f"""
        location / {{
            client_max_body_size 0;
            recursive_error_pages on;
            error_page 418 = ${prefix}_route;
            return 418;
        }}
        location {NO_ROUTE} {{
            return 404;
        }}"""
    why = f"\n    # {server_key}: its routes' tests, and the first route whose tests and path hold."
    return why + "".join(maps), location


_NGINX_DEFAULT_BODY_LIMIT = "1m"
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def body_size_check(route: Route) -> str:
    """For a route reached by name: 413 for a Content-Length over its client_max_body_size
    (nginx's 1m when unset; none for 0), which nginx itself checks only where it first
    found a location. A chunked body is checked while read, by the route's own directive."""
    size = (route.max_body_size or _NGINX_DEFAULT_BODY_LIMIT).lower()
    limit = int(size.rstrip("kmg")) * _SIZE_UNITS[size[-1] if size[-1] in "kmg" else ""]
    return content_length_check(limit) if limit else ""


def content_length_check(limit: int) -> str:
    """413 for a request whose Content-Length is over `limit` bytes."""
    return f'\n            if ($content_length ~ "{_greater_than(limit)}") {{ return 413; }}'


def _greater_than(number: int) -> str:
    """A regex for the decimal numbers above `number`: more digits, or as many and larger at
    the first digit that differs."""
    digits = str(number)
    larger = [f"[1-9][0-9]{{{len(digits)},}}"]
    for index, digit in enumerate(digits):
        if digit != "9":
            rest = len(digits) - index - 1
            larger.append(
                f"{digits[:index]}[{int(digit) + 1}-9]" + (f"[0-9]{{{rest}}}" if rest else "")
            )
    return f"^0*(?:{'|'.join(larger)})$"
