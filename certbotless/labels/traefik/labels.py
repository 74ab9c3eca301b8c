"""Traefik's labels (v2/v3, and v1's common ones) → the Routes, CertSpecs and LabelProblems that
certbotless.* labels give. Pure: `traefik_claims` takes every service (middlewares may be defined
on one and used by another) and returns what each asks for; `settle.discover` settles them
with the native ones, first claimant first (`claims`).

Each router is its own route(s): a rule nginx cannot express, a middleware it cannot apply that
guards access (auth, allowlist) or a service without a port is one problem and no route; a
middleware that only shapes requests (compress, retry…) is reported and the route is served
without it. Certificates are certbotless's: `tls.certresolver` names Traefik's resolver, which
certbotless replaces.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from certbotless.labels.claims import Ledger, claim_order, middleware_key
from certbotless.labels.traefik.default_rule import NoDefaultRule, default_rule, has_one_port
from certbotless.labels.traefik.health_check import check_problem
from certbotless.labels.traefik.load_balancer import (
    SERVICES,
    V1_PORT,
    RouterService,
    Upstream,
    defined_services,
    upstream,
    with_server_path,
)
from certbotless.labels.traefik.merging import Made, one_route_per_path
from certbotless.labels.traefik.middlewares.apply import MiddlewareRefused, apply_middlewares
from certbotless.labels.traefik.middlewares.options import (
    NO_FILE_MIDDLEWARES,
    FileMiddlewares,
    Middleware,
    Unsupported,
)
from certbotless.labels.traefik.middlewares.redirect_scheme import with_redirect
from certbotless.labels.traefik.placements import placements
from certbotless.labels.traefik.rules import (
    SYNTAXES,
    V2,
    V3,
    RuleError,
    compile_rule,
    default_priority,
    parse_v1_rule,
)
from certbotless.labels.traefik.service_options import (
    OPTION_KEYS,
    ServiceRefused,
    passes_host,
    upstream_options,
)
from certbotless.labels.traefik.tls_options import router_client_auth
from certbotless.labels.values import (
    DOMAINS,
    InvalidFactory,
    InvalidLabel,
    certificate_name_for,
    check_path,
    profile_for,
)
from certbotless.model import (
    CertSpec,
    DialectClaims,
    LabelProblem,
    Route,
    ServiceInfo,
    StatusTarget,
)
from certbotless.setting_values import RuleTemplate, ServerUrlPrefix, normalize
from certbotless.upstream_options import DEFAULT_UPSTREAM, UpstreamOptions

PREFIX = "traefik."
ENABLE = "traefik.enable"
ROUTERS = "traefik.http.routers."
MIDDLEWARES = "traefik.http.middlewares."
NETWORK_LABELS = ("traefik.docker.network", "traefik.swarm.network", "traefik.backend")
V1_RULE = "traefik.frontend.rule"
V1_REDIRECT = "traefik.frontend.redirect.entrypoint"
V1_BASIC_USERS = "traefik.frontend.auth.basic.users"
V1_LABELS = (V1_RULE, V1_PORT, V1_REDIRECT, V1_BASIC_USERS, "traefik.frontend.entrypoints",
             "traefik.frontend.redirect.permanent")  # fmt: skip
_TRUE = {"true", "yes", "1", "on"}
_PRIORITY_RE = re.compile(r"^-?[0-9]{1,18}$", re.ASCII)
_ROUTER_KEYS = {"rule", "entrypoints", "service", "middlewares", "tls", "tls.certresolver",
                "tls.options", "priority", "rulesyntax"}  # fmt: skip
# Entry point names as stacks write them; others are reported.
_TLS_ENTRYPOINTS = {"websecure", "https", "web-secure", "secure", "tls", "443"}
_PLAIN_ENTRYPOINTS = {"web", "http", "80", "insecure"}


@dataclass
class _Router:
    name: str
    keys: dict[str, tuple[str, str]] = field(default_factory=dict)  # key → (label, value)

    def get(self, key: str) -> tuple[str, str] | None:
        return self.keys.get(key)

    def value(self, key: str, default: str = "") -> str:
        found = self.keys.get(key)
        return found[1].strip() if found else default

    def label(self, key: str) -> str:
        found = self.keys.get(key)
        return found[0] if found else f"{ROUTERS}{self.name}.{key}"


class _Skip(Exception):
    """This router makes no route; `problem` says why (None: nothing to say)."""

    def __init__(self, problem: LabelProblem | None) -> None:
        super().__init__(str(problem))
        self.problem = problem


def enabled(service: ServiceInfo, exposed_by_default: bool) -> bool:
    value = service.labels.get(ENABLE, "").strip().lower()
    return value in _TRUE if value else exposed_by_default


def traefik_claims(
    services: Sequence[ServiceInfo],
    exposed_by_default: bool = False,
    secrets: frozenset[str] | None = None,
    files: FileMiddlewares = NO_FILE_MIDDLEWARES,
    status_page: StatusTarget | None = None,
    default_rule: RuleTemplate | None = None,
    default_syntax: str = V3,
    server_urls: tuple[ServerUrlPrefix, ...] = (),
    ledger: Ledger | None = None,
) -> dict[str, DialectClaims]:
    """What each service's traefik.* labels ask for (services with none are left out).
    `secrets`: the swarm's secret names, for `basicauth.usersFile` (None: not known);
    `files`: the middlewares of Traefik dynamic-configuration files (`name@file`);
    `status_page`: where `api@internal` (Traefik's dashboard) goes, certbotless's status page
    when it is served; `default_rule`: Traefik's defaultRule, for routers without a rule;
    `default_syntax`: Traefik's defaultRuleSyntax, for routers without a ruleSyntax label;
    `server_urls`: where server.url labels may send the edge's requests (none: refused);
    `ledger`: the claims recorded before, where the owner of each middleware name is noted."""
    ordered = sorted(services, key=claim_order)
    taking = [s for s in ordered if _has_traefik_labels(s) and enabled(s, exposed_by_default)]
    definitions = _middleware_definitions(taking, ledger or Ledger({}))
    claims: dict[str, DialectClaims] = {}
    for service in ordered:
        if not _has_traefik_labels(service):
            continue
        if service not in taking:
            claims[service.name] = DialectClaims(problems=_not_enabled(service))
        elif DOMAINS in service.labels:
            claims[service.name] = DialectClaims(problems=(_both_dialects(service),))
        else:
            known = _Known(definitions, ordered, secrets, files, status_page, default_rule,
                           default_syntax, server_urls)  # fmt: skip
            claims[service.name] = _service_claims(service, known)
    return claims


def _has_traefik_labels(service: ServiceInfo) -> bool:
    return any(label.startswith(PREFIX) for label in service.labels)


def _not_enabled(service: ServiceInfo) -> tuple[LabelProblem, ...]:
    """Silence for traefik.enable=false; a word for routers that only miss the opt-in."""
    if ENABLE in service.labels or not any(
        label.startswith((ROUTERS, V1_RULE)) for label in service.labels
    ):
        return ()
    label = next(lbl for lbl in sorted(service.labels) if lbl.startswith((ROUTERS, V1_RULE)))
    return (
        LabelProblem(service.name, label, service.labels[label],
                     "ignored: the service has no traefik.enable=true, and "
                     "CERTBOTLESS_TRAEFIK_EXPOSED_BY_DEFAULT is false (Traefik's "
                     "exposedByDefault); add the label or set that variable to true"),
    )  # fmt: skip


def _both_dialects(service: ServiceInfo) -> LabelProblem:
    return LabelProblem(
        service.name, DOMAINS, service.labels[DOMAINS],
        "the service has both certbotless.* and traefik.* labels; its certbotless.* labels "
        "are used and its traefik.* labels ignored: remove one set",
    )  # fmt: skip


def _middleware_definitions(
    services: Sequence[ServiceInfo], ledger: Ledger
) -> dict[str, list[Middleware]]:
    """Every middleware defined in labels, by name, its owner first: the recorded one while it
    still defines it, else the first in claim order."""
    found: dict[tuple[str, str], Middleware] = {}
    for service in services:
        for label, value in sorted(service.labels.items()):
            if not label.lower().startswith(MIDDLEWARES):
                continue
            name, _, rest = label[len(MIDDLEWARES) :].partition(".")
            kind, _, key = rest.partition(".")
            entry = found.setdefault(
                (service.name, name),
                Middleware(
                    name,
                    kind.lower(),
                    service.name,
                    service.trusted_stack,  # a stack's secret only where stacks are trusted
                    secret_mounts=service.secret_mounts,
                ),
            )
            entry.fields[key.lower()] = (label, value.strip())
            if kind.lower() != entry.kind:
                entry.kinds.add(kind.lower())
    by_name: dict[str, list[Middleware]] = {}
    for middleware in found.values():
        by_name.setdefault(middleware.name, []).append(middleware)
    definer = {service.name: service for service in services}
    return {name: ledger.first(middleware_key(name), definitions, lambda m: definer[m.service])
            for name, definitions in by_name.items()}  # fmt: skip


@dataclass(frozen=True)
class _Known:
    """What a service's routers may refer to beyond its own labels."""

    definitions: dict[str, list[Middleware]]  # middlewares in labels, by name
    services: Sequence[ServiceInfo]
    secrets: frozenset[str] | None
    files: FileMiddlewares
    status_page: StatusTarget | None  # where api@internal goes, when the page is served
    default_rule: RuleTemplate | None  # Traefik's defaultRule (None: not set)
    default_syntax: str  # Traefik's defaultRuleSyntax
    server_urls: tuple[ServerUrlPrefix, ...]  # where server.url labels may send requests


def _service_claims(service: ServiceInfo, known: _Known) -> DialectClaims:
    routers, unknown = _routers(service)
    if not routers and has_one_port(service):  # Traefik makes one router, by the default rule
        routers = {normalize(service.name): _Router(normalize(service.name))}
    problems = [_unknown_label_problem(service, label) for label in unknown]
    routes: list[Made] = []
    certificates: list[tuple[str, CertSpec]] = []
    for router in routers.values():
        try:
            made, spec = _router_routes(service, router, known)
        except _Skip as skip:
            if skip.problem is not None:
                problems.append(skip.problem)
            continue
        except MiddlewareRefused as refused:
            problems += refused.problems
            continue
        except InvalidLabel as invalid:
            problems.append(invalid.problem)
            continue
        priority, route_list, route_problems = made
        problems += route_problems
        routes += [(priority, route, router.label("rule"), router.name) for route in route_list]
        if spec is not None:
            certificates.append((router.label("rule"), spec))
    merged, conflicts = one_route_per_path(service, routes)
    return DialectClaims(tuple(merged), tuple(certificates), tuple(problems + conflicts))


def _routers(service: ServiceInfo) -> tuple[dict[str, _Router], list[str]]:
    """Routers by name (v1's frontend as one named `frontend`), and labels not understood."""
    routers: dict[str, _Router] = {}
    unknown: list[str] = []
    for label, value in sorted(service.labels.items()):
        lowered = label.lower()
        if lowered.startswith(ROUTERS):
            name, _, key = label[len(ROUTERS) :].partition(".")
            key = key.lower()
            if key not in _ROUTER_KEYS:  # tls.domains[n]…: reported
                unknown.append(label)
                continue
            routers.setdefault(name, _Router(name)).keys[key] = (label, value)
        elif lowered in (V1_RULE, V1_REDIRECT, V1_BASIC_USERS):
            key = {V1_RULE: "v1.rule", V1_REDIRECT: "v1.redirect"}.get(lowered, "v1.basic")
            routers.setdefault("frontend", _Router("frontend")).keys[key] = (label, value)
        elif lowered.startswith("traefik.") and not _known_elsewhere(lowered):
            # Only Traefik's own labels: `com.docker.stack.*`, `certbotless.*` and the
            # operator's are none of this dialect's business.
            unknown.append(label)
    return routers, unknown


def _known_elsewhere(label: str) -> bool:
    if label in (ENABLE, *NETWORK_LABELS, *V1_LABELS) or label.startswith(MIDDLEWARES):
        return True
    if label.startswith(SERVICES):
        key = label[len(SERVICES) :].partition(".")[2]
        return key in ("loadbalancer.server.port", "loadbalancer.server.scheme",
                       "loadbalancer.server.url", "loadbalancer.server.preservepath",
                       "loadbalancer.passhostheader") or any(
            key == option or key.startswith(option + ".") for option in OPTION_KEYS)  # fmt: skip
    return False


def _unknown_label_problem(service: ServiceInfo, label: str) -> LabelProblem:
    return LabelProblem(
        service.name, label, service.labels[label],
        "not read by certbotless: this Traefik label has no nginx counterpart here (see "
        "docs/traefik-labels.md); the rest of the service's labels are used",
    )  # fmt: skip


def _problem(service: ServiceInfo, label: str, message: str) -> LabelProblem:
    return LabelProblem(service.name, label, service.labels.get(label, ""), message)


def _router_routes(
    service: ServiceInfo, router: _Router, known: _Known
) -> tuple[tuple[int, list[Route], list[LabelProblem]], CertSpec | None]:
    v1 = router.get("v1.rule") is not None
    rule_label = router.label("v1.rule" if v1 else "rule")
    rule = router.value("v1.rule" if v1 else "rule")
    strip: tuple[str, ...] = ()
    if not rule:
        try:
            rule = default_rule(service, router.name, router.label("rule"), known.default_rule)
        except NoDefaultRule as missing:
            raise _Skip(missing.problem) from None
    priority = _priority(service, router, rule)  # of the rule as written (v1's too)
    try:
        if v1:
            rule, strip = parse_v1_rule(rule)
        alternatives = compile_rule(rule, V2 if v1 else _rule_syntax(service, router, known))
    except RuleError as error:
        raise _Skip(_problem(service, rule_label, f"the rule {error}; this router is not "
                             "routed")) from None  # fmt: skip
    https, plain = _entrypoints(service, router, v1)
    if not https and _redirects_only(router, known) is not None:
        raise _Skip(None)  # a redirect router: its routes' redirect answers as it would
    target = _status_page(service, router, known.status_page)
    base, found, noted = _proxied_to(service, router, known, target, v1)
    base = _redirect_of(service, known, replace(base, strip_prefixes=strip,
                                                redirect_to_https=not plain))  # fmt: skip
    base, problems = apply_middlewares(base, _middleware_names(router), service,
                                       known.definitions, known.services, known.secrets,
                                       known.files)  # fmt: skip
    base = with_server_path(service, base, found)
    problems = noted + problems
    base, problems = _with_client_auth(service, router, known, base, problems)
    if target is not None:  # the page's own protections at the edge, whatever the router says
        base = replace(base, auth_url=target.auth_url or base.auth_url,
                       allow_from=target.allow_from or base.allow_from)  # fmt: skip
    routes = []
    invalid = _invalid_factory(service, rule_label)
    for alternative in alternatives:
        check_path(alternative.path, rule_label, invalid, matched_only=not strip)
        for hosts, conditions in placements(alternative.hosts, https, invalid):
            routes.append(replace(base, hosts=hosts, path=alternative.path,
                                  exact_path=alternative.exact, methods=alternative.methods,
                                  match_headers=alternative.headers,
                                  conditions=alternative.conditions + conditions))  # fmt: skip
    hosts = tuple(dict.fromkeys(h for route in routes for h in route.hosts))
    if base.client_tls.client_auth is not None and not all(route.hosts for route in routes):
        raise _Skip(_problem(service, router.label("tls.options" if router.get("tls.options")
                                                   else "rule"),
                             "client certificates (TLS options) are asked per host, and this "
                             "rule has no Host: Traefik applies the options of the name the "
                             "client sends, not the router's; give the rule a Host; this "
                             "router is not routed"))  # fmt: skip
    return (priority, routes, problems), _spec(hosts)


def _proxied_to(
    service: ServiceInfo, router: _Router, known: _Known, target: StatusTarget | None, v1: bool
) -> tuple[Route, Upstream, list[LabelProblem]]:
    """The router's route, hostless, as far as its service says: the status page's, or the
    Traefik service's tasks or server URL, with that service's options (and what of them is
    not applied)."""
    found = Upstream(target.port, "http") if target else upstream(
        service, RouterService(router.name, router.value("service"), router.label("service"),
                               router.label("rule")), v1, known.server_urls)  # fmt: skip
    options, noted, passes = ((DEFAULT_UPSTREAM, [], True) if target
                              else _service_options(service, router, known.files))  # fmt: skip
    check = options.health_check
    unchecked = check and check_problem(check, found.scheme, options.transport, service.name)
    if unchecked:  # served without its health check, which njs cannot make
        noted, options = [*noted, unchecked], replace(options, health_check=None)
    route = Route(service=target.service if target else service.name, hosts=(),
                  port=found.port, upstream_scheme=found.scheme,
                  server_authority=found.server_authority, pass_host_header=passes,
                  upstream=options)  # fmt: skip
    return route, found, noted


def _with_client_auth(
    service: ServiceInfo, router: _Router, known: _Known, route: Route,
    problems: list[LabelProblem],
) -> tuple[Route, list[LabelProblem]]:  # fmt: skip
    """The route with the client certificates its TLS options ask for (`tls.options`, else the
    dynamic configuration's default options): options that cannot be applied refuse it."""
    files = known.files
    try:
        auth, note = router_client_auth(router.value("tls.options"), files.tls_options,
                                        files.error, files.sources)  # fmt: skip
    except ValueError as error:
        raise _Skip(_problem(service, router.label("tls.options"),
                             f"{error}; this router is not routed, never served without the "
                             "client certificates it may ask for")) from None  # fmt: skip
    if note:
        problems = [*problems, _problem(service, router.label("tls.options"), note + " applied")]
    if auth is None:
        return route, problems
    return replace(route, client_tls=replace(route.client_tls, client_auth=auth)), problems


def _rule_syntax(service: ServiceInfo, router: _Router, known: _Known) -> str:
    """The router's ruleSyntax, else the default (CERTBOTLESS_TRAEFIK_RULE_SYNTAX: v3 unless
    set to v2, as Traefik v3's core.defaultRuleSyntax)."""
    syntax = router.value("rulesyntax", known.default_syntax)
    if syntax not in SYNTAXES:
        raise _Skip(_problem(service, router.label("rulesyntax"),
                             "must be v2 or v3 (Traefik reads any other value as v3): write "
                             "one of them; this router is not routed"))  # fmt: skip
    return syntax


def _service_options(
    service: ServiceInfo, router: _Router, files: FileMiddlewares
) -> tuple[UpstreamOptions, list[LabelProblem], bool]:
    """The router's Traefik service's options (service_options), what of them is not applied,
    and its passHostHeader."""
    wanted = router.value("service").partition("@")[0]
    defined = defined_services(service)
    wanted = next(iter(defined)) if not wanted and len(defined) == 1 else wanted
    try:
        return (*upstream_options(service, wanted, files), passes_host(service, wanted))
    except ServiceRefused as refused:
        raise _Skip(refused.problem) from None


def _redirect_of(service: ServiceInfo, known: _Known, route: Route) -> Route:
    """A route sent to HTTPS answers plain HTTP as the service's redirect router would (its
    redirectScheme: temporary unless permanent)."""
    routers, _ = _routers(service)
    for router in sorted(routers.values(), key=lambda r: r.name):
        https, _ = _entrypoints(service, router, router.get("v1.rule") is not None)
        redirect = None if https else _redirects_only(router, known)
        if redirect is not None:
            changed = _path_changed_before(router, known, redirect)
            if changed is not None:
                label = _middleware_names(router)[0][0]
                raise _Skip(_problem(service, label, f"{changed} is listed before the "
                                     f"redirectScheme {redirect.name}: Traefik's redirect then "
                                     "has the changed path, the edge's plain-HTTP redirect "
                                     "keeps the request's; list the redirectScheme first",
                                     ))  # fmt: skip
            try:
                return with_redirect(route, redirect)
            except Unsupported as error:
                raise _Skip(_problem(service, error.label, error.message)) from None
    return route


def _redirects_only(router: _Router, known: _Known) -> Middleware | None:
    """The redirectScheme to https of a router that only sends plain HTTP to HTTPS (its
    service then does not matter), or None."""
    names = [name for _, name in _middleware_names(router)]
    return next(
        (
            middleware
            for name in names
            for middleware in _candidates(name, known)
            if middleware.kind == "redirectscheme"
            and middleware.fields.get("scheme", ("", ""))[1].lower() == "https"
        ),
        None,
    )


def _candidates(name: str, known: _Known) -> Sequence[Middleware]:
    bare, _, provider = name.partition("@")
    if provider == "file":
        found = known.files.definitions.get(bare)
        return [found] if found is not None else []
    return known.definitions.get(bare, [])


_PATH_CHANGES = frozenset({"stripprefix", "stripprefixregex", "addprefix", "replacepath",
                           "replacepathregex"})  # fmt: skip


def _path_changed_before(router: _Router, known: _Known, redirect: Middleware) -> str | None:
    """The name of a path middleware the router lists before `redirect` (Traefik's Location
    then has the changed path; the edge's plain-HTTP redirect keeps the request's)."""
    for _, name in _middleware_names(router):
        found = _candidates(name, known)
        if redirect in found:
            return None
        if any(middleware.kind in _PATH_CHANGES for middleware in found):
            return name
    return None


def _invalid_factory(service: ServiceInfo, label: str) -> InvalidFactory:
    """Problems about any part of a value are about `label` (the rule, usually)."""

    def invalid(_label: str, message: str) -> InvalidLabel:
        return InvalidLabel(_problem(service, label, message))

    return invalid


def _spec(hosts: tuple[str, ...]) -> CertSpec | None:
    if not hosts:
        return None
    return CertSpec(certificate_name_for(hosts[0]), hosts, profile=profile_for(hosts, None))


def _priority(service: ServiceInfo, router: _Router, rule: str) -> int:
    """The priority label, else (and for 0, as Traefik) the rule's length."""
    text = router.value("priority")
    if text and not _PRIORITY_RE.match(text):
        raise _Skip(_problem(service, router.label("priority"),
                             "must be a whole number (Traefik refuses the router): higher goes "
                             "first; 0 or none: the rule's length"))  # fmt: skip
    return int(text) if text and int(text) != 0 else default_priority(rule)


def _middleware_names(router: _Router) -> list[tuple[str, str]]:
    """(label, name) of each middleware the router uses, in order."""
    names = []
    found = router.get("middlewares")
    if found is not None:
        names += [(found[0], n.strip()) for n in found[1].split(",") if n.strip()]
    v1_redirect = router.get("v1.redirect")
    if v1_redirect is not None and v1_redirect[1].strip().lower() == "https":
        names.append((v1_redirect[0], "@v1-redirect"))
    v1_basic = router.get("v1.basic")
    if v1_basic is not None:
        names.append((v1_basic[0], "@v1-basicauth"))
    return names


def _entrypoints(service: ServiceInfo, router: _Router, v1: bool) -> tuple[bool, bool]:
    """(serves HTTPS, serves plain HTTP) as the router's entry points and TLS labels say."""
    tls_flag = router.value("tls").lower() in _TRUE or bool(router.value("tls.certresolver"))
    found = router.get("entrypoints")
    if v1:
        return True, True  # Traefik 1's frontends: every entry point
    if found is None:
        return tls_flag, not tls_flag  # every entry point, TLS ones only with tls
    names = {n.strip().lower() for n in found[1].split(",") if n.strip()}
    unknown = names - _TLS_ENTRYPOINTS - _PLAIN_ENTRYPOINTS
    if unknown:
        raise _Skip(_problem(service, found[0],
                             f"entry point {', '.join(sorted(unknown))} is unknown; the edge "
                             "serves web (port 80) and websecure (port 443): use those "
                             "names"))  # fmt: skip
    # A router with TLS answers TLS requests only, whatever its entry points.
    return tls_flag or bool(names & _TLS_ENTRYPOINTS), bool(
        names & _PLAIN_ENTRYPOINTS
    ) and not tls_flag


def _status_page(
    service: ServiceInfo, router: _Router, status_page: StatusTarget | None
) -> StatusTarget | None:
    """For `api@internal` (Traefik's dashboard): certbotless's status page, when served."""
    wanted, _, provider = router.value("service").partition("@")
    if provider != "internal":
        return None
    if wanted.lower() != "api":
        raise _Skip(_problem(service, router.label("service"),
                             f"Traefik's internal service {wanted} has no counterpart here; "
                             "this router is not routed"))  # fmt: skip
    if status_page is None:
        raise _Skip(_problem(service, router.label("service"),
                             "api@internal (Traefik's dashboard) is served by certbotless's "
                             "status page, which is off: set CERTBOTLESS_STATUS_LISTEN and one "
                             "of its protections; this router is not routed"))  # fmt: skip
    return status_page
