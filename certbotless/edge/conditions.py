"""What nginx reads for a route's conditions on the request (Traefik's Header and ClientIP
matchers; edge/dispatch.py evaluates them): header variables and values, and the client's
networks, looked up once per request by an http-level `geo` per distinct set, on the client's
address (the PROXY protocol's behind the front, as Traefik's ClientIP reads the remote
address)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from certbotless.model import Route
from certbotless.request_conditions import Check


def header_value_regex(value: str) -> str:
    """Traefik matches a header sent several times when any of its lines has the value; nginx
    (from 1.23) joins the lines with ", ", so the value must be one of the joined items. (Values
    are checked printable ASCII without '"', '$' and '\\': nothing nginx would read.)"""
    return f"^(.*, )?{re.escape(value)}(, .*)?$"


def header_variable(name: str) -> str:
    return f"$http_{name.lower().replace('-', '_')}"


def quoted(regex: str) -> str:
    """A regex inside an nginx "…" string, which reads `\\\\` and `\\"` as one character (the
    other escapes it reads, `\\t \\n \\r`, mean the same to PCRE)."""
    return regex.replace("\\", "\\\\").replace('"', '\\"')


# The dollar sign for values nginx would otherwise read as a variable (njs.py's nginx.conf part
# defines it by a geo, whose values are taken as written).
DOLLAR = "${certbotless_dollar}"


def in_nginx_string(text: str) -> str:
    """`text` inside an nginx "…" string that nginx reads as written (no variables)."""
    return quoted(text).replace("$", DOLLAR)


def client_variable(networks: Iterable[str]) -> str:
    """The variable that is 1 when the client's address is in one of `networks`, else 0."""
    digest = hashlib.sha256(" ".join(sorted(networks)).encode()).hexdigest()[:12]
    return f"$certbotless_client_{digest}"


def rejects_otherwise(route: Route) -> bool:
    """Whether the route's allowed networks answer other clients with another status than
    nginx's `deny` (403): checked on a `geo` variable instead."""
    return bool(route.allow_from) and route.allow_reject_status != 403


def client_geos(routes: Iterable[Route]) -> str:
    """One http-level `geo` per distinct set of client networks the routes' ClientIP ask (and
    their allowed networks, when they answer others with their own status)."""
    routes = list(routes)
    sets = {
        tuple(sorted(condition.values))
        for route in routes
        for condition in route.conditions
        if condition.check is Check.CLIENT_IP
    } | {tuple(sorted(r.allow_from)) for r in routes if rejects_otherwise(r)}
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
