"""Swarm services → routes and certificate specs. Pure: takes ServiceInfo, returns Discovery.

Each dialect reads its labels (native.py, traefik/); this module settles what they claim: a
certificate name, a host (and a wildcard's subtree) and a host+path belong to their first
claimant, as the claims recorded before this pass say (`claims.Ledger`), and others join them only
when the owner's `certbotless.share` names them. It also finds the edge service by its label.

Every problem is a LabelProblem naming the service, the label, the value and the fix; a bad
service is left out and every other one goes on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from certbotless.labels.claims import (
    Ledger,
    claim_order,
    host_key,
    may_join,
    name_key,
    path_key,
    wildcard_above,
)
from certbotless.labels.native import (
    CERTIFICATE_PREFIX,
    DNS_PROVIDER,
    DNS_ZONE,
    EDGE,
    HSTS,
    ISSUER,
    KEY_TYPE,
    NAME,
    PATH,
    REDIRECT,
    SHARE,
    native_route,
    parse_certificate_label,
    unknown_issuer,
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
    ChallengeType,
    DialectClaims,
    Discovery,
    LabelProblem,
    Route,
    ServiceInfo,
    is_ip_address,
)
from certbotless.setting_values import PREFIX, Dns01Grant

NETWORKS = "networks"  # not a label: reported when a service shares no network with the edge
DNS_01 = ChallengeType.DNS01


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
    secrets: frozenset[str] | None = None, ledger: Ledger | None = None,
    dns01: tuple[Dns01Grant, ...] | None = None, issuers: tuple[str, ...] | None = None,
) -> Discovery:  # fmt: skip
    """Routes and certificates from the labels of `services`. With `edge` (the nginx service's
    name), a service that shares no network with it is reported instead of routed. Without
    `routing` (the operator writes nginx.conf), `certbotless.port` is not needed. `native`:
    whether certbotless.* labels are read; `foreign`: what Traefik's dialect read from each
    service, settled with them; `secrets`: the swarm's secret names; `ledger`: the claims
    recorded before this pass (its settled claims, `Discovery.claims`, are for the next);
    `dns01`: which services may prove which zones by DNS-01 (CERTBOTLESS_DNS01_ALLOWED; None:
    not checked, as where no credentials are at stake); `issuers`: the names
    `certbotless.issuer` may pin to (None: not checked).

    A certificate name, a host and a host+path belong to the service that claimed them first,
    whatever the dialect, so another service can be refused but never changes them."""
    services = sorted(services, key=claim_order)
    edge_info = next((s for s in services if s.name == edge), None)
    routes: list[_Labelled] = []  # each with the service whose labels ask for it
    claims: list[_Claim] = []
    problems: list[LabelProblem] = []
    for service in services:
        if service.name in foreign:
            found = foreign[service.name]
            problems += found.problems
            reachable = _foreign_routes(service, found, edge_info, problems) if routing else []
            routes += [(service, route) for route in reachable]
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
        routes += [(service, route)] if route is not None else []
        claims.append(_Claim(service, DOMAINS, spec, routed=routing))
    claims, denied = _dns01_allowed(claims, dns01, problems)
    if issuers is not None:  # a certificate pinned to no issuer is refused, with its routes
        pinned = [(claim, unknown_issuer(claim.spec, issuers)) for claim in claims]
        problems += [_claim_problem(c, ISSUER, why) for c, why in pinned if why]
        denied |= {c.service.name for c, why in pinned if why and c.routed}
        claims = [claim for claim, why in pinned if not why]
    return _settled(services, claims, routes, problems, ledger or Ledger({}), denied)


def _settled(
    services: list[ServiceInfo],
    claims: list[_Claim],
    routes: list[_Labelled],
    problems: list[LabelProblem],
    ledger: Ledger,
    denied: set[str],
) -> Discovery:
    """Ownership settled, in this order: hosts, certificates, who may join each host, each
    host+path, routers without a host, one client-auth setting and one IP address. `denied`:
    services whose route's certificate was refused already (not routed either)."""
    by_name = {s.name: s for s in services}
    host_owner = _host_owners(services, claims, routes, ledger)
    specs, refused, refusals = _settle_certificates(claims, host_owner, ledger)
    refused |= denied
    routes = [(labeller, route) for labeller, route in routes if labeller.name not in refused]
    kept, strangers = _only_whom_the_host_owner_lets_in(routes, host_owner)
    kept, conflicts = _first_claim_per_path(kept, by_name, ledger)
    kept = _every_host_routes_on_their_owners_hosts(kept, by_name, host_owner)
    kept, host_options = _one_client_auth_per_host(kept, _hsts_problems(kept))
    kept, extra_addresses = _one_ip_address(kept)
    return Discovery(
        routes=tuple(kept),
        specs=tuple(specs),
        problems=tuple(problems + refusals + strangers + conflicts + host_options
                       + extra_addresses),
        claims=ledger.settled,
    )  # fmt: skip


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


_Labelled = tuple[ServiceInfo, Route]


def _host_owners(
    services: list[ServiceInfo], claims: list[_Claim], routes: list[_Labelled], ledger: Ledger
) -> dict[str, ServiceInfo]:
    """Each host's owner: its recorded claimant while it still claims it, else the first in
    claim order of the services whose certificates or routes name it, or name the wildcard
    above it (a name under another's wildcard is the wildcard's owner's until it shares it)."""
    named: dict[str, set[str]] = {}
    for claim in claims:
        for host in claim.spec.domains:
            named.setdefault(host, set()).add(claim.service.name)
    for labeller, route in routes:
        for host in route.hosts:
            named.setdefault(host, set()).add(labeller.name)
    owners = {}
    for host, names in named.items():
        above = wildcard_above(host)
        names = names | named.get(above, set()) if above else names
        claimants = [s for s in services if s.name in names]  # in claim order
        owners[host] = ledger.first(host_key(host), claimants, lambda s: s)[0]
    return owners


def _owner_words(owner: ServiceInfo) -> str:
    return f"{owner.name}, which claimed it first and whose {SHARE} does not name this service"


def _edge_label_problem(service: ServiceInfo, edge: str | None) -> LabelProblem:
    return LabelProblem(
        service.name,
        EDGE,
        service.labels[EDGE],
        f"ignored: the edge is {edge or 'not found'}, either CERTBOTLESS_NGINX_SERVICE or the "
        "service labelled so in certbotless's own stack; remove this label",
    )


def _dns01_allowed(
    claims: list[_Claim], grants: tuple[Dns01Grant, ...] | None, problems: list[LabelProblem]
) -> tuple[list[_Claim], set[str]]:
    """The claims whose DNS-01 names (a wildcard's, or all with `challenge=dns-01`) the grants
    allow their service; each other one is a problem, and its service's routes are not routed
    when they use it."""
    if grants is None:
        return claims, set()
    kept, denied = [], set()
    for claim in claims:
        spec, service = claim.spec, claim.service.name
        names = [n for n in spec.domains if spec.challenge_for(n.startswith("*.")) is DNS_01]
        refused = [n for n in names if not any(g.allows(service, n) for g in grants)]
        if not refused:
            kept.append(claim)
            continue
        problems.append(_claim_problem(
            claim, claim.label,
            f"{refused[0]} would be proven by DNS-01 with the operator's DNS credentials, which "
            f"{PREFIX}DNS01_ALLOWED does not allow this service for it "
            f"({'unset: no service' if not grants else 'not among its zones'}); ask the "
            f"operator to add {service}={refused[0].removeprefix('*.')} (or its zone) to "
            "it, or ask for names without a wildcard by HTTP-01",
        ))  # fmt: skip
        denied |= {service} if claim.routed else set()
    return kept, denied


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
    claims: list[_Claim], host_owner: dict[str, ServiceInfo], ledger: Ledger
) -> tuple[list[CertSpec], set[str], list[LabelProblem]]:
    """Each name is its first claimant's. The services its owner shares it with add their
    domains when they ask for the same key type and profile; no other service may use it. A
    certificate names a host only if the host's owner shares it. Returns the specs, the services
    whose own route's certificate was refused (not routed either), the refusals."""
    by_name: dict[str, list[_Claim]] = {}
    for claim in claims:  # in claim order
        by_name.setdefault(claim.spec.name, []).append(claim)
    specs, refused, problems = [], set(), []
    for name, name_claims in by_name.items():
        ordered = ledger.first(name_key(name), name_claims, lambda c: c.service)
        spec, refusals = _settle_name(ordered, host_owner)
        if spec is not None:
            specs.append(spec)
        for claim, problem in refusals:
            problems.append(problem)
            if claim.routed:
                refused.add(claim.service.name)
    return specs, refused, problems


_Refusal = tuple[_Claim, LabelProblem]


def _settle_name(
    claims: list[_Claim], host_owner: dict[str, ServiceInfo]
) -> tuple[CertSpec | None, list[_Refusal]]:
    owner: _Claim | None = None
    spec: CertSpec | None = None
    strangers: list[_Claim] = []
    refusals: list[_Refusal] = []
    for claim in claims:
        if owner is not None and not may_join(claim.service, owner.service):
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
        refusals.append((claim, _name_taken(claim, owner)))
    return spec, refusals


def _challenge_options(spec: CertSpec) -> tuple[ChallengeMode, str | None, str | None]:
    return spec.challenge, spec.dns_provider, spec.dns_zone


def _claim_problem(claim: _Claim, label: str, message: str) -> LabelProblem:
    return LabelProblem(claim.service.name, label, claim.service.labels.get(label, ""), message)


def _host_taken(claim: _Claim, host_owner: dict[str, ServiceInfo]) -> LabelProblem | None:
    for host in claim.spec.domains:
        first = host_owner[host]
        if may_join(claim.service, first):
            continue
        return _claim_problem(
            claim,
            claim.label,
            f"{host} belongs to {_owner_words(first)}, so no certificate of this service may "
            f"name it: drop {host}, or ask {first.name}'s team to add this service to {SHARE}",
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
            f"services share a certificate only when these agree: set them alike, or choose "
            f"another {NAME}",
        )
    if claim.spec.issuer != spec.issuer:
        return _claim_problem(
            claim, ISSUER, f"certificate {spec.name} is {owner.service.name}'s, pinned to issuer "
            f"{spec.issuer or '(any)'}; services share a certificate only when their "
            f"{ISSUER} agree: set it alike, or choose another {NAME}",
        )  # fmt: skip
    label = KEY_TYPE if claim.spec.key_type != spec.key_type else PROFILE
    if claim.spec.profile == spec.profile and label == PROFILE:
        return None
    return _claim_problem(
        claim,
        label,
        f"certificate {spec.name} is {owner.service.name}'s, with {KEY_TYPE} "
        f"{spec.key_type.value} and {PROFILE} {spec.profile or '(none)'}; services share a "
        f"certificate only when these agree: set them alike, or choose another {NAME}",
    )


def _name_taken(claim: _Claim, owner: _Claim) -> LabelProblem:
    label = claim.label if claim.label != DOMAINS or NAME not in claim.service.labels else NAME
    return _claim_problem(
        claim,
        label,
        f"certificate {claim.spec.name} belongs to {_owner_words(owner.service)}: choose another "
        f"{NAME}, or ask {owner.service.name}'s team to add this service to {SHARE}",
    )


def _only_whom_the_host_owner_lets_in(
    routes: list[_Labelled], host_owner: dict[str, ServiceInfo]
) -> tuple[list[Route], list[LabelProblem]]:
    """A route is served on a host only when the host's owner lets the service whose labels ask
    for it in (its own, or named by the owner's certbotless.share), whatever path or options it
    asks for."""
    kept, problems = [], []
    for labeller, route in routes:
        hosts = []
        for host in route.hosts:
            owner = host_owner[host]
            if may_join(labeller, owner):
                hosts.append(host)
                continue
            problems.append(LabelProblem(labeller.name, DOMAINS, host,
                                         f"{host} belongs to {_owner_words(owner)}; this "
                                         f"service is not routed there until {owner.name}'s "
                                         f"{SHARE} names it"))  # fmt: skip
        if hosts or route.every_host or not route.hosts:
            kept.append(replace(route, hosts=tuple(hosts)))
    return kept, problems


def _first_claim_per_path(
    routes: list[Route], services: dict[str, ServiceInfo], ledger: Ledger
) -> tuple[list[Route], list[LabelProblem]]:
    """A host+path (with its conditions) is its first claimant's; another is not routed
    there."""
    claimants: dict[str, list[str]] = {}
    for route in routes:  # in claim order
        for host in route.hosts:
            key = _path_key(host, route)
            if route.service not in claimants.setdefault(key, []):
                claimants[key].append(route.service)
    first = {key: ledger.first(key, names, services.__getitem__)[0]
             for key, names in claimants.items()}  # fmt: skip
    kept, problems = [], []
    for route in routes:
        hosts = []
        for host in route.hosts:
            owner = first[_path_key(host, route)]
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


def _path_key(host: str, route: Route) -> str:
    conditions = (route.exact_path, route.methods, route.match_headers, route.conditions)
    return path_key(host, route.path, conditions)


def _every_host_routes_on_their_owners_hosts(
    routes: list[Route], services: dict[str, ServiceInfo], host_owner: dict[str, ServiceInfo]
) -> list[Route]:
    """A router without a Host is served on the hosts its service may use (its own, those
    whose owner shares them with it) that some route serves, and on names no route claims;
    never on others' hosts, which it could otherwise take over by priority (Traefik serves it
    on every host)."""
    placed = []
    for route in routes:
        if route.every_host:
            service = services[route.service]
            hosts = [host for other in routes if not other.every_host for host in other.hosts
                     if may_join(service, host_owner[host])]  # fmt: skip
            route = replace(route, hosts=tuple(dict.fromkeys(hosts)))
        placed.append(route)
    return placed


def _hsts_problems(routes: list[Route]) -> list[LabelProblem]:
    """HSTS is sent per host: the routes there (the owner's and those it lets in) decide it. A
    plain-HTTP route turns HSTS off for the host, and that is reported."""
    by_host: dict[str, list[Route]] = {}
    for route in routes:
        for host in route.hosts:
            by_host.setdefault(host, []).append(route)
    return [p for host, on_host in by_host.items() for p in _hsts_beside_plain_http(host, on_host)]


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
