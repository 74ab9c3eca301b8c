"""Swarm services → routes and certificate specs. Pure: takes ServiceInfo, returns Discovery.

Every problem is a LabelProblem naming the service, the label, the value and the fix; a bad
service is left out and every other one goes on.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import MappingProxyType
from urllib.parse import urlsplit

import idna

from certbotless.model import (
    CHALLENGE_PREFIX,
    OBJECT_NAME_PREFIX,
    BasicAuth,
    CertSpec,
    ChallengeMode,
    DialectClaims,
    Discovery,
    ErrorPages,
    KeyType,
    LabelProblem,
    RateLimit,
    Route,
    ServiceInfo,
    is_ip_address,
)
from certbotless.settings import DNS_PROVIDER_RE

LABEL_PREFIX = "certbotless."
DOMAINS = LABEL_PREFIX + "domains"
NAME = LABEL_PREFIX + "name"
PORT = LABEL_PREFIX + "port"
PATH = LABEL_PREFIX + "path"
REDIRECT = LABEL_PREFIX + "redirect"
MAX_BODY_SIZE = LABEL_PREFIX + "max_body_size"
AUTH_URL = LABEL_PREFIX + "auth_url"
HSTS = LABEL_PREFIX + "hsts"
ERRORS = LABEL_PREFIX + "errors"
ERRORS_STATUS = LABEL_PREFIX + "errors_status"
TIMEOUT = LABEL_PREFIX + "timeout"
KEY_TYPE = LABEL_PREFIX + "key_type"
PROFILE = LABEL_PREFIX + "profile"
EDGE = LABEL_PREFIX + "edge"
# Access and request shaping (what Traefik's middlewares do, in certbotless's own words).
BASIC_AUTH_SECRET = LABEL_PREFIX + "basic_auth_secret"
BASIC_AUTH_REALM = LABEL_PREFIX + "basic_auth_realm"
ALLOW_FROM = LABEL_PREFIX + "allow_from"
RATE_LIMIT = LABEL_PREFIX + "rate_limit"
RATE_LIMIT_BURST = LABEL_PREFIX + "rate_limit_burst"
STRIP_PREFIX = LABEL_PREFIX + "strip_prefix"
ADD_PREFIX = LABEL_PREFIX + "add_prefix"
REQUEST_HEADER_PREFIX = LABEL_PREFIX + "request_header."  # request_header.<Name>=<value>
RESPONSE_HEADER_PREFIX = LABEL_PREFIX + "response_header."
CHALLENGE = LABEL_PREFIX + "challenge"  # http-01 (default), dns-01, mixed
DNS_PROVIDER = LABEL_PREFIX + "dns-provider"
DNS_ZONE = LABEL_PREFIX + "dns-zone"
CERTIFICATE_PREFIX = LABEL_PREFIX + "certificate."  # certificate.<name>=<domains>: no route
# Every label a routed service may carry; any other certbotless.* label on it refuses the route
# (a misspelt access label must not leave it open).
ROUTE_LABELS = frozenset({
    DOMAINS, NAME, PORT, PATH, REDIRECT, MAX_BODY_SIZE, AUTH_URL, HSTS, ERRORS, ERRORS_STATUS,
    TIMEOUT, KEY_TYPE, PROFILE, EDGE, BASIC_AUTH_SECRET, BASIC_AUTH_REALM, ALLOW_FROM,
    RATE_LIMIT, RATE_LIMIT_BURST, STRIP_PREFIX, ADD_PREFIX, CHALLENGE, DNS_PROVIDER, DNS_ZONE,
})  # fmt: skip
ROUTE_LABEL_PREFIXES = (CERTIFICATE_PREFIX, REQUEST_HEADER_PREFIX, RESPONSE_HEADER_PREFIX)
NETWORKS = "networks"  # not a label: reported when a service shares no network with the edge

# ASCII only throughout: str.isdigit() and \d accept "²" and fullwidth digits, which int() or
# nginx refuse.
_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$", re.ASCII)
# Certificate names: lowercase letters, digits, '-' and dots, like a hostname.
CERTIFICATE_NAME_RE = re.compile(r"[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?", re.ASCII)
_PORT_RE = re.compile(r"^[0-9]{1,5}$", re.ASCII)
_SIZE_RE = re.compile(r"^[0-9]{1,9}[kmg]?$", re.ASCII)
_TIME_RE = re.compile(r"^([0-9]{1,8})(ms|s|m|h)?$", re.ASCII)
_STATUS_RANGE_RE = re.compile(r"^([0-9]{3})(?:-([0-9]{3}))?$", re.ASCII)
_IP_RE = re.compile(r"^[0-9.]+$", re.ASCII)
# No braces: nginx would read them as a block. `{status}` is replaced before nginx sees it.
_URL_SAFE_RE = re.compile(r"^[A-Za-z0-9._~:/?#\[\]@!&()*+,=%-]+$", re.ASCII)
_PATH_RE = re.compile(r"^/[A-Za-z0-9._~!&()*+,=:@%/-]*$", re.ASCII)
HEADER_NAME_RE = re.compile(r"^[A-Za-z0-9-]{1,100}$", re.ASCII)
# Printable, and nothing nginx would read as a variable or the end of a quoted string.
HEADER_VALUE_RE = re.compile(r"^[\x20\x21\x23\x25-\x5b\x5d-\x7e]{0,2000}$", re.ASCII)
# Docker's own rule for secret names; nginx reads them as a path, unquoted.
SECRET_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", re.ASCII)
_REALM_RE = re.compile(r"^[A-Za-z0-9 ._-]{1,64}$", re.ASCII)
_RATE_RE = re.compile(r"^([0-9]{1,7})/(s|m)$", re.ASCII)
_COUNT_RE = re.compile(r"^[0-9]{1,6}$", re.ASCII)
MAX_RATE_PER_MINUTE = 60_000_000
MAX_BURST = 100_000
DEFAULT_BURST = 10
STATUS_PLACEHOLDER = "{status}"
INTERNAL_LOCATION = "/.certbotless/"  # the edge's forward-auth subrequests
# Locations the edge keeps for itself, so no route may use them.
RESERVED_PATHS = (CHALLENGE_PREFIX, INTERNAL_LOCATION)
# nginx reads its configuration in 4 KiB pieces and refuses a longer word ("too long
# parameter"), which would stop every roll: paths and URLs stay well below (a browser sends at
# most about 2,000 characters of URL anyway).
MAX_PATH_LENGTH = 1024
MAX_URL_LENGTH = 2048
_TIME_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}
MAX_TIMEOUT_MS = 86_400_000  # one day
_TRUE = {"true", "yes", "1", "on"}
_DAWN = datetime.min.replace(tzinfo=UTC)
_FALSE = {"false", "no", "0", "off"}


class InvalidLabel(Exception):
    def __init__(self, problem: LabelProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


InvalidFactory = Callable[[str, str], InvalidLabel]


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
        problems += [] if routing else _unrendered_protections(service)
        try:
            route, spec = _native_route(service, routing, secrets, edge_info)
        except InvalidLabel as invalid:
            problems.append(invalid.problem)
            continue
        routes += [route] if route is not None else []
        claims.append(_Claim(service, DOMAINS, spec, routed=routing))
    specs, refused, refusals = _settle_certificates(claims)
    routes = [route for route in routes if route.service not in refused]
    routes, conflicts = _first_claim_per_path(routes)
    routes, host_options = _host_options_of_their_owner(routes, {s.name: s for s in services})
    routes, extra_addresses = _one_ip_address(routes)
    return Discovery(
        routes=tuple(routes),
        specs=tuple(specs),
        problems=tuple(problems + refusals + conflicts + host_options + extra_addresses),
    )


def _native_route(
    service: ServiceInfo, routing: bool, secrets: frozenset[str] | None,
    edge_info: ServiceInfo | None,
) -> tuple[Route | None, CertSpec]:  # fmt: skip
    """The route (none with an own nginx.conf and no port) and certificate that a service's
    certbotless.* labels ask for."""
    if not routing and PORT not in service.labels:
        return None, _parse_spec(service)
    route, spec = _parse_service(service, secrets)
    if edge_info is not None and routing:
        _check_shared_network(service, edge_info)
    return route, spec


# Labels that protect a route: with the operator's own nginx.conf nothing renders them.
PROTECTIONS = (BASIC_AUTH_SECRET, ALLOW_FROM, AUTH_URL, RATE_LIMIT)


def _unrendered_protections(service: ServiceInfo) -> list[LabelProblem]:
    """With CERTBOTLESS_NGINX_CONF=own, a protection label would be believed and not applied:
    each is said (the certificate is still ordered; the operator's nginx.conf routes)."""
    words = (
        "has no effect with CERTBOTLESS_NGINX_CONF=own: your nginx.conf routes this "
        "service, so protect it there (auth_basic, allow/deny, auth_request, limit_req)"
    )
    found = [label for label in PROTECTIONS if label in service.labels]
    return [LabelProblem(service.name, label, service.labels[label], words) for label in found]


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
                spec = _parse_certificate_label(service, label, value)
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
    """A host+path is its first claimant's; a later one is not routed there."""
    first: dict[tuple[str, str, bool], str] = {}
    kept, problems = [], []
    for route in routes:  # oldest first
        hosts = []
        for host in route.hosts:
            owner = first.setdefault((host, route.path, route.exact_path), route.service)
            if owner == route.service:
                hosts.append(host)
                continue
            problems.append(
                LabelProblem(route.service, DOMAINS, host,
                             f"{host}{route.path} is {owner}'s, which claimed it first; this "
                             f"service is not routed there until it changes {PATH} or {DOMAINS}")
            )  # fmt: skip
        if hosts:
            kept.append(replace(route, hosts=tuple(hosts)))
    return kept, problems


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
        if hosts:
            kept.append(replace(route, hosts=hosts))
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


def _invalid_factory(service: ServiceInfo) -> InvalidFactory:
    def invalid(label: str, message: str) -> InvalidLabel:
        return InvalidLabel(
            LabelProblem(service.name, label, service.labels.get(label, ""), message)
        )

    return invalid


def _parse_hosts(
    value: str, invalid: InvalidFactory, ip_allowed: bool = False, wildcards: bool = False
) -> tuple[str, ...]:
    return tuple(
        dict.fromkeys(parse_hostname(h, invalid, ip_allowed, wildcards) for h in value.split(","))
    )


def _asks_dns01(service: ServiceInfo) -> bool:
    """Whether its challenge label lets wildcards in (the label itself is checked later)."""
    value = service.labels.get(CHALLENGE, "").strip().lower()
    return value in (ChallengeMode.DNS01, ChallengeMode.MIXED)


def _parse_challenge(
    service: ServiceInfo, invalid: InvalidFactory
) -> tuple[ChallengeMode, str | None, str | None]:
    """The challenge label, and the DNS provider and zone labels (which need DNS-01)."""
    text = service.labels.get(CHALLENGE, ChallengeMode.HTTP01.value).strip().lower()
    try:
        mode = ChallengeMode(text or ChallengeMode.HTTP01.value)
    except ValueError:
        raise invalid(
            CHALLENGE,
            "must be http-01 (through the edge, the default), dns-01 (every name by a TXT "
            "record) or mixed (wildcards by DNS-01, the other names by HTTP-01)",
        ) from None
    provider = service.labels.get(DNS_PROVIDER, "").strip().lower() or None
    zone = service.labels.get(DNS_ZONE, "").strip().lower().rstrip(".") or None
    for label, value in ((DNS_PROVIDER, provider), (DNS_ZONE, zone)):
        if value is not None and mode is ChallengeMode.HTTP01:
            raise invalid(label, f"needs {CHALLENGE}=dns-01 or mixed")
    if provider is not None and not DNS_PROVIDER_RE.fullmatch(provider):
        raise invalid(
            DNS_PROVIDER,
            "must be rfc2136 or the name of a dns-lexicon provider, e.g. cloudflare",
        )
    if zone is not None:
        zone = parse_hostname(zone, _relabelled(invalid, DNS_ZONE))
    return mode, provider, zone


def _relabelled(invalid: InvalidFactory, label: str) -> InvalidFactory:
    """`invalid`, naming `label` whatever label the check names."""

    def relabelled(_: str, message: str) -> InvalidLabel:
        return invalid(label, message)

    return relabelled


def _parse_certificate_label(service: ServiceInfo, label: str, value: str) -> CertSpec:
    invalid = _invalid_factory(service)
    name = label[len(CERTIFICATE_PREFIX) :]
    if not CERTIFICATE_NAME_RE.fullmatch(name):
        raise invalid(
            label,
            "the part after certbotless.certificate. must be a name of "
            "lowercase letters, digits, '-' and dots, e.g. certbotless.certificate.shop",
        )
    mode, provider, zone = _parse_challenge(service, invalid)
    hosts = _parse_hosts(value, invalid, wildcards=_asks_dns01(service))
    return CertSpec(
        name, hosts, _parse_key_type(service, invalid), challenge=mode, dns_provider=provider,
        dns_zone=zone,
    )  # fmt: skip


def _parse_spec(
    service: ServiceInfo,
    hosts: tuple[str, ...] | None = None,
    invalid: InvalidFactory | None = None,
) -> CertSpec:
    """The certificate a service asks for (alone: for services an own nginx.conf routes)."""
    invalid = invalid or _invalid_factory(service)
    hosts = hosts or _parse_hosts(
        service.labels[DOMAINS], invalid, _asks_a_profile(service), _asks_dns01(service)
    )
    # A wildcard's certificate is named after its domain: `*.example.com` → wildcard.example.com
    name = service.labels.get(NAME, "").strip() or hosts[0].replace("*.", "wildcard.", 1)
    if not CERTIFICATE_NAME_RE.fullmatch(name):
        raise invalid(NAME, "must be a name of lowercase letters, digits, '-' and dots")
    mode, provider, zone = _parse_challenge(service, invalid)
    return CertSpec(
        name,
        hosts,
        _parse_key_type(service, invalid),
        service.labels.get(PROFILE, "").strip() or None,
        challenge=mode,
        dns_provider=provider,
        dns_zone=zone,
    )


def _parse_key_type(service: ServiceInfo, invalid: InvalidFactory) -> KeyType:
    key_text = service.labels.get(KEY_TYPE, KeyType.EC256.value).strip().lower()
    try:
        return KeyType(key_text)
    except ValueError:
        raise invalid(KEY_TYPE, "must be one of " + ", ".join(k.value for k in KeyType)) from None


def _parse_service(
    service: ServiceInfo, secrets: frozenset[str] | None = None
) -> tuple[Route, CertSpec]:
    labels = service.labels
    invalid = _invalid_factory(service)
    _check_known_labels(service, invalid)

    def text(label: str, default: str = "") -> str:
        return labels.get(label, default).strip()

    _parse_challenge(service, invalid)  # a wrong challenge label first: wildcards hang on it
    hosts = _parse_hosts(labels[DOMAINS], invalid, _asks_a_profile(service), _asks_dns01(service))

    port_text = text(PORT)
    if not port_text:
        raise invalid(PORT, f"missing; set {PORT} to the port the service listens on, e.g. 8000")
    if not _PORT_RE.match(port_text) or not 1 <= int(port_text) <= 65535:
        raise invalid(PORT, "must be a port number from 1 to 65535")

    path = text(PATH, "/") or "/"
    check_path(path, PATH, invalid)

    max_body = text(MAX_BODY_SIZE).lower() or None
    if max_body is not None and not _SIZE_RE.match(max_body):
        raise invalid(MAX_BODY_SIZE, "must be a size like 20m, 512k or 1g (0 means no limit)")

    timeout = text(TIMEOUT) or None
    if timeout is not None:
        check_timeout(timeout, invalid)

    auth_url = text(AUTH_URL) or None
    if auth_url is not None:
        check_url(auth_url, AUTH_URL, invalid, "http://auth:8000/check")

    error_pages = None
    if text(ERRORS):
        url = text(ERRORS)
        check_url(url, ERRORS, invalid, "http://errors:80/{status}.html", STATUS_PLACEHOLDER)
        if STATUS_PLACEHOLDER not in url:
            raise invalid(ERRORS, "must contain {status}, e.g. http://errors:80/{status}.html")
        error_pages = ErrorPages(url, parse_statuses(text(ERRORS_STATUS, "400-599"), invalid))

    spec = _parse_spec(service, hosts, invalid)
    route = Route(
        service=service.name,
        hosts=hosts,
        port=int(port_text),
        path=path,
        redirect_to_https=_flag(text(REDIRECT, "true"), REDIRECT, invalid),
        max_body_size=max_body,
        auth_url=auth_url,
        hsts=_flag(text(HSTS, "false"), HSTS, invalid),
        error_pages=error_pages,
        timeout=timeout,
    )
    return _with_access_labels(route, service, invalid, secrets), spec


def _check_known_labels(service: ServiceInfo, invalid: InvalidFactory) -> None:
    for label in sorted(service.labels):
        if (label.startswith(LABEL_PREFIX) and label not in ROUTE_LABELS
                and not label.startswith(ROUTE_LABEL_PREFIXES)):  # fmt: skip
            raise invalid(label, "is not a certbotless label (see the README's label table); "
                          "it might be meant to guard access, so the service is not routed "
                          "until it is fixed or removed")  # fmt: skip


def _with_access_labels(
    route: Route, service: ServiceInfo, invalid: InvalidFactory, secrets: frozenset[str] | None
) -> Route:
    """The options Traefik's middlewares also give: who gets in, how often, and what the
    request and answer look like. A value that does not parse refuses the whole route."""
    labels = service.labels

    def text(label: str) -> str:
        return labels.get(label, "").strip()

    strip = tuple(p.strip() for p in text(STRIP_PREFIX).split(",") if p.strip())
    for prefix in strip:
        check_path(prefix, STRIP_PREFIX, invalid)
    add = text(ADD_PREFIX)
    if add:
        check_path(add, ADD_PREFIX, invalid)
    return replace(
        route,
        basic_auth=parse_basic_auth_secret(service, invalid, secrets),
        allow_from=parse_networks(text(ALLOW_FROM), ALLOW_FROM, invalid),
        rate_limit=_parse_rate_limit(text(RATE_LIMIT), text(RATE_LIMIT_BURST), invalid),
        strip_prefixes=strip,
        add_prefix=add.rstrip("/"),
        request_headers=_headers(labels, REQUEST_HEADER_PREFIX, invalid),
        response_headers=_headers(labels, RESPONSE_HEADER_PREFIX, invalid),
    )


def parse_basic_auth_secret(
    service: ServiceInfo, invalid: InvalidFactory, secrets: frozenset[str] | None
) -> BasicAuth | None:
    secret = service.labels.get(BASIC_AUTH_SECRET, "").strip()
    realm = service.labels.get(BASIC_AUTH_REALM, "").strip()
    if not secret:
        if realm:
            raise invalid(BASIC_AUTH_REALM, f"has no effect without {BASIC_AUTH_SECRET}")
        return None
    check_secret_name(secret, BASIC_AUTH_SECRET, invalid, secrets)
    if realm and not _REALM_RE.match(realm):
        raise invalid(BASIC_AUTH_REALM, "must be 1 to 64 letters, digits, spaces, '.', '_', '-'")
    return BasicAuth(realm=realm or "restricted", secret=secret)


def refused_htpasswd_secret(secret: str) -> str | None:
    """Why the edge may not mount `secret` as a users file, if it may not: the edge would hold
    certbotless's own secrets (its ACME account key, certificate keys)."""
    if secret.startswith(OBJECT_NAME_PREFIX):
        return (f"{secret} is one of certbotless's own secrets ({OBJECT_NAME_PREFIX}…), never "
                "an htpasswd file: name a secret made from one")  # fmt: skip
    return None


def check_secret_name(
    secret: str, label: str, invalid: InvalidFactory, secrets: frozenset[str] | None
) -> None:
    """A Swarm secret holding htpasswd lines, which must exist when the secrets are known."""
    if not SECRET_NAME_RE.match(secret):
        raise invalid(label, "must name a Swarm secret (letters, digits, '_', '.', '-')")
    if (refused := refused_htpasswd_secret(secret)) is not None:
        raise invalid(label, refused)
    if secrets is not None and secret not in secrets:
        raise invalid(
            label,
            f"no Swarm secret is named {secret}; create it from an htpasswd file "
            f"(`htpasswd -nB ops | docker secret create {secret} -`); until then the service "
            "is not routed, never served without its password",
        )


def parse_networks(value: str, label: str, invalid: InvalidFactory) -> tuple[str, ...]:
    """Client addresses or networks (CIDR), comma-separated."""
    networks = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        try:
            networks.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise invalid(label, f"{part!r} is not an address or network (CIDR), e.g. "
                          "10.0.0.0/8,192.0.2.7") from None  # fmt: skip
    if value.strip() and not networks:
        raise invalid(label, "names no network")
    return tuple(dict.fromkeys(networks))


def _parse_rate_limit(rate: str, burst: str, invalid: InvalidFactory) -> RateLimit | None:
    if not rate:
        if burst:
            raise invalid(RATE_LIMIT_BURST, f"has no effect without {RATE_LIMIT}")
        return None
    match = _RATE_RE.match(rate)
    per_minute = int(match.group(1)) * (60 if match.group(2) == "s" else 1) if match else 0
    if not 0 < per_minute <= MAX_RATE_PER_MINUTE:
        raise invalid(RATE_LIMIT, "must be requests per second or minute, e.g. 10/s or 30/m")
    if burst and not _COUNT_RE.match(burst):
        raise invalid(RATE_LIMIT_BURST, "must be a whole number of requests")
    burst_count = int(burst) if burst else DEFAULT_BURST
    if not 1 <= burst_count <= MAX_BURST:
        raise invalid(RATE_LIMIT_BURST, f"must be from 1 to {MAX_BURST}")
    return RateLimit(per_minute, burst_count)


def _headers(
    labels: Mapping[str, str], prefix: str, invalid: InvalidFactory
) -> tuple[tuple[str, str], ...]:
    headers = []
    for label, value in sorted(labels.items()):
        if label.startswith(prefix):
            name, value = label[len(prefix) :], value.strip()
            if not HEADER_NAME_RE.match(name) or not HEADER_VALUE_RE.match(value):
                raise invalid(label, "header names are letters, digits and '-'; values are "
                              "printable ASCII without '\"', '$' and '\\' (empty removes the "
                              "header)")  # fmt: skip
            headers.append((name, value))
    return tuple(headers)


def check_path(path: str, label: str, invalid: InvalidFactory) -> None:
    """A path prefix nginx can take as a location and that is not the edge's own."""
    if len(path) > MAX_PATH_LENGTH:
        raise invalid(label, f"is {len(path)} characters long; nginx takes at most "
                      f"{MAX_PATH_LENGTH} here: shorten the path prefix")  # fmt: skip
    if not _PATH_RE.match(path) or "//" in path or "/../" in f"{path}/":
        raise invalid(label, "must start with / and hold only URL path characters, e.g. /api")
    reserved = next((r for r in RESERVED_PATHS if f"{path}/".startswith(r)), None)
    if reserved is not None:
        raise invalid(label, f"{reserved} is reserved for the edge itself; choose another path")


def _flag(value: str, label: str, invalid: InvalidFactory) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise invalid(label, "must be true or false")


def check_timeout(value: str, invalid: InvalidFactory) -> None:
    match = _TIME_RE.match(value)
    milliseconds = int(match.group(1)) * _TIME_UNIT_MS[match.group(2) or "s"] if match else 0
    if not 0 < milliseconds <= MAX_TIMEOUT_MS:
        raise invalid(
            TIMEOUT, "must be a duration like 300s, 5m or 1h (ms, s, m or h; at most 1 day)"
        )


def check_url(
    url: str, label: str, invalid: InvalidFactory, example: str, placeholder: str = ""
) -> None:
    if len(url) > MAX_URL_LENGTH:
        raise invalid(label, f"is {len(url)} characters long; nginx takes at most "
                      f"{MAX_URL_LENGTH} here: use a shorter URL")  # fmt: skip
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a port that is not a number from 0 to 65535
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid(label, f"must be an http:// or https:// URL, e.g. {example}")
    if not _URL_SAFE_RE.match(url.replace(placeholder, "") if placeholder else url):
        raise invalid(
            label, "contains characters a URL cannot hold (spaces, quotes, ';', '{', '}')"
        )


def parse_statuses(
    value: str, invalid: InvalidFactory, label: str = ERRORS_STATUS
) -> tuple[int, ...]:
    statuses: set[int] = set()
    for part in value.split(","):
        match = _STATUS_RANGE_RE.match(part.strip())
        low = int(match.group(1)) if match else 0
        high = int(match.group(2) or low) if match else 0
        if not match or not 300 <= low <= high <= 599:
            raise invalid(label, "must be statuses or ranges from 300 to 599, e.g. 400-599")
        statuses.update(range(low, high + 1))
    # 499 is nginx's own "client closed the connection": nothing to show, and error_page refuses it.
    return tuple(sorted(statuses - {499}))


def _asks_a_profile(service: ServiceInfo) -> bool:
    return bool(service.labels.get(PROFILE, "").strip())


def parse_hostname(
    raw: str, invalid: InvalidFactory, ip_allowed: bool = False, wildcard_allowed: bool = False
) -> str:
    """A hostname as the CA and nginx want it; an IPv4 address only when `ip_allowed` (the
    service asks for a CA profile, which may issue for addresses); a wildcard (`*.` and a
    hostname) only when `wildcard_allowed` (the service asks for DNS-01)."""
    host = raw.strip().rstrip(".").lower()
    if not host:
        raise invalid(DOMAINS, "contains an empty name; separate hostnames with single commas")
    if host.startswith("*."):
        if not wildcard_allowed:
            raise invalid(
                DOMAINS,
                f"{host} is a wildcard: only DNS-01 proves wildcards; set {CHALLENGE}=dns-01 "
                "(or mixed: wildcards by DNS-01, the other names by HTTP-01) and a DNS provider, "
                "or list each hostname instead",
            )
        if "*" in host[2:]:
            raise invalid(
                DOMAINS, f"{host}: a wildcard stands for the leftmost label only (*.example.com)"
            )
        return "*." + parse_hostname(host[2:], invalid)
    if ":" in host:
        raise invalid(
            DOMAINS,
            f"{host} is an IPv6 address or has a port: use a hostname (of IP addresses, only "
            f"IPv4 ones are served, with {PROFILE})",
        )
    if _IP_RE.match(host):
        return _parse_ip_address(host, invalid, ip_allowed)
    try:
        host = _to_ascii_hostname(host)
    except UnicodeError:  # idna's errors are UnicodeErrors
        raise invalid(
            DOMAINS,
            f"{raw.strip()} is not a valid hostname (letters, digits, '-', dots; labels of at "
            "most 63 characters, 253 in all)",
        ) from None
    labels = host.split(".")
    if len(host) > 253 or len(labels) < 2 or not all(_LABEL_RE.match(p) for p in labels):
        raise invalid(
            DOMAINS,
            f"{host} is not a fully qualified hostname (letters, digits, '-', dots; labels of "
            "at most 63 characters, 253 in all)",
        )
    if _IP_RE.match(labels[-1]):
        raise invalid(DOMAINS, _ip_address_problem(host))
    return host


def _ip_address_problem(host: str) -> str:
    return (
        f"{host} is an IP address: set {PROFILE} to a CA profile that issues for IP addresses "
        "(Let's Encrypt: shortlived, 6-day certificates), or use a hostname"
    )


def _parse_ip_address(host: str, invalid: InvalidFactory, ip_allowed: bool) -> str:
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        raise invalid(DOMAINS, f"{host} is neither a hostname nor an IPv4 address") from None
    if not ip_allowed:
        raise invalid(DOMAINS, _ip_address_problem(host))
    return str(address)


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
        if hosts:
            kept.append(replace(route, hosts=hosts))
    return kept, problems


def _to_ascii_hostname(host: str) -> str:
    """IDNA 2008 with UTS #46 mapping, as browsers do: `straße` is `xn--strae-oqa`, where Python's
    own IDNA 2003 codec would make it `strasse`. Plain ASCII labels are left to the LDH check
    (IDNA would refuse DNS-valid names such as `ab--cd`)."""
    mapped = idna.uts46_remap(host, std3_rules=False, transitional=False)
    labels = mapped.split(".")
    if "" in labels:
        raise UnicodeError("empty label")
    return ".".join(
        label
        if label.isascii() and not label.startswith("xn--")
        else idna.alabel(label).decode("ascii")
        for label in labels
    )


class EdgeNotFound(LookupError):
    pass


def labelled_edge(service: ServiceInfo) -> bool:
    return service.labels.get(EDGE, "").strip().lower() in _TRUE


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
