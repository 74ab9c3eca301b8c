"""Traefik middlewares (defined in labels) → options of the route they are applied to.

A middleware that decides who gets in (auth, allowlists) and is not fully understood refuses the
route: it is never served open. One that only shapes requests or answers is reported and the
route is served without it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from certbotless.labels.settle import (
    HEADER_NAME_RE,
    HEADER_VALUE_RE,
    SECRET_NAME_RE,
    STATUS_PLACEHOLDER,
    InvalidLabel,
    check_path,
    check_url,
    parse_statuses,
    refused_htpasswd_secret,
)
from certbotless.model import (
    BasicAuth,
    Cors,
    ErrorPages,
    LabelProblem,
    RateLimit,
    Route,
    ServiceInfo,
)

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
V1_BASIC = "@v1-basicauth"
MAX_CHAIN_DEPTH = 8
_HTPASSWD_RE = re.compile(r"^[^:\s]{1,64}:[A-Za-z0-9./$={}+-]{1,200}$", re.ASCII)
_DURATION_RE = re.compile(r"^([0-9]{1,6})(ms|s|m|h)?$", re.ASCII)
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


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
    """The middlewares of Traefik dynamic-configuration files (`name@file`), by name; `error`
    says why the files could not be read (then every `@file` middleware is refused)."""

    definitions: dict[str, Middleware] = field(default_factory=dict)
    sources: str = ""  # the files, for problems
    error: str = ""


NO_FILE_MIDDLEWARES = FileMiddlewares()


class MiddlewareRefused(Exception):
    """A route is not served: a middleware guarding it cannot be applied."""

    def __init__(self, problems: list[LabelProblem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


class _Unsupported(Exception):
    def __init__(self, label: str, value: str, message: str) -> None:
        super().__init__(message)
        self.label, self.value, self.message = label, value, message


@dataclass(frozen=True)
class _Context:
    service: ServiceInfo
    definitions: dict[str, list[Middleware]]
    services: Sequence[ServiceInfo]
    secrets: frozenset[str] | None  # the swarm's secret names (None: not known)
    files: FileMiddlewares


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
    context = _Context(service, definitions, services, secrets, files)
    problems: list[LabelProblem] = []
    for label, name in names:
        route = _apply_named(route, label, name, context, problems, 0)
    return route, problems


def _apply_named(
    route: Route, label: str, name: str, context: _Context, problems: list[LabelProblem],
    depth: int,
) -> Route:  # fmt: skip
    try:
        return _apply_one(route, label, name, context, problems, depth)
    except InvalidLabel as error:
        unsupported = _Unsupported(error.problem.label, error.problem.value, error.problem.message)
    except _Unsupported as error:
        unsupported = error
    kind = "basicauth" if name == V1_BASIC else _kind_of(name, context)
    problem = LabelProblem(context.service.name, unsupported.label, unsupported.value,
                           f"middleware {name}: {unsupported.message}")  # fmt: skip
    if kind not in SHAPING_KINDS:
        raise MiddlewareRefused([_refusal(problem)])
    problems.append(replace(problem, message=problem.message + "; the route is served "
                            "without it"))  # fmt: skip
    return route


def _apply_one(
    route: Route, label: str, name: str, context: _Context, problems: list[LabelProblem],
    depth: int,
) -> Route:  # fmt: skip
    if name in (V1_REDIRECT, V1_BASIC):
        return _v1(route, label, name, context.service)
    middleware = _resolve(label, name, context)
    if depth > MAX_CHAIN_DEPTH:
        raise _Unsupported(label, name, f"chains nest deeper than {MAX_CHAIN_DEPTH}")
    if middleware.kinds:
        raise _Unsupported(middleware.label(), name, "defines several kinds under one name")
    if middleware.kind == "chain":
        for inner in middleware.value("middlewares").split(","):
            inner = inner.strip()
            if inner and not middleware.service and "@" not in inner:
                inner += "@file"  # a file's chain names the file's middlewares
            if inner:
                route = _apply_named(route, middleware.label("middlewares"), inner, context,
                                     problems, depth + 1)  # fmt: skip
        return route
    apply = _APPLY.get(middleware.kind)
    if apply is None:
        raise _Unsupported(middleware.label(), name,
                           f"middleware kind {middleware.kind} is not supported")  # fmt: skip
    return apply(route, middleware, context)


def _refusal(problem: LabelProblem) -> LabelProblem:
    return replace(problem, message=problem.message + "; it may guard access, so this router "
                   "is not routed at all rather than served open")  # fmt: skip


def _kind_of(name: str, context: _Context) -> str | None:
    try:
        return _resolve("", name, context).kind
    except _Unsupported:
        return None


def _resolve(label: str, name: str, context: _Context) -> Middleware:
    """The definition a name means: this service's, else its stack's, else the oldest."""
    bare, _, provider = name.partition("@")
    if provider == "file":
        return _from_file(label, name, bare, context.files)
    if provider not in ("", "docker", "swarm"):
        raise _Unsupported(label, name, f"middlewares of the {provider} provider are not read; "
                           "define it in labels or in a file (@file)")  # fmt: skip
    candidates = context.definitions.get(bare, [])
    service = context.service
    for middleware in candidates:
        if middleware.service == service.name:
            return middleware
    for middleware in candidates:
        if service.stack and middleware.stack == service.stack:
            return middleware
    if candidates:
        return candidates[0]
    raise _Unsupported(label, name, "is defined on no service with traefik.enable=true")


def _from_file(label: str, name: str, bare: str, files: FileMiddlewares) -> Middleware:
    if files.error:
        raise _Unsupported(label, name, files.error)
    if not files.sources:
        raise _Unsupported(label, name, "no Traefik dynamic-configuration file is given to "
                           "certbotless: mount it as a Swarm config and name it in "
                           "CERTBOTLESS_TRAEFIK_DYNAMIC_CONFIG")  # fmt: skip
    found = files.definitions.get(bare)
    if found is None:
        raise _Unsupported(label, name, f"{files.sources} defines no middleware {bare} "
                           "under http.middlewares")  # fmt: skip
    return found


def _v1(route: Route, label: str, name: str, service: ServiceInfo) -> Route:
    if name == V1_REDIRECT:
        return replace(route, redirect_to_https=True)
    users = _htpasswd_users(service.labels[label], label, name)
    return replace(route, basic_auth=BasicAuth(users))


def _htpasswd_users(value: str, label: str, name: str) -> tuple[str, ...]:
    users = tuple(u.strip() for u in value.split(",") if u.strip())
    if not users or not all(_HTPASSWD_RE.match(user) for user in users):
        raise _Unsupported(label, value, "users must be user:hash pairs (htpasswd -nB), "
                           "comma-separated")  # fmt: skip
    return users


def _known_fields(middleware: Middleware, allowed: set[str]) -> None:
    for key in middleware.fields:
        if key not in allowed and not any(key.startswith(a + ".") for a in allowed):
            raise _Unsupported(middleware.label(key), middleware.value(key),
                               f"{middleware.kind}.{key} is not supported")  # fmt: skip


def _flag(middleware: Middleware, key: str) -> bool:
    return middleware.value(key).strip().lower() in ("true", "1", "yes", "on")


def _redirect_scheme(route: Route, mw: Middleware, context: _Context) -> Route:
    _known_fields(mw, {"scheme", "permanent", "port"})
    if mw.value("scheme").lower() != "https" or mw.value("port") not in ("", "443"):
        raise _Unsupported(mw.label("scheme"), mw.value("scheme"), "only redirects to https "
                           "on port 443 are supported")  # fmt: skip
    return replace(route, redirect_to_https=True)


def _buffering(route: Route, mw: Middleware, context: _Context) -> Route:
    _known_fields(mw, {"maxrequestbodybytes", "memrequestbodybytes"})
    value = mw.value("maxrequestbodybytes")
    if not value:
        return route
    if not value.isascii() or not value.isdigit() or len(value) > 12:
        raise _Unsupported(mw.label("maxrequestbodybytes"), value, "must be a number of bytes")
    return replace(route, max_body_size=value if int(value) else "0")


def _forward_auth(route: Route, mw: Middleware, context: _Context) -> Route:
    _known_fields(mw, {"address", "trustforwardheader", "authresponseheaders",
                       "authrequestheaders"})  # fmt: skip
    address = mw.value("address")
    invalid = _invalid(mw.label("address"), address)
    try:
        check_url(address, "", invalid, "http://auth:8000/check")
    except InvalidLabel as error:
        raise _Unsupported(mw.label("address"), address, error.problem.message) from None
    headers = tuple(h.strip() for h in mw.value("authresponseheaders").split(",") if h.strip())
    if not all(HEADER_NAME_RE.match(h) for h in headers):
        raise _Unsupported(mw.label("authresponseheaders"), mw.value("authresponseheaders"),
                           "must be header names, comma-separated")  # fmt: skip
    return replace(route, auth_url=address, auth_response_headers=headers)


def _basic_auth(route: Route, mw: Middleware, context: _Context) -> Route:
    _known_fields(mw, {"users", "usersfile", "realm", "removeheader"})
    realm = mw.value("realm", "traefik")
    if not re.fullmatch(r"[A-Za-z0-9 ._-]{1,64}", realm):
        raise _Unsupported(mw.label("realm"), realm, "must be letters, digits, spaces, . _ -")
    remove_header = _flag(mw, "removeheader")
    if mw.value("usersfile"):
        if mw.value("users"):
            raise _Unsupported(mw.label("users"), mw.value("users"), "users and usersFile "
                               "together: Traefik merges them, certbotless takes one; keep "
                               "one")  # fmt: skip
        secret = _users_file_secret(mw, context)
        return replace(route, basic_auth=BasicAuth((), realm, remove_header, secret))
    users = _htpasswd_users(mw.value("users"), mw.label("users"), mw.name)
    return replace(route, basic_auth=BasicAuth(users, realm, remove_header))


SECRETS_DIR = "/run/secrets/"  # where Swarm mounts a secret given with no target


def _users_file_secret(mw: Middleware, context: _Context) -> str:
    """The Swarm secret behind Traefik's `usersFile=/run/secrets/<target>`: a secret named
    <target>, else the stack's (`docker stack deploy` names it <stack>_<target>)."""
    path = mw.value("usersfile")
    target = path[len(SECRETS_DIR) :] if path.startswith(SECRETS_DIR) else ""
    if not SECRET_NAME_RE.match(target):
        raise _Unsupported(mw.label("usersfile"), path, "certbotless reads a users file only "
                           "from a Swarm secret mounted at /run/secrets/<name> (the file the "
                           "Traefik service mounted); put the users in basicauth.users or "
                           "use certbotless.basic_auth_secret")  # fmt: skip
    if (refused := refused_htpasswd_secret(target)) is not None:
        raise _Unsupported(mw.label("usersfile"), path, refused)
    candidates = [target]
    if mw.stack:
        candidates.append(f"{mw.stack}_{target}")
    if context.secrets is None:
        return target
    found = next((name for name in candidates if name in context.secrets), None)
    if found is None:
        raise _Unsupported(mw.label("usersfile"), path, f"no Swarm secret is named "
                           f"{' or '.join(candidates)}; create it from the htpasswd file "
                           f"(`docker secret create {target} FILE`: one Traefik's own stack "
                           "made, <its stack>_<name>, is another stack's and not "
                           "used)")  # fmt: skip
    return found


def _ip_allowlist(route: Route, mw: Middleware, context: _Context) -> Route:
    _known_fields(mw, {"sourcerange", "ipstrategy.depth"})
    if mw.value("ipstrategy.depth", "0") != "0":
        raise _Unsupported(mw.label("ipstrategy.depth"), mw.value("ipstrategy.depth"),
                           "the edge takes the client's address from the connection (or the "
                           "front's PROXY header), not from X-Forwarded-For")  # fmt: skip
    networks = []
    for part in mw.value("sourcerange").split(","):
        try:
            networks.append(str(ipaddress.ip_network(part.strip(), strict=False)))
        except ValueError:
            raise _Unsupported(
                mw.label("sourcerange"),
                mw.value("sourcerange"),
                f"{part.strip()!r} is not an address or network",
            ) from None
    allowed = tuple(networks)
    if route.allow_from:  # two allowlists: both must let the client through
        allowed = tuple(n for n in allowed if n in route.allow_from) or ("127.0.0.255/32",)
    return replace(route, allow_from=allowed)


def _rate_limit(route: Route, mw: Middleware, context: _Context) -> Route:
    _known_fields(mw, {"average", "period", "burst"})
    average, burst = mw.value("average", "0"), mw.value("burst", "1")
    period = _DURATION_RE.match(mw.value("period", "1s"))
    if not (
        average.isascii()
        and average.isdigit()
        and burst.isascii()
        and burst.isdigit()
        and period
        and 0 < int(average) <= 1_000_000
        and int(burst) <= 100_000
    ):
        raise _Unsupported(mw.label("average"), average, "average, burst and period must be "
                           "whole numbers (period like 1s or 1m)")  # fmt: skip
    seconds = int(period.group(1)) * _SECONDS[period.group(2) or "s"]
    per_minute = max(1, round(int(average) * 60 / seconds)) if seconds else int(average) * 60
    return replace(route, rate_limit=RateLimit(per_minute, max(int(burst), 1)))


def _strip_prefix(route: Route, mw: Middleware, context: _Context) -> Route:
    _known_fields(mw, {"prefixes", "forceslash"})
    _not_after_replace(route, mw)
    prefixes = tuple(p.strip() for p in mw.value("prefixes").split(",") if p.strip())
    for prefix in prefixes:
        check_path(prefix, mw.label("prefixes"), _invalid(mw.label("prefixes"), prefix))
    return replace(route, strip_prefixes=route.strip_prefixes + prefixes)


def _add_prefix(route: Route, mw: Middleware, context: _Context) -> Route:
    _known_fields(mw, {"prefix"})
    _not_after_replace(route, mw)
    prefix = mw.value("prefix")
    check_path(prefix, mw.label("prefix"), _invalid(mw.label("prefix"), prefix))
    return replace(route, add_prefix=prefix.rstrip("/"))


def _not_after_replace(route: Route, mw: Middleware) -> None:
    if route.replace_path is not None:
        raise _Unsupported(mw.label(), mw.name, "after a replacePath(Regex) middleware, "
                           "another path change is not supported: use one "
                           "replacePathRegex")  # fmt: skip


def _replace_path(route: Route, mw: Middleware, context: _Context) -> Route:
    _known_fields(mw, {"path"})
    path = mw.value("path")
    check_path(path, mw.label("path"), _invalid(mw.label("path"), path))
    return _with_replacement(route, mw, ("^.*$", path))


# RE2 (Traefik's) and PCRE (nginx's) agree on these; nothing nginx's quoted strings would unescape
# (a double backslash) and no named group (nginx makes each a variable, which could shadow its
# own, such as $upstream).
_REGEX_RE = re.compile(r"^[\x20\x21\x23-\x7e]{1,1024}$", re.ASCII)
_REPLACEMENT_RE = re.compile(r"^/(?:[A-Za-z0-9._~!&()*+,=:@%/-]|\$[1-9])*$", re.ASCII)


def _replace_path_regex(route: Route, mw: Middleware, context: _Context) -> Route:
    _known_fields(mw, {"regex", "replacement"})
    regex = mw.value("regex")
    replacement = re.sub(r"\$\{([1-9])\}", r"$\1", mw.value("replacement"))
    if not _REGEX_RE.match(regex) or "\\\\" in regex or re.search(r"\(\?P?<", regex):
        raise _Unsupported(mw.label("regex"), regex, "must be a regular expression of printable "
                           "ASCII without '\"', a double backslash or named groups")  # fmt: skip
    try:
        re.compile(regex)
    except re.error as error:
        raise _Unsupported(
            mw.label("regex"), regex, f"is not a regular expression: {error}"
        ) from None
    if not _REPLACEMENT_RE.match(replacement):
        raise _Unsupported(mw.label("replacement"), mw.value("replacement"), "must be a path "
                           "with $1…$9 (or ${1}…${9}) for the groups, e.g. /api/$1")  # fmt: skip
    return _with_replacement(route, mw, (regex, replacement))


def _with_replacement(route: Route, mw: Middleware, replacement: tuple[str, str]) -> Route:
    if route.strip_prefixes or route.add_prefix or route.replace_path is not None:
        raise _Unsupported(mw.label(), mw.name, "another middleware already changes the path "
                           "(stripPrefix, addPrefix, replacePath): use one "
                           "replacePathRegex")  # fmt: skip
    return replace(route, replace_path=replacement)


def _in_flight(route: Route, mw: Middleware, context: _Context) -> Route:
    _known_fields(mw, {"amount", "sourcecriterion.ipstrategy.depth"})
    if mw.value("sourcecriterion.ipstrategy.depth", "0") != "0":
        raise _Unsupported(mw.label("sourcecriterion.ipstrategy.depth"),
                           mw.value("sourcecriterion.ipstrategy.depth"),
                           "the edge counts by the client's address, not "
                           "X-Forwarded-For")  # fmt: skip
    amount = mw.value("amount")
    if not re.fullmatch(r"[0-9]{1,6}", amount) or int(amount) < 1:
        raise _Unsupported(mw.label("amount"), amount, "must be a whole number from 1")
    return replace(route, max_connections=int(amount))


def _retry(route: Route, mw: Middleware, context: _Context) -> Route:
    _known_fields(mw, {"attempts", "initialinterval"})
    attempts = mw.value("attempts")
    if not re.fullmatch(r"[0-9]{1,2}", attempts) or int(attempts) < 1:
        raise _Unsupported(mw.label("attempts"), attempts, "must be a whole number from 1 to 99")
    return replace(route, retries=int(attempts))


_HEADER_FLAGS = {
    "framedeny": ("X-Frame-Options", "DENY"),
    "contenttypenosniff": ("X-Content-Type-Options", "nosniff"),
    "browserxssfilter": ("X-XSS-Protection", "1; mode=block"),
}
_HEADER_VALUES = {
    "customframeoptionsvalue": "X-Frame-Options",
    "referrerpolicy": "Referrer-Policy",
    "contentsecuritypolicy": "Content-Security-Policy",
    "permissionspolicy": "Permissions-Policy",
}
_STS = {"stsseconds", "stsincludesubdomains", "stspreload", "forcestsheader"}


_CORS = {
    "accesscontrolalloworiginlist", "accesscontrolallowmethods", "accesscontrolallowheaders",
    "accesscontrolexposeheaders", "accesscontrolallowcredentials", "accesscontrolmaxage",
    "addvaryheader",
}  # fmt: skip
_ORIGIN_RE = re.compile(r"^(?:\*|https?://[A-Za-z0-9.-]{1,253}(?::[0-9]{1,5})?)$", re.ASCII)
_TOKEN_RE = re.compile(r"^(?:\*|[A-Za-z0-9-]{1,100})$", re.ASCII)


def _cors(mw: Middleware) -> Cors | None:
    """Traefik's accessControl* fields (accessControlAllowOriginListRegex is refused)."""
    if not any(key in _CORS for key in mw.fields):
        return None

    def listed(key: str, pattern: re.Pattern[str], what: str) -> tuple[str, ...]:
        items = tuple(i.strip() for i in mw.value(key).split(",") if i.strip())
        bad = [item for item in items if not pattern.match(item)]
        if bad:
            raise _Unsupported(mw.label(key), mw.value(key), f"{bad[0]!r} is not {what}")
        return items

    origins = listed("accesscontrolalloworiginlist", _ORIGIN_RE,
                     "an origin (scheme://host[:port]) or *")  # fmt: skip
    max_age = mw.value("accesscontrolmaxage")
    if max_age and not re.fullmatch(r"[0-9]{1,8}", max_age):
        raise _Unsupported(mw.label("accesscontrolmaxage"), max_age, "must be seconds")
    return Cors(
        origins=origins,
        methods=tuple(
            m.upper() for m in listed("accesscontrolallowmethods", _TOKEN_RE, "a method")
        ),
        headers=listed("accesscontrolallowheaders", _TOKEN_RE, "a header name"),
        expose_headers=listed("accesscontrolexposeheaders", _TOKEN_RE, "a header name"),
        credentials=_flag(mw, "accesscontrolallowcredentials"),
        max_age=int(max_age) if max_age else None,
        vary=_flag(mw, "addvaryheader"),
    )


def _headers(route: Route, mw: Middleware, context: _Context) -> Route:
    _known_fields(mw, {"customrequestheaders", "customresponseheaders", *_HEADER_FLAGS,
                       *_HEADER_VALUES, *_STS, *_CORS})  # fmt: skip
    cors = _cors(mw) or route.cors
    request, response = list(route.request_headers), list(route.response_headers)
    for key, (label, value) in sorted(mw.fields.items()):
        kind = key.partition(".")[0]
        header = label.rsplit(".", 1)[-1]  # as written: header names keep their case
        if kind == "customrequestheaders":
            request.append(_header(header, value, label))
        elif kind == "customresponseheaders":
            response.append(_header(header, value, label))
        elif kind in _HEADER_FLAGS and _flag(mw, kind):
            response.append(_HEADER_FLAGS[kind])
        elif kind in _HEADER_VALUES:
            response.append(_header(_HEADER_VALUES[kind], value, label))
    hsts = route.hsts or mw.value("stsseconds", "0") not in ("", "0")
    return replace(route, request_headers=tuple(request), response_headers=tuple(response),
                   hsts=hsts, cors=cors)  # fmt: skip


def _header(name: str, value: str, label: str) -> tuple[str, str]:
    if not HEADER_NAME_RE.match(name) or not HEADER_VALUE_RE.match(value):
        raise _Unsupported(label, value, "header names are letters, digits and '-'; values "
                           "printable ASCII")  # fmt: skip
    return name, value


def _compress(route: Route, mw: Middleware, context: _Context) -> Route:
    _known_fields(mw, {""})  # `compress=true`: no options
    return replace(route, compress=True)


def _errors(route: Route, mw: Middleware, context: _Context) -> Route:
    _known_fields(mw, {"status", "service", "query"})
    target = _error_service(mw, context)
    query = mw.value("query", "/")
    if not query.startswith("/") or "{url}" in query:
        raise _Unsupported(mw.label("query"), query, "must be a path, with {status} at most")
    url = f"http://{target}{query}"
    invalid = _invalid(mw.label("query"), query)
    try:
        check_url(url, "", invalid, "/{status}.html", STATUS_PLACEHOLDER)
        statuses = parse_statuses(mw.value("status", "400-599"), invalid)
    except InvalidLabel as error:
        raise _Unsupported(
            error.problem.label, error.problem.value, error.problem.message
        ) from None
    if STATUS_PLACEHOLDER not in url:
        url += "?status=" + STATUS_PLACEHOLDER
    return replace(route, error_pages=ErrorPages(url, statuses))


def _error_service(mw: Middleware, context: _Context) -> str:
    """host:port of the Traefik service that serves the error pages."""
    wanted = mw.value("service").split("@")[0]
    for service in context.services:
        for label, value in service.labels.items():
            if label.lower() == f"traefik.http.services.{wanted}.loadbalancer.server.port".lower():
                return f"{service.name}:{value.strip()}"
    raise _Unsupported(mw.label("service"), wanted, "names no Traefik service with a port "
                       "(traefik.http.services.<name>.loadbalancer.server.port) on any "
                       "service")  # fmt: skip


def _invalid(label: str, value: str) -> Callable[[str, str], InvalidLabel]:
    def invalid(_label: str, message: str) -> InvalidLabel:
        return InvalidLabel(LabelProblem("", label, value, message))

    return invalid


_Apply = Callable[[Route, Middleware, _Context], Route]
_APPLY: dict[str, _Apply] = {
    "redirectscheme": _redirect_scheme,
    "buffering": _buffering,
    "forwardauth": _forward_auth,
    "basicauth": _basic_auth,
    "ipallowlist": _ip_allowlist,
    "ipwhitelist": _ip_allowlist,
    "ratelimit": _rate_limit,
    "stripprefix": _strip_prefix,
    "addprefix": _add_prefix,
    "headers": _headers,
    "compress": _compress,
    "errors": _errors,
    "replacepath": _replace_path,
    "replacepathregex": _replace_path_regex,
    "inflightreq": _in_flight,
    "retry": _retry,
}
