"""One route per host and path from one service's Traefik routers: routers on the same host and
path (an HTTP and an HTTPS router with one rule, or overlapping rules) merge into the highest
priority's, and routers there that guard access differently are refused rather than merged
open."""

from __future__ import annotations

from dataclasses import replace

from certbotless.labels.traefik.priority import Ranked
from certbotless.model import LabelProblem, Route, ServiceInfo

Made = tuple[int, Route, str, str]  # priority, route, the rule's label, the router's name


def _guards(route: Route) -> tuple[object, ...]:
    return route.basic_auth, route.allow_from, route.auth_url


def _matches(route: Route) -> tuple[object, ...]:
    """What a route's requests must carry besides a method (methods of one place unite)."""
    return route.match_headers, route.conditions


def _guard_conflict(
    service: ServiceInfo, label: str, key: tuple[str, str, bool], first_label: str
) -> LabelProblem:
    return LabelProblem(
        service.name, label, service.labels.get(label, ""),
        f"{key[0]}{key[1]} is also served by {first_label} with other access middlewares "
        "(auth, allowlist) or conditions (Header, Query, ClientIP…); certbotless serves one "
        "route per host and path, so neither is routed there: give both routers the same ones",
    )  # fmt: skip


def one_route_per_path(
    service: ServiceInfo, made: list[Made]
) -> tuple[list[Route], list[LabelProblem], list[Ranked]]:
    """Routers of one service on the same host and path (an HTTP and an HTTPS router with one
    rule, or overlapping rules) make one route: the highest priority's, served over plain HTTP
    when any of them is. Routers there that guard access differently (Traefik could guard HTTPS
    and leave HTTP open) are refused rather than merged open. Also each route per host as
    Traefik orders it (the highest priority's router)."""
    chosen: dict[tuple[str, str, bool], tuple[Route, str]] = {}
    plain: set[tuple[str, str, bool]] = set()
    conflicts: dict[tuple[str, str, bool], LabelProblem] = {}
    ranks: dict[tuple[str, str, bool], tuple[int, str, str]] = {}
    for priority, route, label, router in sorted(made, key=lambda item: -item[0]):
        for host in route.hosts:
            key = (host, route.path, route.exact_path)
            ranks.setdefault(key, (priority, label, router))
            first, first_label = chosen.setdefault(
                key, (replace(route, hosts=(host,), priority=priority), label)
            )
            if _guards(first) != _guards(route) or _matches(first) != _matches(route):
                conflicts.setdefault(key, _guard_conflict(service, label, key, first_label))
            elif first.methods != route.methods:  # routers by method: one route for all of them
                methods = () if not (first.methods and route.methods) else tuple(
                    sorted({*first.methods, *route.methods})
                )  # fmt: skip
                chosen[key] = (replace(first, methods=methods), first_label)
            if not route.redirect_to_https:
                plain.add(key)
    grouped: dict[Route, list[str]] = {}
    for key, (route, _) in chosen.items():
        if key not in conflicts:
            route = replace(route, redirect_to_https=key not in plain, hosts=())
            grouped.setdefault(route, []).append(key[0])
    merged = [replace(route, hosts=tuple(hosts)) for route, hosts in grouped.items()]
    ranked = [
        Ranked(service.name, ranks[key][2], ranks[key][1], ranks[key][0], *key, _conditions(route))
        for key, (route, _) in chosen.items()
        if key not in conflicts
    ]
    return merged, list(conflicts.values()), ranked


def _conditions(route: Route) -> str:
    """A route's Method, Header and other conditions in words ("" when it has none)."""
    words = [f"method {' or '.join(route.methods)}"] if route.methods else []
    words += [f"header {name}: {value}" for name, value in route.match_headers]
    words += [condition.words() for condition in route.conditions]
    return " and ".join(words)
