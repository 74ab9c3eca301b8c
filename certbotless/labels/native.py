"""The native dialect: one service's certbotless.* labels → its route, its certificate specs
and its label problems. `settle` decides which of them it keeps.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import replace

from certbotless.issuer_settings import ISSUER_NAME_RE
from certbotless.labels.values import (
    CERTIFICATE_NAME_RE,
    CHALLENGE,
    DOMAINS,
    HEADER_NAME_RE,
    HEADER_VALUE_RE,
    LABEL_PREFIX,
    PROFILE,
    STATUS_PLACEHOLDER,
    InvalidFactory,
    InvalidLabel,
    certificate_name_for,
    check_path,
    check_secret_name,
    check_timeout,
    check_url,
    flag,
    parse_hostname,
    parse_hosts,
    parse_networks,
    parse_statuses,
    profile_for,
)
from certbotless.model import (
    BasicAuth,
    CertSpec,
    ChallengeMode,
    ErrorPages,
    KeyType,
    LabelProblem,
    RateLimit,
    Route,
    ServiceInfo,
)
from certbotless.settings import DNS_PROVIDER_RE

# LABEL_PREFIX, DOMAINS, PROFILE and CHALLENGE are in values: hosts' problems name them.
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
DNS_PROVIDER = LABEL_PREFIX + "dns-provider"
DNS_ZONE = LABEL_PREFIX + "dns-zone"
CERTIFICATE_PREFIX = LABEL_PREFIX + "certificate."  # certificate.<name>=<domains>: no route
SHARE = LABEL_PREFIX + "share"  # who may join this service's claims (labels/claims.py)
ISSUER = LABEL_PREFIX + "issuer"  # pins its certificates to one CA of CERTBOTLESS_ACME_ISSUERS
# Every label a routed service may carry; any other certbotless.* label on it refuses the route
# (a misspelt access label must not leave it open).
ROUTE_LABELS = frozenset({
    DOMAINS, NAME, PORT, PATH, REDIRECT, MAX_BODY_SIZE, AUTH_URL, HSTS, ERRORS, ERRORS_STATUS,
    TIMEOUT, KEY_TYPE, PROFILE, EDGE, BASIC_AUTH_SECRET, BASIC_AUTH_REALM, ALLOW_FROM,
    RATE_LIMIT, RATE_LIMIT_BURST, STRIP_PREFIX, ADD_PREFIX, CHALLENGE, DNS_PROVIDER, DNS_ZONE,
    SHARE, ISSUER,
})  # fmt: skip
ROUTE_LABEL_PREFIXES = (CERTIFICATE_PREFIX, REQUEST_HEADER_PREFIX, RESPONSE_HEADER_PREFIX)
# Labels that protect a route: with the operator's own nginx.conf nothing renders them.
PROTECTIONS = (BASIC_AUTH_SECRET, ALLOW_FROM, AUTH_URL, RATE_LIMIT)
# ASCII only, as in values.
_PORT_RE = re.compile(r"^[0-9]{1,5}$", re.ASCII)
_SIZE_RE = re.compile(r"^[0-9]{1,9}[kmg]?$", re.ASCII)
_REALM_RE = re.compile(r"^[A-Za-z0-9 ._-]{1,64}$", re.ASCII)
_RATE_RE = re.compile(r"^([0-9]{1,7})/(s|m)$", re.ASCII)
_COUNT_RE = re.compile(r"^[0-9]{1,6}$", re.ASCII)
MAX_RATE_PER_MINUTE = 60_000_000
MAX_BURST = 100_000
DEFAULT_BURST = 10


def native_route(
    service: ServiceInfo, routing: bool, secrets: frozenset[str] | None
) -> tuple[Route | None, CertSpec]:
    """The route (none with an own nginx.conf and no port) and certificate that a service's
    certbotless.* labels ask for."""
    if not routing and PORT not in service.labels:
        return None, _parse_spec(service)
    return _parse_service(service, secrets)


def unrendered_protections(service: ServiceInfo) -> list[LabelProblem]:
    """With CERTBOTLESS_NGINX_CONF=own, a protection label would be believed and not applied:
    each is said (the certificate is still ordered; the operator's nginx.conf routes)."""
    words = (
        "has no effect with CERTBOTLESS_NGINX_CONF=own: your nginx.conf routes this "
        "service, so protect it there (auth_basic, allow/deny, auth_request, limit_req)"
    )
    found = [label for label in PROTECTIONS if label in service.labels]
    return [LabelProblem(service.name, label, service.labels[label], words) for label in found]


def _invalid_factory(service: ServiceInfo) -> InvalidFactory:
    def invalid(label: str, message: str) -> InvalidLabel:
        return InvalidLabel(
            LabelProblem(service.name, label, service.labels.get(label, ""), message)
        )

    return invalid


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
            "record), mixed (wildcards by DNS-01, the other names by HTTP-01) or tls-alpn-01 "
            "(every name on port 443, through the front)",
        ) from None
    provider = service.labels.get(DNS_PROVIDER, "").strip().lower() or None
    zone = service.labels.get(DNS_ZONE, "").strip().lower().rstrip(".") or None
    for label, value in ((DNS_PROVIDER, provider), (DNS_ZONE, zone)):
        if value is not None and mode in (ChallengeMode.HTTP01, ChallengeMode.TLS_ALPN01):
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


def parse_certificate_label(service: ServiceInfo, label: str, value: str) -> CertSpec:
    invalid = _invalid_factory(service)
    name = label[len(CERTIFICATE_PREFIX) :]
    if not CERTIFICATE_NAME_RE.fullmatch(name):
        raise invalid(
            label,
            "the part after certbotless.certificate. must be a name of "
            "lowercase letters, digits, '-' and dots, e.g. certbotless.certificate.shop",
        )
    mode, provider, zone = _parse_challenge(service, invalid)
    hosts = parse_hosts(value, invalid, wildcards=_asks_dns01(service))
    return CertSpec(
        name, hosts, _parse_key_type(service, invalid), challenge=mode, dns_provider=provider,
        dns_zone=zone, issuer=_parse_issuer(service, invalid),
    )  # fmt: skip


def _parse_spec(
    service: ServiceInfo,
    hosts: tuple[str, ...] | None = None,
    invalid: InvalidFactory | None = None,
) -> CertSpec:
    """The certificate a service asks for (alone: for services an own nginx.conf routes)."""
    invalid = invalid or _invalid_factory(service)
    hosts = hosts or parse_hosts(
        service.labels[DOMAINS], invalid, ip_allowed=True, wildcards=_asks_dns01(service)
    )
    name = service.labels.get(NAME, "").strip() or certificate_name_for(hosts[0])
    if not CERTIFICATE_NAME_RE.fullmatch(name):
        raise invalid(NAME, "must be a name of lowercase letters, digits, '-' and dots")
    mode, provider, zone = _parse_challenge(service, invalid)
    return CertSpec(
        name,
        hosts,
        _parse_key_type(service, invalid),
        profile_for(hosts, service.labels.get(PROFILE, "").strip() or None),
        challenge=mode,
        dns_provider=provider,
        dns_zone=zone,
        issuer=_parse_issuer(service, invalid),
    )


def _parse_issuer(service: ServiceInfo, invalid: InvalidFactory) -> str | None:
    name = service.labels.get(ISSUER, "").strip()
    if name and not ISSUER_NAME_RE.fullmatch(name):
        raise invalid(ISSUER, "must name an issuer of CERTBOTLESS_ACME_ISSUERS (lowercase "
                      "letters, digits and '-'), e.g. letsencrypt")  # fmt: skip
    return name or None


def unknown_issuer(spec: CertSpec, issuers: Collection[str]) -> str:
    """Why `spec`'s pinned issuer cannot be used ("": it can, or it names none)."""
    if spec.issuer is None or spec.issuer in issuers:
        return ""
    return (
        f"no issuer is named {spec.issuer!r}: CERTBOTLESS_ACME_ISSUERS names "
        f"{', '.join(issuers)}; name one of them, or remove the label to let any issue it"
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
    hosts = parse_hosts(labels[DOMAINS], invalid, ip_allowed=True, wildcards=_asks_dns01(service))

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
        check_timeout(timeout, TIMEOUT, invalid)

    auth_url = text(AUTH_URL) or None
    if auth_url is not None:
        check_url(auth_url, AUTH_URL, invalid, "http://auth:8000/check")

    error_pages = None
    if text(ERRORS):
        url = text(ERRORS)
        check_url(url, ERRORS, invalid, "http://errors:80/{status}.html", STATUS_PLACEHOLDER)
        if STATUS_PLACEHOLDER not in url:
            raise invalid(ERRORS, "must contain {status}, e.g. http://errors:80/{status}.html")
        statuses = parse_statuses(text(ERRORS_STATUS, "400-599"), invalid, ERRORS_STATUS)
        error_pages = ErrorPages(url, statuses)

    spec = _parse_spec(service, hosts, invalid)
    route = Route(
        service=service.name,
        hosts=hosts,
        port=int(port_text),
        path=path,
        redirect_to_https=flag(text(REDIRECT, "true"), REDIRECT, invalid),
        max_body_size=max_body,
        auth_url=auth_url,
        hsts=flag(text(HSTS, "false"), HSTS, invalid),
        error_pages=error_pages,
        timeout=timeout,
    )
    return _with_access_labels(route, service, invalid, secrets), spec


def _check_known_labels(service: ServiceInfo, invalid: InvalidFactory) -> None:
    for label in sorted(service.labels):
        if (label.startswith(LABEL_PREFIX) and label not in ROUTE_LABELS
                and not label.startswith(ROUTE_LABEL_PREFIXES)):  # fmt: skip
            raise invalid(label, "is not a certbotless label (see docs/labels.md); "
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
