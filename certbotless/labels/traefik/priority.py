"""Traefik's router order within a host, where nginx's differs. Pure.

Traefik tries a host's routers by priority (the `priority` label, else the rule's length; ties in
an order it does not define) and the first whose rule matches serves the request
(pkg/muxer/http/mux.go). nginx picks a location by path first (exact, else the longest prefix)
and then checks its Method and Header conditions, answering 404 when they fail. The two agree
unless a router's paths lie inside another's (`PathPrefix(/my)` holds `/mypath`) and either

- the outer router outranks the inner one: the outer one takes the inner one's requests first
  (all of them when it has no conditions: the inner one is never reached in Traefik either), or
- the inner one has conditions: the requests that fail them go on to the outer one in Traefik,
  where nginx answers 404.

Either way the inner router is refused, with one problem naming the router that decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Ranked:
    """One route of a router on one host, with what Traefik orders it by."""

    service: str
    router: str
    label: str  # the rule's label, which a problem names
    priority: int
    host: str
    path: str
    exact: bool
    conditions: str  # its Method and Header conditions in words; "" when it has none


def _inside(inner: Ranked, outer: Ranked) -> bool:
    """Whether every path `inner` matches, `outer` matches too, and nginx prefers `inner`."""
    if outer.exact or not inner.path.startswith(outer.path):
        return False
    return inner.exact or inner.path != outer.path


def _words(route: Ranked) -> str:
    return f"router {route.router} of service {route.service} (priority {route.priority})"


def _why_refused(inner: Ranked, outer: Ranked) -> str | None:
    place = f"{inner.host}{inner.path}"
    if outer.priority > inner.priority and not outer.conditions:
        return (f"never reached: {_words(outer)} matches every request this router matches "
                f"({place}) and comes first in Traefik's order (the priority label, else the "
                "rule's length), so Traefik never routes here, and neither does certbotless: "
                f"remove this router, or give it a priority above {outer.priority}")  # fmt: skip
    if outer.priority > inner.priority:
        return (f"{_words(outer)} comes first in Traefik's order and takes this router's "
                f"requests ({place}) that have {outer.conditions}; nginx chooses by path before "
                "such conditions and cannot route them there, so this router is not routed: "
                f"give it a priority above {outer.priority}, or drop the other's "
                "conditions")  # fmt: skip
    if inner.conditions:
        return (f"the requests for {place} without {inner.conditions} go on to "
                f"{_words(outer)} in Traefik, where nginx would answer them 404 (it chooses by "
                "path before such conditions), so this router is not routed: drop its "
                "conditions, or give the other router a path that excludes "
                f"{inner.path}")  # fmt: skip
    return None


def refused_by_order(routes: Sequence[Ranked]) -> dict[Ranked, str]:
    """The routes nginx would route otherwise than Traefik, each with its problem's message."""
    by_host: dict[str, list[Ranked]] = {}
    for route in routes:
        by_host.setdefault(route.host, []).append(route)
    refused: dict[Ranked, str] = {}
    for host_routes in by_host.values():
        ordered = sorted(host_routes, key=lambda r: -r.priority)
        for inner in host_routes:
            for outer in ordered:
                why = _why_refused(inner, outer) if _inside(inner, outer) else None
                if why is not None:
                    refused[inner] = why
                    break
    return refused
