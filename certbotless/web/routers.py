"""The status page's routers view, as Traefik's dashboard shows its routers: every route the
edge serves (what it matches, its service and port, its protections, TLS, the labels' dialect)
and every label problem with its words, per service. No I/O: computed from the discovery and
the certificates the page already reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from certbotless.edge.servers import certificate_per_host
from certbotless.labels.lint import route_options
from certbotless.model import Discovery, LabelProblem, Listed, Route


@dataclass(frozen=True)
class Router:
    route: Route
    rule: str  # what it matches, in Traefik's rule syntax
    priority: int | None  # Traefik's; None for native routes (nginx: longest path first)
    certificates: tuple[tuple[str, str | None], ...]  # host → its certificate (None: none yet)
    options: tuple[str, ...]  # its middlewares and protections, in words

    @property
    def tls(self) -> bool:
        """Every host has a certificate to serve (until then, the edge answers on HTTP)."""
        return all(name is not None for _, name in self.certificates)

    @property
    def http(self) -> str:
        return "redirected to HTTPS" if self.route.redirect_to_https else "served on HTTP too"

    def matches(self, text: str) -> bool:
        route = self.route
        words = [self.rule, route.service, str(route.port), route.dialect, *route.hosts,
                 *self.options, *(name for _, name in self.certificates if name)]  # fmt: skip
        return text.lower() in " ".join(words).lower()


@dataclass(frozen=True)
class ServiceProblems:
    service: str
    problems: tuple[LabelProblem, ...]

    def matches(self, text: str) -> bool:
        words = [self.service]
        words += [f"{p.label} {p.value} {p.message}" for p in self.problems]
        return text.lower() in " ".join(words).lower()


@dataclass(frozen=True)
class RoutersView:
    routers: tuple[Router, ...]  # by host, then path
    problems: tuple[ServiceProblems, ...]  # by service
    query: str  # the page's `router` filter

    @property
    def shown(self) -> tuple[Router, ...]:
        return tuple(r for r in self.routers if r.matches(self.query))

    @property
    def shown_problems(self) -> tuple[ServiceProblems, ...]:
        return tuple(p for p in self.problems if p.matches(self.query))

    @property
    def problem_count(self) -> int:
        return sum(len(service.problems) for service in self.problems)


def routers_view(found: Discovery, listing: Sequence[Listed], query: str = "") -> RoutersView:
    certs = {row.name: row.cert for row in listing if row.cert is not None}
    per_host = certificate_per_host(certs, {h for route in found.routes for h in route.hosts})
    routers = sorted(
        (_router(route, per_host) for route in found.routes),
        key=lambda r: (r.route.hosts, r.route.path, r.route.service),
    )
    by_service: dict[str, list[LabelProblem]] = {}
    for problem in found.problems:
        by_service.setdefault(problem.service, []).append(problem)
    problems = tuple(ServiceProblems(s, tuple(by_service[s])) for s in sorted(by_service))
    return RoutersView(tuple(routers), problems, query)


def _router(route: Route, per_host: dict[str, str]) -> Router:
    return Router(
        route=route,
        rule=rule_text(route),
        priority=route.priority,
        certificates=tuple((host, per_host.get(host)) for host in route.hosts),
        options=tuple(route_options(route)),
    )


def rule_text(route: Route) -> str:
    """What the route matches, written as a Traefik v3 rule (a router without a Host names
    none: it is served on its own stack's hosts and on names no route claims)."""
    parts = [] if route.every_host or not route.hosts else [_any_of("Host", route.hosts)]
    if route.exact_path:
        parts.append(f"Path(`{route.path}`)")
    elif route.path != "/" or not parts:
        parts.append(f"PathPrefix(`{route.path}`)")
    if route.methods:
        parts.append(_any_of("Method", route.methods))
    parts += [f"Header(`{name}`, `{value}`)" for name, value in route.match_headers]
    parts += [condition.rule() for condition in route.conditions]
    return " && ".join(parts)


def _any_of(matcher: str, values: Sequence[str]) -> str:
    text = " || ".join(f"{matcher}(`{value}`)" for value in values)
    return f"({text})" if len(values) > 1 else text


def routers_json(view: RoutersView) -> dict[str, object]:
    """GET /api/v1/routers: every router and label problem the `router` filter keeps (all by
    default)."""
    return {
        "query": view.query,
        "routers": [
            {
                "service": r.route.service,
                "dialect": r.route.dialect,
                "hosts": list(r.route.hosts),
                "every_host": r.route.every_host,
                "path": r.route.path,
                "exact_path": r.route.exact_path,
                "rule": r.rule,
                "priority": r.priority,
                "port": r.route.port,
                "scheme": r.route.upstream_scheme,
                "middlewares": list(r.options),
                "tls": r.tls,
                "certificates": {host: name for host, name in r.certificates},
                "redirect_to_https": r.route.redirect_to_https,
            }
            for r in view.shown
        ],
        "problems": [
            {"service": p.service, "label": p.label, "value": p.value, "message": p.message}
            for service in view.shown_problems
            for p in service.problems
        ],
    }
