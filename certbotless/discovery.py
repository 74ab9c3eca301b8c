"""Swarm services → routes and certificate specs. Pure: takes ServiceInfo, returns Discovery.

Every problem is a LabelProblem naming the service, the label, the value and the fix; a bad
service is left out and every other one goes on.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import replace
from urllib.parse import urlsplit

import idna

from certbotless.model import (
    CHALLENGE_PREFIX,
    CertSpec,
    Discovery,
    ErrorPages,
    KeyType,
    LabelProblem,
    Route,
    ServiceInfo,
    is_ip_address,
)

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
CERTIFICATE_PREFIX = LABEL_PREFIX + "certificate."  # certificate.<name>=<domains>: no route
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
_FALSE = {"false", "no", "0", "off"}


class _Invalid(Exception):
    def __init__(self, problem: LabelProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


_InvalidFactory = Callable[[str, str], _Invalid]


def discover(
    services: Iterable[ServiceInfo], edge: str | None = None, routing: bool = True
) -> Discovery:
    """Routes and certificates from the labels of `services`. With `edge` (the nginx service's
    name), a service that shares no network with it is reported instead of routed. Without
    `routing` (the operator writes nginx.conf), `certbotless.port` is not needed."""
    services = sorted(services, key=lambda s: s.name)
    edge_info = next((s for s in services if s.name == edge), None)
    routes: list[Route] = []
    specs: dict[str, CertSpec] = {}
    problems: list[LabelProblem] = []
    for service in services:
        for label, value in sorted(service.labels.items()):
            if label.startswith(CERTIFICATE_PREFIX):
                try:
                    spec = _parse_certificate_label(service, label, value)
                except _Invalid as invalid:
                    problems.append(invalid.problem)
                    continue
                specs[spec.name] = _merge(specs.get(spec.name), spec)
        if DOMAINS not in service.labels:
            continue
        try:
            if not routing and PORT not in service.labels:
                spec = _parse_spec(service)
            else:
                route, spec = _parse_service(service)
                if edge_info is not None and routing:
                    _check_shared_network(service, edge_info)
                routes.append(route)
        except _Invalid as invalid:
            problems.append(invalid.problem)
            continue
        specs[spec.name] = _merge(specs.get(spec.name), spec)
    routes, conflicts = _without_conflicts(routes)
    routes, extra_addresses = _one_ip_address(routes)
    return Discovery(
        routes=tuple(routes),
        specs=tuple(specs.values()),
        problems=tuple(problems + conflicts + extra_addresses + _hsts_beside_plain_http(routes)),
    )


def _merge(existing: CertSpec | None, spec: CertSpec) -> CertSpec:
    """Services naming the same certificate share it: the union of their domains."""
    if existing is None:
        return spec
    domains = tuple(dict.fromkeys((*existing.domains, *spec.domains)))
    return CertSpec(existing.name, domains, existing.key_type, existing.profile)


def _without_conflicts(routes: list[Route]) -> tuple[list[Route], list[LabelProblem]]:
    """Two services on the same host and path: neither is routed there until one moves."""
    claims: dict[tuple[str, str], list[str]] = {}
    for route in routes:
        for host in route.hosts:
            claims.setdefault((host, route.path), []).append(route.service)
    contested = {key: names for key, names in claims.items() if len(set(names)) > 1}
    problems = [
        LabelProblem(
            name,
            DOMAINS,
            host,
            f"{host}{path} is also claimed by {', '.join(n for n in names if n != name)}; "
            f"neither is routed there until one of them changes {PATH} or {DOMAINS}",
        )
        for (host, path), names in contested.items()
        for name in names
    ]
    kept = []
    for route in routes:
        hosts = tuple(h for h in route.hosts if (h, route.path) not in contested)
        if hosts:
            kept.append(replace(route, hosts=hosts))
    return kept, problems


def _hsts_beside_plain_http(routes: list[Route]) -> list[LabelProblem]:
    """HSTS makes browsers refuse plain HTTP for the whole host, so a redirect=false route on the
    same host would stop working for them. The edge then sends no HSTS for that host."""
    problems = []
    for hsts_route in (r for r in routes if r.hsts):
        for plain in (r for r in routes if not r.redirect_to_https):
            for host in sorted(set(hsts_route.hosts) & set(plain.hosts)):
                problems.append(
                    LabelProblem(
                        hsts_route.service,
                        HSTS,
                        "true",
                        f"{host}{plain.path} is plain HTTP ({plain.service} has {REDIRECT}=false), "
                        f"and HSTS would make browsers refuse it; {host} gets no HSTS until one "
                        f"of them changes",
                    )
                )
    return problems


def _check_shared_network(service: ServiceInfo, edge: ServiceInfo) -> None:
    if set(service.network_ids) & set(edge.network_ids):
        return
    edge_networks = ", ".join(edge.network_names or edge.network_ids) or "(none)"
    raise _Invalid(
        LabelProblem(
            service.name,
            NETWORKS,
            ", ".join(service.network_names or service.network_ids) or "(none)",
            f"shares no network with the edge {edge.name}, so nginx cannot reach it; attach it "
            f"to {edge_networks} (in a stack file: an external network)",
        )
    )


def _invalid_factory(service: ServiceInfo) -> _InvalidFactory:
    def invalid(label: str, message: str) -> _Invalid:
        return _Invalid(LabelProblem(service.name, label, service.labels.get(label, ""), message))

    return invalid


def _parse_hosts(value: str, invalid: _InvalidFactory, ip_allowed: bool = False) -> tuple[str, ...]:
    return tuple(dict.fromkeys(_parse_hostname(h, invalid, ip_allowed) for h in value.split(",")))


def _parse_certificate_label(service: ServiceInfo, label: str, value: str) -> CertSpec:
    invalid = _invalid_factory(service)
    name = label[len(CERTIFICATE_PREFIX) :]
    if not CERTIFICATE_NAME_RE.fullmatch(name):
        raise invalid(
            label,
            "the part after certbotless.certificate. must be a name of "
            "lowercase letters, digits, '-' and dots, e.g. certbotless.certificate.shop",
        )
    return CertSpec(name, _parse_hosts(value, invalid), _parse_key_type(service, invalid))


def _parse_spec(
    service: ServiceInfo,
    hosts: tuple[str, ...] | None = None,
    invalid: _InvalidFactory | None = None,
) -> CertSpec:
    """The certificate a service asks for (alone: for services an own nginx.conf routes)."""
    invalid = invalid or _invalid_factory(service)
    hosts = hosts or _parse_hosts(service.labels[DOMAINS], invalid, _asks_a_profile(service))
    name = service.labels.get(NAME, "").strip() or hosts[0]
    if not CERTIFICATE_NAME_RE.fullmatch(name):
        raise invalid(NAME, "must be a name of lowercase letters, digits, '-' and dots")
    return CertSpec(
        name,
        hosts,
        _parse_key_type(service, invalid),
        service.labels.get(PROFILE, "").strip() or None,
    )


def _parse_key_type(service: ServiceInfo, invalid: _InvalidFactory) -> KeyType:
    key_text = service.labels.get(KEY_TYPE, KeyType.EC256.value).strip().lower()
    try:
        return KeyType(key_text)
    except ValueError:
        raise invalid(KEY_TYPE, "must be one of " + ", ".join(k.value for k in KeyType)) from None


def _parse_service(service: ServiceInfo) -> tuple[Route, CertSpec]:
    labels = service.labels
    invalid = _invalid_factory(service)

    def text(label: str, default: str = "") -> str:
        return labels.get(label, default).strip()

    hosts = _parse_hosts(labels[DOMAINS], invalid, _asks_a_profile(service))

    port_text = text(PORT)
    if not port_text:
        raise invalid(PORT, f"missing; set {PORT} to the port the service listens on, e.g. 8000")
    if not _PORT_RE.match(port_text) or not 1 <= int(port_text) <= 65535:
        raise invalid(PORT, "must be a port number from 1 to 65535")

    path = text(PATH, "/") or "/"
    if len(path) > MAX_PATH_LENGTH:
        raise invalid(PATH, f"is {len(path)} characters long; nginx takes at most "
                      f"{MAX_PATH_LENGTH} here: shorten the path prefix")  # fmt: skip
    if not _PATH_RE.match(path) or "//" in path or "/../" in f"{path}/":
        raise invalid(PATH, "must start with / and hold only URL path characters, e.g. /api")
    reserved = next((r for r in RESERVED_PATHS if f"{path}/".startswith(r)), None)
    if reserved is not None:
        raise invalid(PATH, f"{reserved} is reserved for the edge itself; choose another path")

    max_body = text(MAX_BODY_SIZE).lower() or None
    if max_body is not None and not _SIZE_RE.match(max_body):
        raise invalid(MAX_BODY_SIZE, "must be a size like 20m, 512k or 1g (0 means no limit)")

    timeout = text(TIMEOUT) or None
    if timeout is not None:
        _check_timeout(timeout, invalid)

    auth_url = text(AUTH_URL) or None
    if auth_url is not None:
        _check_url(auth_url, AUTH_URL, invalid, "http://auth:8000/check")

    error_pages = None
    if text(ERRORS):
        url = text(ERRORS)
        _check_url(url, ERRORS, invalid, "http://errors:80/{status}.html", STATUS_PLACEHOLDER)
        if STATUS_PLACEHOLDER not in url:
            raise invalid(ERRORS, "must contain {status}, e.g. http://errors:80/{status}.html")
        error_pages = ErrorPages(url, _parse_statuses(text(ERRORS_STATUS, "400-599"), invalid))

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
    return route, spec


def _flag(value: str, label: str, invalid: _InvalidFactory) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise invalid(label, "must be true or false")


def _check_timeout(value: str, invalid: _InvalidFactory) -> None:
    match = _TIME_RE.match(value)
    milliseconds = int(match.group(1)) * _TIME_UNIT_MS[match.group(2) or "s"] if match else 0
    if not 0 < milliseconds <= MAX_TIMEOUT_MS:
        raise invalid(
            TIMEOUT, "must be a duration like 300s, 5m or 1h (ms, s, m or h; at most 1 day)"
        )


def _check_url(
    url: str, label: str, invalid: _InvalidFactory, example: str, placeholder: str = ""
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


def _parse_statuses(value: str, invalid: _InvalidFactory) -> tuple[int, ...]:
    statuses: set[int] = set()
    for part in value.split(","):
        match = _STATUS_RANGE_RE.match(part.strip())
        low = int(match.group(1)) if match else 0
        high = int(match.group(2) or low) if match else 0
        if not match or not 300 <= low <= high <= 599:
            raise invalid(ERRORS_STATUS, "must be statuses or ranges from 300 to 599, e.g. 400-599")
        statuses.update(range(low, high + 1))
    # 499 is nginx's own "client closed the connection": nothing to show, and error_page refuses it.
    return tuple(sorted(statuses - {499}))


def _asks_a_profile(service: ServiceInfo) -> bool:
    return bool(service.labels.get(PROFILE, "").strip())


def _parse_hostname(raw: str, invalid: _InvalidFactory, ip_allowed: bool = False) -> str:
    """A hostname as the CA and nginx want it; an IPv4 address only when `ip_allowed` (the
    service asks for a CA profile, which may issue for addresses)."""
    host = raw.strip().rstrip(".").lower()
    if not host:
        raise invalid(DOMAINS, "contains an empty name; separate hostnames with single commas")
    if host.startswith("*."):
        raise invalid(
            DOMAINS,
            f"{host} is a wildcard; HTTP-01 cannot validate wildcards, list each hostname instead",
        )
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


def _parse_ip_address(host: str, invalid: _InvalidFactory, ip_allowed: bool) -> str:
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        raise invalid(DOMAINS, f"{host} is neither a hostname nor an IPv4 address") from None
    if not ip_allowed:
        raise invalid(DOMAINS, _ip_address_problem(host))
    return str(address)


def _one_ip_address(routes: list[Route]) -> tuple[list[Route], list[LabelProblem]]:
    """Clients of an IP address send no SNI, so nginx can give only its default server's
    certificate: one IP address can be served, the lowest; routes to others are reported."""
    addresses = sorted({h for r in routes for h in r.hosts if is_ip_address(h)},
                       key=ipaddress.IPv4Address)  # fmt: skip
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
