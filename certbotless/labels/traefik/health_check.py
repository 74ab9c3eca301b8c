"""Traefik's active health check of a service (`traefik.http.services.<s>.loadbalancer.
healthcheck.*`, Traefik's pkg/healthcheck), read into upstream_options.HealthCheck, which the
edge runs with njs (edge/health_checks.py). An option that cannot be applied is said, and the
service is served without the check (as with no check: always up)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from certbotless.model import LabelProblem
from certbotless.upstream_options import HealthCheck, ServersTransport

KEY = "loadbalancer.healthcheck"
_HEADERS = f"{KEY}.headers."
_OPTIONS = ("path", "scheme", "mode", "method", "status", "port", "interval",
            "unhealthyinterval", "timeout", "hostname", "followredirects")  # fmt: skip
# Traefik's defaults (dynamic.ServerHealthCheck.SetDefaults): a value <= 0 is replaced by them.
DEFAULT_INTERVAL_MS, DEFAULT_TIMEOUT_MS = 30_000, 5_000
# Go's time.ParseDuration; paerser reads a bare integer as seconds.
_UNIT_MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}
_DURATION_RE = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h)")
_TRUE, _FALSE = ("1", "t", "T", "TRUE", "true", "True"), ("0", "f", "F", "FALSE", "false", "False")
_TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP method or header name
_NOT_APPLIED = "the service is served without the health check (always up)"
INSTEAD = ("use mode http on a health path the service answers over HTTP/1.1, or give the "
           "service a Docker HEALTHCHECK: Swarm takes a task that fails it out of the "
           "service's DNS and VIP")  # fmt: skip

Problem = Callable[[str, str], LabelProblem]  # (key, message) → the problem naming its label


class NotApplied(Exception):
    """An option of the check (`key`, under healthcheck.) that cannot be applied, and why."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key, self.message = key, message


def health_check(
    given: Mapping[str, tuple[str, str]], problem: Problem, problems: list[LabelProblem]
) -> HealthCheck | None:
    """The Traefik service's health check from its options (`given`: key in lower case →
    (label, value)), None when it has none or it cannot be applied (said in `problems`)."""
    keys = [key for key in given if key == KEY or key.startswith(KEY + ".")]
    if not keys or given.get(KEY, ("", ""))[1].strip() in _FALSE:
        return None
    value = lambda option: given.get(f"{KEY}.{option}", ("", ""))[1].strip()  # noqa: E731
    unknown = [key for key in keys if key != KEY and not key.startswith(_HEADERS)
               and key.removeprefix(KEY + ".") not in _OPTIONS]  # fmt: skip
    problems += [problem(key, "not read by certbotless: no such health check option; the rest "
                         "of the check and of the service's labels are used")
                 for key in sorted(unknown)]  # fmt: skip
    label = given.get(f"{KEY}.path", given[min(keys)])[0]  # the label a problem names
    try:
        return _check(value, _headers(given), label)
    except NotApplied as error:
        problems.append(problem(f"{KEY}.{error.key}", f"{error.message}; {_NOT_APPLIED}"))
        return None


def _check(value: Callable[[str], str], headers: tuple[tuple[str, str], ...], label: str
           ) -> HealthCheck:  # fmt: skip
    if value("mode").lower() == "grpc":
        raise NotApplied("mode", "Traefik's gRPC health check (the gRPC Health Checking "
                         "Protocol over HTTP/2) cannot be made by the edge: njs asks over "
                         f"HTTP/1.1 only; {INSTEAD}")  # fmt: skip
    scheme = value("scheme")
    if scheme not in ("", "http", "https"):
        raise NotApplied(
            "scheme",
            "the edge checks over http or https only (Traefik's client "
            "fails on any other scheme, and would take the service down for good)",
        )
    method = value("method") or "GET"
    if not _TOKEN_RE.fullmatch(method):
        raise NotApplied("method", "not an HTTP method (Go refuses it)")
    path = value("path")
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*:|//", path) or re.search(r"[\x00-\x20\x7f#]", path):
        raise NotApplied("path", "must be a path (Traefik refuses a URL with a host or scheme)")
    interval = _duration_ms(value, "interval", DEFAULT_INTERVAL_MS)
    unhealthy = _duration_ms(value, "unhealthyinterval", interval, DEFAULT_INTERVAL_MS)
    return HealthCheck(path=path, scheme=scheme, port=_number(value, "port", 0, 65535),
                       method=method, hostname=_hostname(value("hostname")), headers=headers,
                       status=_number(value, "status", 0, 999),
                       follow_redirects=_flag(value, "followredirects"),
                       interval_ms=interval, unhealthy_interval_ms=unhealthy,
                       timeout_ms=_duration_ms(value, "timeout", DEFAULT_TIMEOUT_MS),
                       label=label)  # fmt: skip


def _headers(given: Mapping[str, tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """The headers as written (the label's case), sorted by name; a header whose name or value
    nginx cannot carry is not applied."""
    found = []
    for key, (label, text) in sorted(given.items()):
        if key.startswith(_HEADERS):
            name = label[len(label) - len(key) + len(_HEADERS) :]
            if not _TOKEN_RE.fullmatch(name) or re.search(r"[\x00-\x1f\x7f]", text):
                raise NotApplied(key.removeprefix(KEY + "."), "not a header name and value "
                                 "that can be sent")  # fmt: skip
            found.append((name, text.strip()))
    return tuple(found)


def _hostname(text: str) -> str:
    if text and not re.fullmatch(r"[A-Za-z0-9.:\[\]_-]+", text):
        raise NotApplied("hostname", "not a host name")
    return text


def _flag(value: Callable[[str], str], option: str) -> bool:
    text = value(option)
    if text and text not in _TRUE + _FALSE:
        raise NotApplied(option, "must be true or false")
    return text not in _FALSE


def _number(value: Callable[[str], str], option: str, low: int, high: int) -> int:
    text = value(option) or "0"
    if not re.fullmatch(r"[0-9]{1,5}", text) or not low <= int(text) <= high:
        raise NotApplied(option, f"must be a number from {low} to {high}")
    return int(text)


def _duration_ms(value: Callable[[str], str], option: str, unset: int, not_positive: int = 0
                 ) -> int:  # fmt: skip
    """A duration in milliseconds (at least 1): `unset` when not given, `not_positive` (else
    `unset`) when zero or negative, as Traefik replaces those by its default."""
    text = value(option)
    if not text:
        return unset
    sign, body = (-1, text[1:]) if text[:1] == "-" else (1, text.removeprefix("+"))
    if re.fullmatch(r"[0-9]+", body):
        ms = int(body) * 1000.0
    elif body == "0" or (body and _DURATION_RE.sub("", body) == ""):
        ms = sum(float(number) * _UNIT_MS[unit] for number, unit in _DURATION_RE.findall(body))
    else:
        raise NotApplied(option, "must be a duration (1s, 500ms, 1m30s) or seconds")
    if sign * ms <= 0:
        return not_positive or unset
    return max(1, round(ms))


def check_problem(
    check: HealthCheck, scheme: str, transport: ServersTransport, service: str
) -> LabelProblem | None:
    """Why the check of a service reached over `scheme` through `transport` cannot be made
    (None: it can): over h2c, which njs does not speak; over https verified against a
    serversTransport's own rootCAs or serverName, which njs's fetch cannot take per check."""
    asked = check.scheme or scheme
    if asked == "h2c":
        why = ("the service speaks h2c, and the edge checks over HTTP/1.1 only (njs): set the "
               "health check's scheme to http if the service answers HTTP/1.1 on that port, "
               f"or {INSTEAD}")  # fmt: skip
    elif asked == "https" and transport.verify and (transport.ca_pem or transport.server_name):
        why = ("the edge's check verifies an https service against the image's CAs, for the "
               "service's name, and cannot take its serversTransport's rootCAs or serverName; "
               "check over http (the health check's scheme), or give the service a Docker "
               "HEALTHCHECK")  # fmt: skip
    else:
        return None
    return LabelProblem(service, check.label, "", f"{why}; {_NOT_APPLIED}")
