"""Swarm services → routes and certificate specs. Pure: takes ServiceInfo, returns Discovery.

Each dialect reads its labels (native.py, traefik/); this module settles what they claim: a
certificate name, a host+path and a host's HSTS belong to their oldest claimant. It also finds
the edge service by its label.

Every problem is a LabelProblem naming the service, the label, the value and the fix; a bad
service is left out and every other one goes on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import MappingProxyType

from certbotless.labels.native import (
    CERTIFICATE_PREFIX,
    DNS_PROVIDER,
    DNS_ZONE,
    EDGE,
    HSTS,
    KEY_TYPE,
    NAME,
    PATH,
    REDIRECT,
    native_route,
    parse_certificate_label,
    unrendered_protections,
)
from certbotless.labels.values import (
    CHALLENGE,
    DOMAINS,
    PROFILE,
    TRUE_WORDS,
    InvalidLabel,
)
from certbotless.model import (
    CertSpec,
    ChallengeMode,
    DialectClaims,
    Discovery,
    LabelProblem,
    Route,
    ServiceInfo,
    is_ip_address,
)

NETWORKS = "networks"  # not a label: reported when a service shares no network with the edge
_DAWN = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class _Claim:
    """A certificate one service asks for, and the label that asks (for its problem)."""

    service: ServiceInfo
    label: str
    spec: CertSpec
    routed: bool = False  # the service's routes use it: refused, they are not routed either


def discover(
    services: Iterable[ServiceInfo],
    edge: str | None = None,
    routing: bool = True,
    *,
    native: bool = True, foreign: Mapping[str, DialectClaims] = MappingProxyType({}),
    secrets: frozenset[str] | None = None,
) -> Discovery:  # fmt: skip
    """Routes and certificates from the labels of `services`. With `edge` (the nginx service's
    name), a service that shares no network with it is reported instead of routed. Without
    `routing` (the operator writes nginx.conf), `certbotless.port` is not needed. `native`:
    whether certbotless.* labels are read; `foreign`: what Traefik's dialect read from each
    service, settled with them; `secrets`: the swarm's secret names.

    Oldest service first: a certificate name, a host+path and a host's HSTS belong to the
    service that claimed them first, whatever the dialect, so a newer service can be refused
    but never changes them."""
    services = sorted(services, key=claim_order)
    edge_info = next((s for s in services if s.name == edge), None)
    routes: list[Route] = []
    claims: list[_Claim] = []
    problems: list[LabelProblem] = []
    for service in services:
        if service.name in foreign:
            found = foreign[service.name]
            problems += found.problems
            reachable = _foreign_routes(service, found, edge_info, problems) if routing else []
            routes += reachable
            if not routing or reachable or not found.routes:
                claims += [_Claim(service, label, spec, routed=bool(reachable))
                           for label, spec in found.certificates]  # fmt: skip
        if not native:
            continue
        if edge is not None and service.name != edge and labelled_edge(service):
            problems.append(_edge_label_problem(service, edge))
        claims += _certificate_claims(service, problems)
        if DOMAINS not in service.labels:
            continue
        problems += [] if routing else unrendered_protections(service)
        try:
            route, spec = native_route(service, routing, secrets)
            if edge_info is not None and routing:
                _check_shared_network(service, edge_info)
        except InvalidLabel as invalid:
            problems.append(invalid.problem)
            continue
        routes += [route] if route is not None else []
        claims.append(_Claim(service, DOMAINS, spec, routed=routing))
    specs, refused, refusals = _settle_certificates(claims)
    routes = [route for route in routes if route.service not in refused]
    routes, conflicts = _first_claim_per_path(routes)
    routes = _every_host_routes_on_their_stack(routes, {s.name: s for s in services})
    routes, host_options = _host_options_of_their_owner(routes, {s.name: s for s in services})
    routes, host_options = _one_client_auth_per_host(routes, host_options)
    routes, extra_addresses = _one_ip_address(routes)
    return Discovery(
        routes=tuple(routes),
        specs=tuple(specs),
        problems=tuple(problems + refusals + conflicts + host_options + extra_addresses),
    )


def _foreign_routes(
    service: ServiceInfo,
    found: DialectClaims,
    edge_info: ServiceInfo | None,
    problems: list[LabelProblem],
) -> list[Route]:
    if found.routes and edge_info is not None:
        try:
            _check_shared_network(service, edge_info)
        except InvalidLabel as invalid:
            problems.append(invalid.problem)
            return []
    return list(found.routes)


def claim_order(service: ServiceInfo) -> tuple[bool, datetime, str]:
    """Oldest first by Swarm's CreatedAt; a service of unknown age after every dated one; ties
    by name."""
    return (service.created_at is None, service.created_at or _DAWN, service.name)


def _same_owner(one: ServiceInfo, other: ServiceInfo) -> bool:
    """Services of one stack are one team's: they may share certificates and hosts."""
    return one.name == other.name or (bool(one.stack) and one.stack == other.stack)


def _owner_words(owner: ServiceInfo) -> str:
    return f"{owner.name} (stack {owner.stack})" if owner.stack else owner.name


def _edge_label_problem(service: ServiceInfo, edge: str | None) -> LabelProblem:
    return LabelProblem(
        service.name,
        EDGE,
        service.labels[EDGE],
        f"ignored: the edge is {edge or 'not found'}, either CERTBOTLESS_NGINX_SERVICE or the "
        "service labelled so in certbotless's own stack; remove this label",
    )


def _certificate_claims(service: ServiceInfo, problems: list[LabelProblem]) -> list[_Claim]:
    claims = []
    for label, value in sorted(service.labels.items()):
        if label.startswith(CERTIFICATE_PREFIX):
            try:
                spec = parse_certificate_label(service, label, value)
            except InvalidLabel as invalid:
                problems.append(invalid.problem)
                continue
            claims.append(_Claim(service, label, spec))
    return claims


def _settle_certificates(
    claims: list[_Claim],
) -> tuple[list[CertSpec], set[str], list[LabelProblem]]:
    """Each name is its first claimant's. Its stack's later claimants add their domains when
    they ask for the same key type and profile; another stack's only share it as it is. A
    certificate names a host only if no other stack claimed that host first. Returns the specs,
    the services whose own route's certificate was refused (not routed either), the refusals."""
    host_owner: dict[str, _Claim] = {}
    by_name: dict[str, list[_Claim]] = {}
    for claim in claims:  # oldest first
        for host in claim.spec.domains:
            host_owner.setdefault(host, claim)
        by_name.setdefault(claim.spec.name, []).append(claim)
    specs, refused, problems = [], set(), []
    for name_claims in by_name.values():
        spec, refusals = _settle_name(name_claims, host_owner)
        if spec is not None:
            specs.append(spec)
        for claim, problem in refusals:
            problems.append(problem)
            if claim.routed:
                refused.add(claim.service.name)
    return specs, refused, problems


_Refusal = tuple[_Claim, LabelProblem]


def _settle_name(
    claims: list[_Claim], host_owner: dict[str, _Claim]
) -> tuple[CertSpec | None, list[_Refusal]]:
    owner: _Claim | None = None
    spec: CertSpec | None = None
    strangers: list[_Claim] = []
    refusals: list[_Refusal] = []
    for claim in claims:
        if owner is not None and not _same_owner(claim.service, owner.service):
            strangers.append(claim)
            continue
        problem = _host_taken(claim, host_owner) or _options_differ(claim, owner, spec)
        if problem is not None:
            refusals.append((claim, problem))
        elif owner is None or spec is None:
            owner, spec = claim, claim.spec
        else:
            spec = replace(spec, domains=tuple(dict.fromkeys((*spec.domains, *claim.spec.domains))))
    for claim in strangers:
        assert owner is not None and spec is not None
        if not _asks_nothing_more(claim.spec, spec):
            refusals.append((claim, _name_taken(claim, owner, spec)))
    return spec, refusals


def _asks_nothing_more(asked: CertSpec, spec: CertSpec) -> bool:
    return (
        set(asked.domains) <= set(spec.domains)
        and (asked.key_type, asked.profile) == (spec.key_type, spec.profile)
        and _challenge_options(asked) == _challenge_options(spec)
    )


def _challenge_options(spec: CertSpec) -> tuple[ChallengeMode, str | None, str | None]:
    return spec.challenge, spec.dns_provider, spec.dns_zone


def _claim_problem(claim: _Claim, label: str, message: str) -> LabelProblem:
    return LabelProblem(claim.service.name, label, claim.service.labels.get(label, ""), message)


def _host_taken(claim: _Claim, host_owner: dict[str, _Claim]) -> LabelProblem | None:
    for host in claim.spec.domains:
        first = host_owner[host]
        if _same_owner(first.service, claim.service):
            continue
        fix = (
            f"to serve a path on {host}, set {NAME}={first.spec.name} to share that certificate "
            f"as it is; or drop {host}"
            if claim.label == DOMAINS
            else f"drop {host} from it"
        )
        return _claim_problem(
            claim,
            claim.label,
            f"{host} belongs to {_owner_words(first.service)}, another stack's service that "
            f"claimed it first, so no certificate of this service may name it; {fix}",
        )
    return None


def _options_differ(
    claim: _Claim, owner: _Claim | None, spec: CertSpec | None
) -> LabelProblem | None:
    if owner is None or spec is None:
        return None
    challenge = _challenge_options(claim.spec)
    if challenge != _challenge_options(spec):
        mode, provider, zone = _challenge_options(spec)
        return _claim_problem(
            claim,
            CHALLENGE,
            f"certificate {spec.name} is {owner.service.name}'s, with {CHALLENGE} {mode.value}, "
            f"{DNS_PROVIDER} {provider or '(default)'} and {DNS_ZONE} {zone or '(found)'}; "
            f"services of one stack share a certificate only when these agree: set them "
            f"alike, or choose another {NAME}",
        )
    label = KEY_TYPE if claim.spec.key_type != spec.key_type else PROFILE
    if claim.spec.profile == spec.profile and label == PROFILE:
        return None
    return _claim_problem(
        claim,
        label,
        f"certificate {spec.name} is {owner.service.name}'s, with {KEY_TYPE} "
        f"{spec.key_type.value} and {PROFILE} {spec.profile or '(none)'}; services of one stack "
        f"share a certificate only when these agree: set them alike, or choose another {NAME}",
    )


def _name_taken(claim: _Claim, owner: _Claim, spec: CertSpec) -> LabelProblem:
    label = claim.label if claim.label != DOMAINS or NAME not in claim.service.labels else NAME
    return _claim_problem(
        claim,
        label,
        f"certificate {spec.name} belongs to {_owner_words(owner.service)}, another stack's "
        f"service that claimed it first; another stack may only share it as it is "
        f"({', '.join(spec.domains)}, {spec.key_type.value}"
        f"{', profile ' + spec.profile if spec.profile else ''}): choose another {NAME}",
    )


def _first_claim_per_path(routes: list[Route]) -> tuple[list[Route], list[LabelProblem]]:
    """A host+path (with its conditions) is its first claimant's; a later one is not routed
    there."""
    first: dict[tuple[object, ...], str] = {}
    kept, problems = [], []
    for route in routes:  # oldest first
        hosts = []
        conditions = (route.methods, route.match_headers, route.conditions)
        for host in route.hosts:
            owner = first.setdefault((host, route.path, route.exact_path, *conditions),
                                     route.service)  # fmt: skip
            if owner == route.service:
                hosts.append(host)
                continue
            problems.append(
                LabelProblem(route.service, DOMAINS, host,
                             f"{host}{route.path} is {owner}'s, which claimed it first; this "
                             f"service is not routed there until it changes {PATH} or {DOMAINS}")
            )  # fmt: skip
        if hosts or route.every_host:
            kept.append(replace(route, hosts=tuple(hosts)))
    return kept, problems


def _every_host_routes_on_their_stack(
    routes: list[Route], services: dict[str, ServiceInfo]
) -> list[Route]:
    """A router without a Host is served on the hosts its own stack routes, and on names no
    route claims; never on another stack's hosts, which it could otherwise take over by
    priority (Traefik, with no stacks, serves it on every host)."""
    placed = []
    for route in routes:
        if route.every_host:
            owner = services[route.service]
            team = [r for r in routes if _same_owner(owner, services[r.service])]
            hosts = [host for other in team if not other.every_host for host in other.hosts]
            route = replace(route, hosts=tuple(dict.fromkeys(hosts)))
        placed.append(route)
    return placed


def _host_options_of_their_owner(
    routes: list[Route], services: dict[str, ServiceInfo]
) -> tuple[list[Route], list[LabelProblem]]:
    """HSTS is sent per host, so the host's first route and its stack decide it: another
    stack's route there that would turn it on (hsts=true) or that browsers would refuse under
    it (redirect=false) is not routed there. Within the stack, a plain-HTTP route turns HSTS off
    for the host, and that is reported."""
    by_host: dict[str, list[Route]] = {}
    for route in routes:
        for host in route.hosts:
            by_host.setdefault(host, []).append(route)
    refused: set[tuple[str, str]] = set()
    problems: list[LabelProblem] = []
    for host, host_routes in by_host.items():
        owner = services[host_routes[0].service]
        team = [r for r in host_routes if _same_owner(services[r.service], owner)]
        hsts = any(r.hsts for r in team) and all(r.redirect_to_https for r in team)
        problems += _hsts_beside_plain_http(host, team)
        for route in host_routes:
            problem = None if route in team else _host_option_problem(host, route, owner, hsts)
            if problem is not None:
                problems.append(problem)
                refused.add((route.service, host))
    kept = []
    for route in routes:
        hosts = tuple(h for h in route.hosts if (route.service, h) not in refused)
        if hosts or route.every_host:
            kept.append(replace(route, hosts=hosts))
    return kept, problems


def _one_client_auth_per_host(
    routes: list[Route], problems: list[LabelProblem]
) -> tuple[list[Route], list[LabelProblem]]:
    """nginx asks for client certificates per server, so a host's first route decides which
    (its TLS options' clientAuth, or none): a later route asking other is not routed there,
    never served under a check it did not ask for, nor the host served open."""
    first: dict[str, Route] = {}
    kept = []
    problems = list(problems)
    for route in routes:
        wanted = route.client_tls.client_auth
        hosts = []
        for host in route.hosts:
            decided = first.setdefault(host, route).client_tls.client_auth
            if decided == wanted:
                hosts.append(host)
                continue
            asked = wanted.options if wanted else "none"
            problems.append(LabelProblem(route.service, "tls.options", asked,
                                         f"{host} is served by {first[host].service} asking "
                                         f"for {decided.options if decided else 'no'} client "
                                         f"certificates (TLS options), and nginx asks them per "
                                         f"host: this route is not routed on {host} until its "
                                         "routers name the same tls.options"))  # fmt: skip
        if hosts or route.every_host or not route.hosts:
            kept.append(replace(route, hosts=tuple(hosts)))
    return kept, problems


def _host_option_problem(
    host: str, route: Route, owner: ServiceInfo, hsts: bool
) -> LabelProblem | None:
    owner_words = f"{host} belongs to {_owner_words(owner)}, another stack's service"
    if route.hsts and not hsts:
        return LabelProblem(route.service, HSTS, "true",
                            f"{owner_words}, which sends no HSTS there; HSTS is its choice, "
                            f"so this route is not routed on {host} until it drops {HSTS}",
                            )  # fmt: skip
    if hsts and not route.redirect_to_https:
        return LabelProblem(route.service, REDIRECT, "false",
                            f"{owner_words}, which sends HSTS there, so browsers would refuse "
                            f"plain HTTP; this route is not routed on {host} until it drops "
                            f"{REDIRECT}=false")  # fmt: skip
    return None


def _hsts_beside_plain_http(host: str, team: list[Route]) -> list[LabelProblem]:
    """HSTS makes browsers refuse plain HTTP for the whole host, so a redirect=false route on the
    same host would stop working for them. The edge then sends no HSTS for that host."""
    return [
        LabelProblem(hsts_route.service, HSTS, "true",
                     f"{host}{plain.path} is plain HTTP ({plain.service} has {REDIRECT}=false), "
                     f"and HSTS would make browsers refuse it; {host} gets no HSTS until one "
                     "of them changes")
        for hsts_route in team
        if hsts_route.hsts
        for plain in team
        if not plain.redirect_to_https
    ]  # fmt: skip


def _check_shared_network(service: ServiceInfo, edge: ServiceInfo) -> None:
    if set(service.network_ids) & set(edge.network_ids):
        return
    edge_networks = ", ".join(edge.network_names or edge.network_ids) or "(none)"
    raise InvalidLabel(
        LabelProblem(
            service.name,
            NETWORKS,
            ", ".join(service.network_names or service.network_ids) or "(none)",
            f"shares no network with the edge {edge.name}, so nginx cannot reach it; attach it "
            f"to {edge_networks} (in a stack file: an external network)",
        )
    )


def _one_ip_address(routes: list[Route]) -> tuple[list[Route], list[LabelProblem]]:
    """Clients of an IP address send no SNI, so nginx can give only its default server's
    certificate: one IP address can be served, the first claimed; routes to others are reported."""
    # The first claimed (routes come oldest first): a newer service cannot take it.
    addresses = list(dict.fromkeys(h for r in routes for h in r.hosts if is_ip_address(h)))
    if len(addresses) < 2:
        return routes, []
    served = addresses[0]
    problems = [
        LabelProblem(route.service, DOMAINS, host,
                     f"only one IP address can be served and {served} is; clients send no name "
                     "with an address, so nginx cannot choose between their certificates")
        for route in routes
        for host in route.hosts
        if is_ip_address(host) and host != served
    ]  # fmt: skip
    kept = []
    for route in routes:
        hosts = tuple(h for h in route.hosts if not is_ip_address(h) or h == served)
        if hosts or route.every_host:
            kept.append(replace(route, hosts=hosts))
    return kept, problems


class EdgeNotFound(LookupError):
    pass


def labelled_edge(service: ServiceInfo) -> bool:
    return service.labels.get(EDGE, "").strip().lower() in TRUE_WORDS


def find_edge_service(services: Iterable[ServiceInfo], own_service: str | None) -> str:
    """The nginx service: the one labelled certbotless.edge=true in certbotless's own stack
    (`own_service` is certbotless's own service). The label anywhere else makes no edge, so no
    service can take every key or stop every pass with it; `discover` reports it."""
    services = list(services)
    own = next((s for s in services if s.name == own_service), None)
    if own is None or not own.stack:
        why = (
            "does not know its own service" if own_service is None
            else f"finds its own service {own_service} in no stack" if own is not None
            else f"finds no service named {own_service} (its own)"
        )  # fmt: skip
        raise EdgeNotFound(
            f"certbotless takes {EDGE}=true only from its own stack, and {why}; set "
            "CERTBOTLESS_NGINX_SERVICE to the nginx service's name, or CERTBOTLESS_SERVICE to "
            "certbotless's own service in a stack"
        )
    edges = [s.name for s in services if s.stack == own.stack and labelled_edge(s)]
    if len(edges) == 1:
        return edges[0]
    if not edges:
        raise EdgeNotFound(
            f"no service of certbotless's stack {own.stack} is labelled {EDGE}=true; add that "
            "label to the nginx service's deploy.labels or set CERTBOTLESS_NGINX_SERVICE"
        )
    raise EdgeNotFound(
        f"several services of stack {own.stack} are labelled {EDGE}=true "
        f"({', '.join(sorted(edges))}); keep it on one or set CERTBOTLESS_NGINX_SERVICE"
    )
