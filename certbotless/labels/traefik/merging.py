"""One route per host, path and conditions from one service's Traefik routers: routers on the
same host, path and conditions (an HTTP and an HTTPS router with one rule, or overlapping
rules) merge into the highest priority's, and routers there that guard access differently are
refused rather than merged open."""

from __future__ import annotations

from dataclasses import replace

from certbotless.model import LabelProblem, Route, ServiceInfo

Made = tuple[int, Route, str, str]  # priority, route, the rule's label, the router's name


def _guards(route: Route) -> tuple[object, ...]:
    tls = route.client_tls
    return route.basic_auth, route.allow_from, route.auth_url, tls.client_auth, tls.auth_server


def _matches(route: Route) -> tuple[object, ...]:
    """What a route's requests must carry besides its host and path."""
    return route.methods, route.match_headers, route.conditions


def _guard_conflict(service: ServiceInfo, label: str, place: str, first_label: str) -> LabelProblem:
    return LabelProblem(
        service.name, label, service.labels.get(label, ""),
        f"{place} is also served by {first_label} with other access middlewares (auth, "
        "allowlist); certbotless serves one route per host, path and conditions, so neither "
        "is routed there: give both routers the same ones",
    )  # fmt: skip


def one_route_per_path(
    service: ServiceInfo, made: list[Made]
) -> tuple[list[Route], list[LabelProblem]]:
    """Routers of one service on the same host, path and conditions (an HTTP and an HTTPS
    router with one rule, or overlapping rules) make one route: the highest priority's, served
    over plain HTTP when any of them is. Routers there that guard access differently (Traefik
    could guard HTTPS and leave HTTP open) are refused rather than merged open."""
    chosen: dict[tuple[object, ...], tuple[Route, str]] = {}
    plain: set[tuple[object, ...]] = set()
    conflicts: dict[tuple[object, ...], LabelProblem] = {}
    for priority, route, label, _router in sorted(made, key=lambda item: -item[0]):
        for host in route.hosts or ("",):  # "": a router without a Host
            key = (host, route.path, route.exact_path, *_matches(route))
            first, first_label = chosen.setdefault(
                key, (replace(route, hosts=(host,) if host else (), priority=priority), label)
            )
            if _guards(first) != _guards(route):
                place = f"{host or 'every host'}{route.path}"
                conflicts.setdefault(key, _guard_conflict(service, label, place, first_label))
            if not route.redirect_to_https:
                plain.add(key)
    # Routes alike but for their priority (which Route equality leaves out) stay apart: the
    # edge orders each host's routes by it.
    grouped: dict[tuple[Route, int | None], list[str]] = {}
    for key, (route, _) in chosen.items():
        if key not in conflicts:
            host = route.hosts[0] if route.hosts else ""
            route = replace(route, redirect_to_https=key not in plain, hosts=(),
                            every_host=not host)  # fmt: skip
            grouped.setdefault((route, route.priority), []).extend([host] if host else [])
    merged = [replace(route, hosts=tuple(hosts)) for (route, _), hosts in grouped.items()]
    return merged, list(conflicts.values())
