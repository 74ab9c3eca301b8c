"""Applying a router's middlewares, in order, to its route: which definition a name means
(this service's, else its owner's when the owner shares it, or a file's `name@file`), chains,
Traefik 1's frontend labels, and what happens when one cannot be applied.

A middleware that decides who gets in (auth, allowlists) and is not fully understood refuses the
route: it is never served open. One that only shapes requests or answers is reported and the
route is served without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from certbotless.labels.claims import may_join
from certbotless.labels.native import SHARE
from certbotless.labels.traefik.middlewares import APPLY_BY_KIND
from certbotless.labels.traefik.middlewares.basic_auth import htpasswd_users
from certbotless.labels.traefik.middlewares.options import (
    NO_FILE_MIDDLEWARES,
    Context,
    FileMiddlewares,
    Middleware,
    Unsupported,
)
from certbotless.labels.traefik.middlewares.path_changes import h2c_check
from certbotless.labels.traefik.middlewares.redirect_scheme import PERMANENT, TEMPORARY
from certbotless.labels.values import InvalidLabel
from certbotless.model import BasicAuth, LabelProblem, Route, ServiceInfo

# Who gets in: never served without them.
SECURITY_KINDS = {"basicauth", "digestauth", "forwardauth", "ipallowlist", "ipwhitelist"}
# Kinds that only shape requests or answers: when not understood, the route is served without
# them. Any other kind (plugins included) might guard access, so it refuses the route.
SHAPING_KINDS = {
    "addprefix", "buffering", "circuitbreaker", "compress", "contenttype", "errors", "grpcweb",
    "headers", "inflightreq", "ratelimit", "redirectregex", "redirectscheme", "replacepath",
    "replacepathregex", "retry", "stripprefix", "stripprefixregex",
}  # fmt: skip
V1_REDIRECT = "@v1-redirect"
V1_PERMANENT = "traefik.frontend.redirect.permanent"
V1_BASIC = "@v1-basicauth"
MAX_CHAIN_DEPTH = 8


class MiddlewareRefused(Exception):
    """A route is not served: a middleware guarding it cannot be applied."""

    def __init__(self, problems: list[LabelProblem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


def apply_middlewares(
    route: Route,
    names: list[tuple[str, str]],
    service: ServiceInfo,
    definitions: dict[str, list[Middleware]],
    services: Sequence[ServiceInfo],
    secrets: frozenset[str] | None = None,
    files: FileMiddlewares = NO_FILE_MIDDLEWARES,
) -> tuple[Route, list[LabelProblem]]:
    """`route` with the middlewares `names` ((label, name) in order) applied, and the problems
    of those that could not be; raises MiddlewareRefused when one guarding access cannot.
    `secrets`: the swarm's secret names, for `basicauth.usersfile` (None: not known)."""
    context = Context(service, definitions, services, secrets, files)
    problems: list[LabelProblem] = []
    for label, name in names:
        route = _apply_named(route, label, name, context, problems, 0)
    return route, problems


def _apply_named(
    route: Route, label: str, name: str, context: Context, problems: list[LabelProblem],
    depth: int,
) -> Route:  # fmt: skip
    try:
        applied = _apply_one(route, label, name, context, problems, depth)
        problems += [replace(note, message=f"middleware {name}: {note.message}; the rest of "
                             "it is applied") for note in context.notes]  # fmt: skip
        context.notes.clear()
        return applied
    except InvalidLabel as error:
        unsupported = Unsupported(error.problem.label, error.problem.value, error.problem.message)
    except Unsupported as error:
        unsupported = error
    kind = "basicauth" if name == V1_BASIC else _kind_of(name, context)
    problem = LabelProblem(context.service.name, unsupported.label, unsupported.value,
                           f"middleware {name}: {unsupported.message}")  # fmt: skip
    if kind not in SHAPING_KINDS or _checks_hosts(name, context):
        raise MiddlewareRefused([_refusal(problem)])
    problems.append(replace(problem, message=problem.message + "; the route is served "
                            "without it"))  # fmt: skip
    return route


def _apply_one(
    route: Route, label: str, name: str, context: Context, problems: list[LabelProblem],
    depth: int,
) -> Route:  # fmt: skip
    if name in (V1_REDIRECT, V1_BASIC):
        return _v1(route, label, name, context.service)
    middleware = _resolve(label, name, context)
    if depth > MAX_CHAIN_DEPTH:
        raise Unsupported(label, name, f"chains nest deeper than {MAX_CHAIN_DEPTH}")
    if middleware.kinds:
        raise Unsupported(middleware.label(), name, "defines several kinds under one name")
    if middleware.kind == "chain":
        for inner in middleware.value("middlewares").split(","):
            inner = inner.strip()
            if inner and not middleware.service and "@" not in inner:
                inner += "@file"  # a file's chain names the file's middlewares
            if inner:
                route = _apply_named(route, middleware.label("middlewares"), inner, context,
                                     problems, depth + 1)  # fmt: skip
        return route
    apply = APPLY_BY_KIND.get(middleware.kind)
    if apply is None:
        raise Unsupported(middleware.label(), name,
                          f"middleware kind {middleware.kind} is not supported")  # fmt: skip
    applied = apply(route, middleware, context)
    h2c_check(route, applied, middleware)
    return applied


def _refusal(problem: LabelProblem) -> LabelProblem:
    return replace(problem, message=problem.message + "; it may guard access, so this router "
                   "is not routed at all rather than served open")  # fmt: skip


def _checks_hosts(name: str, context: Context) -> bool:
    """Whether the middleware is a `headers` one asking for allowedHosts: that check guards
    access, so a route whose headers middleware cannot be applied is refused, not served
    without it."""
    try:
        middleware = _resolve("", name, context)
    except Unsupported:
        return False
    return middleware.kind == "headers" and bool(middleware.value("allowedhosts").strip())


def _kind_of(name: str, context: Context) -> str | None:
    try:
        return _resolve("", name, context).kind
    except Unsupported:
        return None


def _resolve(label: str, name: str, context: Context) -> Middleware:
    """The definition a name means: this service's, else its owner's (the first definer,
    `labels.claims`) when the owner's certbotless.share names this service. Another stack's
    definition the owner does not share is never taken: the router is refused instead."""
    bare, _, provider = name.partition("@")
    if provider == "file":
        return _from_file(label, name, bare, context.files)
    if provider not in ("", "docker", "swarm"):
        raise Unsupported(label, name, f"middlewares of the {provider} provider are not read; "
                          "define it in labels or in a file (@file)")  # fmt: skip
    candidates = context.definitions.get(bare, [])
    service = context.service
    for middleware in candidates:
        if middleware.service == service.name:
            return middleware
    if candidates:
        owner = candidates[0]
        if may_join(service, next(s for s in context.services if s.name == owner.service)):
            return owner
        raise Unsupported(label, name, f"is {owner.service}'s, which defined it first and whose "
                          f"{SHARE} does not name this service: define it in this service's "
                          f"labels, or ask {owner.service}'s team to add this service to "
                          f"{SHARE}")  # fmt: skip
    raise Unsupported(label, name, "is defined on no service with traefik.enable=true")


def _from_file(label: str, name: str, bare: str, files: FileMiddlewares) -> Middleware:
    if files.error:
        raise Unsupported(label, name, files.error)
    if not files.sources:
        raise Unsupported(label, name, "no Traefik dynamic-configuration file is given to "
                          "certbotless: mount it as a Swarm config and name it in "
                          "CERTBOTLESS_TRAEFIK_DYNAMIC_CONFIG")  # fmt: skip
    found = files.definitions.get(bare)
    if found is None:
        raise Unsupported(label, name, f"{files.sources} defines no middleware {bare} "
                          "under http.middlewares")  # fmt: skip
    return found


def _v1(route: Route, label: str, name: str, service: ServiceInfo) -> Route:
    if name == V1_REDIRECT:  # Traefik 1.7: temporary unless frontend.redirect.permanent
        permanent = any(k.lower() == V1_PERMANENT and v.strip().lower() == "true"
                        for k, v in service.labels.items())  # fmt: skip
        statuses = PERMANENT if permanent else TEMPORARY
        return replace(route, redirect_to_https=True, redirect_statuses=statuses)
    users = htpasswd_users(service.labels[label], label, name)
    return replace(route, basic_auth=BasicAuth(users))
