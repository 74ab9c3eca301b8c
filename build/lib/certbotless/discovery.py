"""Swarm services → routes and certificate specs. Pure: takes ServiceInfo, returns Discovery."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from certbotless.model import CertSpec, Discovery, KeyType, LabelProblem, Route, ServiceInfo

LABEL_PREFIX = "certbotless."
DOMAINS = LABEL_PREFIX + "domains"
PORT = LABEL_PREFIX + "port"
PATH = LABEL_PREFIX + "path"
REDIRECT = LABEL_PREFIX + "redirect"
KEY_TYPE = LABEL_PREFIX + "key_type"
PROFILE = LABEL_PREFIX + "profile"

_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


class _Invalid(Exception):
    def __init__(self, problem: LabelProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


_InvalidFactory = Callable[[str, str], _Invalid]


def discover(services: Iterable[ServiceInfo]) -> Discovery:
    routes: list[Route] = []
    specs: dict[tuple[str, ...], CertSpec] = {}
    problems: list[LabelProblem] = []
    for service in sorted(services, key=lambda s: s.name):
        if DOMAINS not in service.labels:
            continue
        try:
            route, spec = _parse_service(service)
        except _Invalid as invalid:
            problems.append(invalid.problem)
            continue
        routes.append(route)
        specs.setdefault(spec.domains, spec)
    return Discovery(routes=tuple(routes), specs=tuple(specs.values()), problems=tuple(problems))


def _parse_service(service: ServiceInfo) -> tuple[Route, CertSpec]:
    labels = service.labels

    def invalid(label: str, message: str) -> _Invalid:
        return _Invalid(LabelProblem(service.name, label, labels.get(label, ""), message))

    hosts = tuple(dict.fromkeys(_parse_hostname(h, invalid) for h in labels[DOMAINS].split(",")))

    port_text = labels.get(PORT, "").strip()
    if not port_text:
        raise invalid(PORT, f"missing; set {PORT} to the port the service listens on, e.g. 8000")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise invalid(PORT, "must be a port number from 1 to 65535")

    path = labels.get(PATH, "/").strip() or "/"
    if not path.startswith("/") or any(c.isspace() or c in "{};\"'" for c in path):
        raise invalid(PATH, "must start with / and contain no spaces, quotes, braces or ';'")

    redirect_text = labels.get(REDIRECT, "true").strip().lower()
    if redirect_text not in _TRUE | _FALSE:
        raise invalid(REDIRECT, "must be true or false")

    key_text = labels.get(KEY_TYPE, KeyType.EC256.value).strip().lower()
    try:
        key_type = KeyType(key_text)
    except ValueError:
        raise invalid(KEY_TYPE, "must be one of " + ", ".join(k.value for k in KeyType)) from None

    profile = labels.get(PROFILE, "").strip() or None
    route = Route(
        service=service.name,
        hosts=hosts,
        port=int(port_text),
        path=path,
        redirect_to_https=redirect_text in _TRUE,
    )
    return route, CertSpec(name=hosts[0], domains=hosts, key_type=key_type, profile=profile)


def _parse_hostname(raw: str, invalid: _InvalidFactory) -> str:
    host = raw.strip().rstrip(".").lower()
    if not host:
        raise invalid(DOMAINS, "contains an empty name; separate hostnames with single commas")
    if host.startswith("*."):
        raise invalid(
            DOMAINS,
            f"{host} is a wildcard; HTTP-01 cannot validate wildcards, list each hostname instead",
        )
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise invalid(DOMAINS, f"{raw.strip()} is not a valid hostname") from None
    labels = host.split(".")
    if len(host) > 253 or len(labels) < 2 or not all(_LABEL_RE.match(p) for p in labels):
        raise invalid(
            DOMAINS, f"{host} is not a fully qualified hostname (letters, digits, '-', dots)"
        )
    if labels[-1].isdigit():
        raise invalid(DOMAINS, f"{host} is an IP address; certificates here are for hostnames")
    return host


EDGE = LABEL_PREFIX + "edge"


class EdgeNotFound(LookupError):
    pass


def find_edge_service(services: Iterable[ServiceInfo]) -> str:
    """The nginx service is the one labelled certbotless.edge=true."""
    edges = [s.name for s in services if s.labels.get(EDGE, "").lower() in _TRUE]
    if len(edges) == 1:
        return edges[0]
    if not edges:
        raise EdgeNotFound(
            f"no service is labelled {EDGE}=true; add that label to the nginx service's "
            "deploy.labels or set CERTBOTLESS_NGINX_SERVICE"
        )
    raise EdgeNotFound(
        f"several services are labelled {EDGE}=true ({', '.join(sorted(edges))}); "
        "keep it on one or set CERTBOTLESS_NGINX_SERVICE"
    )
