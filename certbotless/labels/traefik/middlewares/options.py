"""A Traefik middleware as defined (in labels or a dynamic-configuration file) and what its
`apply` reads: its options, the rest of the swarm it may refer to, and the error for an option
it cannot honour."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from certbotless.labels.traefik.tls_options import TlsOptions
from certbotless.labels.values import InvalidLabel
from certbotless.model import LabelProblem, Route, ServiceInfo
from certbotless.upstream_options import ServersTransport

# A serversTransport as read: what nginx applies, and what it reads and does not (why).
ReadTransport = tuple[ServersTransport, tuple[str, ...]]


@dataclass
class Middleware:
    """One middleware's labels on one service: `fields` maps the key after its kind
    (lowercase, e.g. `users` or `customrequestheaders.x-a`) → (label, value)."""

    name: str
    kind: str
    service: str
    stack: str
    fields: dict[str, tuple[str, str]] = field(default_factory=dict)
    kinds: set[str] = field(default_factory=set)  # further kinds under the same name (refused)
    secret_mounts: tuple[tuple[str, str], ...] = ()  # the defining service's (ServiceInfo's)

    def value(self, key: str, default: str = "") -> str:
        found = self.fields.get(key)
        return found[1] if found else default

    def label(self, key: str = "") -> str:
        found = self.fields.get(key)
        if found:
            return found[0]
        return next(iter(self.fields.values()))[0] if self.fields else self.name


@dataclass(frozen=True)
class FileMiddlewares:
    """The middlewares and TLS options of Traefik dynamic-configuration files (`name@file`), by
    name; `error` says why the files could not be read (then every `@file` middleware and TLS
    options are refused)."""

    definitions: dict[str, Middleware] = field(default_factory=dict)
    tls_options: dict[str, TlsOptions] = field(default_factory=dict)
    # http.serversTransports: each read, or why it cannot be applied (refused by name).
    servers_transports: dict[str, ReadTransport | str] = field(default_factory=dict)
    sources: str = ""  # the files, for problems
    error: str = ""


NO_FILE_MIDDLEWARES = FileMiddlewares()


class Unsupported(Exception):
    """A middleware's option (or the middleware) cannot be applied: `label` and `value` say
    which, `message` why."""

    def __init__(self, label: str, value: str, message: str) -> None:
        super().__init__(message)
        self.label, self.value, self.message = label, value, message


@dataclass(frozen=True)
class Context:
    """What applying a middleware may look at beyond its own options."""

    service: ServiceInfo
    definitions: dict[str, list[Middleware]]
    services: Sequence[ServiceInfo]
    secrets: frozenset[str] | None  # the swarm's secret names (None: not known)
    files: FileMiddlewares
    # Options applied only in part, said while the middleware is applied.
    notes: list[LabelProblem] = field(default_factory=list)

    def note(self, label: str, value: str, message: str, situational: bool = False) -> None:
        """An option taken without doing all it asks: reported, the middleware applied;
        `situational`: it differs only in the situation `message` names."""
        self.notes.append(LabelProblem(self.service.name, label, value, message, situational))


# One middleware kind's `apply`: the route with the middleware applied; raises Unsupported
# (or InvalidLabel) when it cannot be.
Apply = Callable[[Route, Middleware, Context], Route]


def known_fields(middleware: Middleware, allowed: set[str]) -> None:
    for key in middleware.fields:
        if key not in allowed and not any(key.startswith(a + ".") for a in allowed):
            raise Unsupported(middleware.label(key), middleware.value(key),
                              f"{middleware.kind}.{key} is not supported")  # fmt: skip


def flag(middleware: Middleware, key: str) -> bool:
    return middleware.value(key).strip().lower() in ("true", "1", "yes", "on")


def invalid_label(label: str, value: str) -> Callable[[str, str], InvalidLabel]:
    """For the value checks shared with certbotless.* labels: their problems name `label`."""

    def invalid(_label: str, message: str) -> InvalidLabel:
        return InvalidLabel(LabelProblem("", label, value, message))

    return invalid


def access_checks_applied(route: Route) -> list[str]:
    """The access middlewares a route has so far (those listed before the one being applied),
    which nginx asks in its access phase, after the rewrite phase's answers."""
    return [name for name, there in (
        ("basicAuth or digestAuth", route.basic_auth is not None),
        ("forwardAuth", route.auth_url is not None), ("ipAllowList", bool(route.allow_from)),
        ("rateLimit", route.rate_limit is not None),
        ("inFlightReq", route.max_connections is not None),
    ) if there]  # fmt: skip
