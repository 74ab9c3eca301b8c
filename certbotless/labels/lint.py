"""`certbotless lint`: stacks' compose files → what the sidecar would make of them, before
deploy. Runs the sidecar's own discovery (`dialects.discovered`, every label dialect it reads)
on services built from the files, so it reports what a pass would report; it needs no swarm.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from certbotless.labels.compose import (
    ComposeError,
    Runner,
    Stack,
    StackFiles,
    labels_mapping,
    load_stack,
)
from certbotless.labels.dialects import discovered
from certbotless.model import CertSpec, Discovery, LabelProblem, Route, ServiceInfo
from certbotless.settings import Settings

# The edge of the production guide's set-up (`docker stack deploy -c stacks/edge.yml edge`).
DEFAULT_EDGE = "edge_nginx"
# Stacks named earlier count as deployed earlier: they own what they claim first.
_FIRST_DEPLOYED = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class ServiceReport:
    stack: str
    name: str  # as deployed: <stack>_<service>
    routes: tuple[Route, ...]
    problems: tuple[LabelProblem, ...]


@dataclass(frozen=True)
class LintReport:
    stacks: tuple[Stack, ...]
    edge: str
    edge_linted: bool  # the edge is among the stacks, so shared networks were checked
    services: tuple[ServiceReport, ...]
    specs: tuple[CertSpec, ...]
    problems: tuple[LabelProblem, ...]
    routes: tuple[Route, ...] = ()  # every route, as the edge would serve them

    @property
    def ok(self) -> bool:
        return not self.problems


def lint(
    stack_files: Sequence[StackFiles],
    settings: Settings,
    env: Mapping[str, str],
    docker: Runner | None = None,
    edge: str | None = None,
) -> LintReport:
    """Raises ComposeError for input that cannot be read."""
    names = [s.name for s in stack_files]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ComposeError(
            f"two stacks are named {', '.join(twice)}; name each one: NAME=FILE[,FILE…]"
        )
    stacks = tuple(load_stack(files, env, docker) for files in stack_files)
    services: list[ServiceInfo] = []
    misplaced: list[LabelProblem] = []
    for order, stack in enumerate(stacks):
        stack_services, stack_misplaced = services_of(stack, order, settings.label_dialects)
        services += stack_services
        misplaced += stack_misplaced
    edge = edge or settings.nginx_service or DEFAULT_EDGE
    found = discovered(settings, services, edge)
    return _report(stacks, services, edge, found, misplaced)


def services_of(
    stack: Stack, order: int, dialects: frozenset[str] = frozenset({"certbotless"})
) -> tuple[list[ServiceInfo], list[LabelProblem]]:
    """Each service as the swarm would list it once deployed (`<stack>_<name>`, its
    `deploy.labels`, its networks' names), and labels of the `dialects` put on its
    containers."""
    config = stack.config
    top_networks = config.get("networks") or {}
    services, misplaced = [], []
    for key, service in sorted(config["services"].items()):
        name = f"{stack.name}_{key}"
        deploy = service.get("deploy") or {}
        labels = labels_mapping(deploy.get("labels"))
        networks = _network_names(stack.name, service, top_networks)
        services.append(
            ServiceInfo(
                name=name,
                labels=labels,
                network_ids=networks,
                network_names=networks,
                stack=stack.name,
                created_at=_FIRST_DEPLOYED + timedelta(minutes=order),
            )
        )
        prefixes = tuple(f"{dialect}." for dialect in sorted(dialects))
        misplaced += _container_labels(
            name, labels_mapping(service.get("labels")), labels, prefixes
        )
    return services, misplaced


def _container_labels(
    service: str, container: dict[str, str], deploy: dict[str, str], prefixes: tuple[str, ...]
) -> list[LabelProblem]:
    """A service's own `labels:` go on its containers, where certbotless never looks (Traefik's
    docker provider reads them there; its swarm mode, like certbotless, does not)."""
    return [
        LabelProblem(service, label, value,
                     "is under the service's labels:, which Swarm puts on its containers; "
                     "certbotless reads only the service's deploy.labels: move it under "
                     "deploy: labels:")
        for label, value in sorted(container.items())
        if label.startswith(prefixes) and deploy.get(label) != value
    ]  # fmt: skip


def _network_names(stack: str, service: dict[str, Any], top: dict[str, Any]) -> tuple[str, ...]:
    """The networks' names as deployed: a network's own `name:`, an external one's key, or
    `<stack>_<key>`. A service that names none is on the stack's default network. Sorted, as
    the Docker CLI gives them."""
    networks = service.get("networks")
    if isinstance(networks, dict | list):
        keys = [str(k) for k in networks]
    else:
        keys = [] if service.get("network_mode") else ["default"]
    names = []
    for key in keys:
        spec = top.get(key) if isinstance(top, dict) else None
        spec = spec if isinstance(spec, dict) else {}
        external = spec.get("external")
        name = spec.get("name")
        if isinstance(external, dict):  # the old form: external: {name: …}
            name = external.get("name") or name or key
        elif external is True:
            name = name or key
        names.append(str(name or f"{stack}_{key}"))
    return tuple(sorted(names))


def _report(
    stacks: tuple[Stack, ...],
    services: list[ServiceInfo],
    edge: str,
    found: Discovery,
    misplaced: list[LabelProblem],
) -> LintReport:
    problems = (*misplaced, *found.problems)
    return LintReport(
        stacks=stacks,
        edge=edge,
        edge_linted=any(s.name == edge for s in services),
        services=tuple(
            ServiceReport(
                stack=service.stack,
                name=service.name,
                routes=tuple(r for r in found.routes if r.service == service.name),
                problems=tuple(p for p in problems if p.service == service.name),
            )
            for service in services
        ),
        specs=found.specs,
        problems=problems,
        routes=found.routes,
    )


def report_text(report: LintReport) -> str:
    lines: list[str] = []
    for stack in report.stacks:
        files = ", ".join(str(f) for f in stack.files)
        lines.append(f"stack {stack.name} ({files}; read by {stack.read_by})")
        lines += [f"  note: {note}" for note in stack.notes]
        for service in report.services:
            if service.stack == stack.name:
                lines += _service_lines(service)
    lines.append("certificates:" if report.specs else "certificates: none")
    lines += [f"  {_spec_text(spec)}" for spec in report.specs]
    lines.append(
        f"edge: {report.edge}"
        + ("" if report.edge_linted else " (not among these stacks, so networks shared with "
           "it were not checked; --edge names it)")
    )  # fmt: skip
    served = sum(1 for s in report.services if s.routes)
    lines.append(
        f"{len(report.services)} service(s), {served} routed, {len(report.specs)} "
        f"certificate(s), {len(report.problems)} problem(s)"
    )
    return "\n".join(lines) + "\n"


def _service_lines(service: ServiceReport) -> list[str]:
    if not service.routes and not service.problems:
        return [f"  {service.name}: not routed"]
    lines = [f"  {service.name}:"]
    lines += [f"    route {_route_text(route)}" for route in service.routes]
    lines += [f"    PROBLEM label {p.label}={p.value!r}: {p.message}" for p in service.problems]
    return lines


def _route_text(route: Route) -> str:
    targets = ", ".join(f"{host}{route.path}" for host in route.hosts)
    options = [f"port {route.port}"]
    options.append("HTTP redirected to HTTPS" if route.redirect_to_https else "HTTP and HTTPS")
    return f"{targets} → {'; '.join(options + route_options(route))}"


def route_options(route: Route) -> list[str]:
    """What a route does besides proxying to its port, in words (never the users' hashes), as
    lint reports it and the status page's routers view shows it."""
    options = []
    if route.hsts:
        options.append("HSTS")
    if route.max_body_size:
        options.append(f"bodies up to {route.max_body_size}")
    if route.auth_url:
        options.append(f"forward auth {route.auth_url}")
    if route.error_pages:
        options.append(f"error pages {route.error_pages.url}")
    if route.timeout:
        options.append(f"timeout {route.timeout}")
    return options + _access_text(route) + _shaping_text(route)


def _access_text(route: Route) -> list[str]:
    """Who gets in (never the users' hashes)."""
    options = []
    if route.methods or route.match_headers or route.conditions:
        asked = [*route.methods, *(f"{name}: {value}" for name, value in route.match_headers),
                 *(condition.words() for condition in route.conditions)]  # fmt: skip
        options.append(f"only {', '.join(asked)} (others 404)")
    if route.basic_auth is not None:
        given = [f"{len(route.basic_auth.users)} user(s)"] * bool(route.basic_auth.users)
        if route.basic_auth.secret:
            given.append(f"users of secret {route.basic_auth.secret}")
        users = " and ".join(given)
        options.append(f"basic auth ({users})")
    if route.allow_from:
        options.append(f"only from {', '.join(route.allow_from)}")
    if route.rate_limit is not None:
        options.append(f"{route.rate_limit.per_minute} requests a minute per client, "
                       f"{route.rate_limit.burst} more at once")  # fmt: skip
    if route.max_connections is not None:
        options.append(f"{route.max_connections} requests in flight per client")
    return options


def _shaping_text(route: Route) -> list[str]:
    options = []
    if route.strip_prefixes:
        options.append(f"strips {', '.join(route.strip_prefixes)}")
    if route.add_prefix:
        options.append(f"adds {route.add_prefix}")
    if route.replace_path is not None:
        options.append(f"path {route.replace_path[0]} → {route.replace_path[1]}")
    if route.request_headers or route.response_headers:
        options.append(f"{len(route.request_headers)} request and "
                       f"{len(route.response_headers)} answer header(s)")  # fmt: skip
    if route.cors is not None:
        options.append(f"CORS for {', '.join(route.cors.origins) or 'no origin'}")
    if route.compress:
        options.append("gzip")
    if route.retries:
        options.append(f"{route.retries} retries")
    return options


def _spec_text(spec: CertSpec) -> str:
    profile = f", profile {spec.profile}" if spec.profile else ""
    return f"{spec.name}: {', '.join(spec.domains)} ({spec.key_type.value}{profile})"


def report_json(report: LintReport) -> str:
    return json.dumps(
        {
            "ok": report.ok,
            "edge": report.edge,
            "edge_linted": report.edge_linted,
            "stacks": [_stack_json(stack, report) for stack in report.stacks],
            "certificates": [_spec_json(spec) for spec in report.specs],
            "problems": [_problem_json(p) for p in report.problems],
        },
        indent=2,
        default=str,  # enums and the like a Route may hold
    )


def _stack_json(stack: Stack, report: LintReport) -> dict[str, Any]:
    return {
        "name": stack.name,
        "files": [str(f) for f in stack.files],
        "read_by": stack.read_by,
        "notes": list(stack.notes),
        "services": [
            {
                "name": service.name,
                "routes": [_route_json(route) for route in service.routes],
                "problems": [_problem_json(p) for p in service.problems],
            }
            for service in report.services
            if service.stack == stack.name
        ],
    }


def _route_json(route: Route) -> dict[str, Any]:
    # Every field, so options a dialect adds to Route show without a change here.
    fields = dataclasses.asdict(route)
    del fields["service"]
    return fields


def _spec_json(spec: CertSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "domains": list(spec.domains),
        "key_type": spec.key_type.value,
        "profile": spec.profile,
    }


def _problem_json(problem: LabelProblem) -> dict[str, str]:
    return {
        "service": problem.service,
        "label": problem.label,
        "value": problem.value,
        "message": problem.message,
    }
