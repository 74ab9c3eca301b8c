"""The options of a Traefik service that say how its tasks are reached and its answers passed
on (upstream_options): `loadbalancer.strategy` (wrr, p2c), the sticky cookie
(`loadbalancer.sticky.cookie.*`, as Traefik 3 sets it),
`loadbalancer.responseForwarding.flushInterval` and the active health check (health_check).
What cannot be applied is said: an unknown strategy leaves the router unrouted (Traefik serves
it no more), the others are reported and the rest applied."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from certbotless.labels.traefik.health_check import KEY as HEALTH_CHECK
from certbotless.labels.traefik.health_check import health_check
from certbotless.labels.traefik.middlewares.options import NO_FILE_MIDDLEWARES, FileMiddlewares
from certbotless.labels.traefik.servers_transport import KEY as TRANSPORT
from certbotless.labels.traefik.servers_transport import TransportError, named_transport
from certbotless.model import LabelProblem, ServiceInfo
from certbotless.upstream_options import ServersTransport, StickyCookie, Strategy, UpstreamOptions

SERVICES = "traefik.http.services."
# The keys read here, under traefik.http.services.<name>. (lower case).
OPTION_KEYS = ("loadbalancer.strategy", "loadbalancer.sticky",
               "loadbalancer.responseforwarding.flushinterval", TRANSPORT,
               HEALTH_CHECK)  # fmt: skip
_COOKIE = "loadbalancer.sticky.cookie"
_STICKY_KEYS = {"loadbalancer.sticky", _COOKIE} | {
    f"{_COOKIE}.{option}"
    for option in ("name", "secure", "httponly", "samesite", "maxage", "path", "domain")
}
# The provider Traefik 3 reads Swarm services with: a service's full name is `<name>@swarm`,
# from which the default cookie name is made.
_PROVIDER = "swarm"
# Go's strconv.ParseBool, which Traefik's labels go through.
_TRUE, _FALSE = ("1", "t", "T", "TRUE", "true", "True"), ("0", "f", "F", "FALSE", "false", "False")
# Cookie names the edge's nginx matches safely: RFC 6265 tokens but for the characters that
# mean something to nginx's configuration or PCRE ($, ', `, |, ^, %, !, #, &, *).
_NAME_RE = re.compile(r"[A-Za-z0-9_.~+-]+")
_DOMAIN_RE = re.compile(
    r"\.?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*"
)
_PATH_RE = re.compile(r"[\x21-\x3a\x3c-\x7e]*")  # Go's sanitizeCookiePath keeps these (no ;)
_DURATION_RE = re.compile(r"-?[0-9]+|-?([0-9]+(\.[0-9]*)?(ns|us|µs|ms|s|m|h))+")
_SAME_SITE = {"none": "None", "lax": "Lax", "strict": "Strict"}  # else Go writes none
_OTHER_STRATEGIES = {
    "hrw": "hrw (highest random weight) is not applied: open-source nginx weighs no task by a "
    "hash of the client; use p2c or wrr",
    "leasttime": "leasttime is not applied: open-source nginx does not time its tasks' answers "
    "(nginx Plus's least_time does); use p2c, which prefers the task with fewer requests",
}


class ServiceRefused(Exception):
    """The router of this service makes no route; `problem` says why."""

    def __init__(self, problem: LabelProblem) -> None:
        super().__init__(problem.message)
        self.problem = problem


@dataclass(frozen=True)
class _Options:
    service: ServiceInfo
    name: str  # the Traefik service's
    given: dict[str, tuple[str, str]]  # key (lower case) → (label, value)

    def value(self, key: str) -> str:
        return self.given.get(key, ("", ""))[1].strip()

    def problem(self, key: str, message: str) -> LabelProblem:
        label, value = self.given.get(key, (f"{SERVICES}{self.name}.{key}", ""))
        return LabelProblem(self.service.name, label, value, message)


def upstream_options(
    service: ServiceInfo, name: str, files: FileMiddlewares = NO_FILE_MIDDLEWARES
) -> tuple[UpstreamOptions, list[LabelProblem]]:
    """The Traefik service `name`'s options on `service`, and what of them is not applied.
    Raises ServiceRefused for a strategy Traefik refuses, or a serversTransport not applied
    (`files`: the dynamic configuration that defines them)."""
    prefix = f"{SERVICES}{name}.".lower()
    given = {
        label.lower().removeprefix(prefix): (label, value)
        for label, value in service.labels.items()
        if label.lower().startswith(prefix)
    }
    options = _Options(service, name, given)
    problems: list[LabelProblem] = []
    strategy = _strategy(options)
    sticky = _sticky(options, problems)
    problems += [options.problem(key, "not read by certbotless: no such sticky cookie option; "
                                 "the rest of the service's labels are used")
                 for key in sorted(options.given) if key.startswith("loadbalancer.sticky")
                 and key not in _STICKY_KEYS]  # fmt: skip
    flush = options.value("loadbalancer.responseforwarding.flushinterval")
    if flush and not _DURATION_RE.fullmatch(flush):
        key = "loadbalancer.responseforwarding.flushinterval"
        problems.append(options.problem(key, "must be a duration (100ms, 1s, -1); not applied"))
        flush = ""
    transport = _transport(options, files, problems)
    checked = health_check(options.given, options.problem, problems)
    return UpstreamOptions(strategy=strategy, sticky=sticky, flush_at_once=bool(flush),
                           transport=transport, health_check=checked), problems  # fmt: skip


def _transport(
    options: _Options, files: FileMiddlewares, problems: list[LabelProblem]
) -> ServersTransport:
    """The serversTransport the service names (servers_transport), its options nginx does not
    apply said."""
    try:
        transport, notes = named_transport(options.value(TRANSPORT), files.servers_transports,
                                           files.error)  # fmt: skip
    except TransportError as error:
        raise ServiceRefused(options.problem(TRANSPORT, f"{error}; this router is not "
                                             "routed")) from None  # fmt: skip
    problems += [options.problem(TRANSPORT, f"{note}: not applied; the rest of the transport "
                                 "and of the service's labels is used")
                 for note in notes]  # fmt: skip
    return transport


def passes_host(service: ServiceInfo, name: str) -> bool:
    """The Traefik service's passHostHeader (true unless false)."""
    label = f"{SERVICES}{name}.loadbalancer.passhostheader"
    value = next((v for k, v in service.labels.items() if k.lower() == label.lower()), "true")
    if value.strip().lower() not in ("true", "false"):
        raise ServiceRefused(LabelProblem(service.name, label, value,
                                          "passHostHeader must be true or false"))  # fmt: skip
    return value.strip().lower() == "true"


def _strategy(options: _Options) -> Strategy:
    given = options.value("loadbalancer.strategy") or Strategy.ROUND_ROBIN.value
    if given in _OTHER_STRATEGIES:
        raise ServiceRefused(options.problem("loadbalancer.strategy", _OTHER_STRATEGIES[given]
                                             + "; this router is not routed"))  # fmt: skip
    try:
        return Strategy(given)  # case as written: Traefik refuses P2C
    except ValueError:
        raise ServiceRefused(options.problem(
            "loadbalancer.strategy", "Traefik refuses this strategy and serves none of the "
            "service's routers; accepted: wrr (in turn, the default) and p2c (power of two "
            "choices); this router is not routed",
        )) from None  # fmt: skip


def _flag(options: _Options, key: str, problems: list[LabelProblem]) -> bool | None:
    """A boolean option as Go reads it (None when absent or not a boolean, said)."""
    value = options.value(key)
    if not value:
        return None
    if value in _TRUE or value in _FALSE:
        return value in _TRUE
    problems.append(options.problem(key, "must be true or false; not applied"))
    return None


def _sticky(options: _Options, problems: list[LabelProblem]) -> StickyCookie | None:
    """The sticky cookie: Traefik's Sticky and its Cookie are made by any key under them,
    unless set to false (`sticky=true` alone makes no Cookie: no stickiness in Traefik)."""
    cookie_keys = [key for key in options.given if key == _COOKIE or key.startswith(_COOKIE + ".")]
    if not cookie_keys or _flag(options, "loadbalancer.sticky", problems) is False:
        return None
    if _flag(options, _COOKIE, problems) is False:
        return None
    name = options.value(f"{_COOKIE}.name") or _default_name(options.name)
    name = re.sub(r"[^!#$%&'*+\-.^`|~0-9A-Za-z]", "_", name)  # Traefik's sanitizeName
    if not _NAME_RE.fullmatch(name):
        raise ServiceRefused(options.problem(f"{_COOKIE}.name", "the edge matches cookie names "
                                             "of letters, digits and _ . ~ + - only; rename "
                                             "the cookie; this router is not routed"))  # fmt: skip
    return StickyCookie(name=name, path=_text(options, "path", _PATH_RE, "/"),
                        domain=_text(options, "domain", _DOMAIN_RE, "").lstrip("."),
                        http_only=bool(_flag(options, f"{_COOKIE}.httponly", problems)),
                        secure=bool(_flag(options, f"{_COOKIE}.secure", problems)),
                        same_site=_SAME_SITE.get(options.value(f"{_COOKIE}.samesite").lower(), ""),
                        max_age=_max_age(options))  # fmt: skip


def _default_name(service_name: str) -> str:
    """Traefik's cookie.GenerateName for `<name>@swarm`."""
    digest = hashlib.sha1(f"_TRAEFIK_BACKEND_{service_name}@{_PROVIDER}".encode()).hexdigest()
    return f"_{digest}"[:6]


def _text(options: _Options, option: str, pattern: re.Pattern[str], default: str) -> str:
    key = f"{_COOKIE}.{option}"
    if key not in options.given:
        return default
    value = options.value(key)
    if not pattern.fullmatch(value):
        raise ServiceRefused(options.problem(key, f"not a cookie {option} the edge can send "
                                             "(Go drops such a value); this router is not "
                                             "routed"))  # fmt: skip
    return value


def _max_age(options: _Options) -> int:
    value = options.value(f"{_COOKIE}.maxage") or "0"
    if not re.fullmatch(r"-?[0-9]{1,10}", value):
        raise ServiceRefused(options.problem(f"{_COOKIE}.maxage", "must be a number of seconds; "
                                             "this router is not routed"))  # fmt: skip
    return int(value)
