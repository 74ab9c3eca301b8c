"""headers: custom request and response headers (an empty value removes one), the security
headers Traefik's unrolled/secure sets from its options (frameDeny, stsSeconds…), and CORS
(the accessControl* options)."""

from __future__ import annotations

import re
from dataclasses import replace

from certbotless.labels.traefik.go_regex import NotPortable, to_pcre
from certbotless.labels.traefik.middlewares.options import (
    Context,
    Middleware,
    Unsupported,
    flag,
    known_fields,
)
from certbotless.labels.values import HEADER_NAME_RE, HEADER_VALUE_RE
from certbotless.model import Cors, Route
from certbotless.rewrite_phase import AllowedHosts

# unrolled/secure (Traefik's secure headers): a flag's header, unless the value beside it is set.
_HEADER_FLAGS = {
    "framedeny": ("X-Frame-Options", "DENY", "customframeoptionsvalue"),
    "contenttypenosniff": ("X-Content-Type-Options", "nosniff", ""),
    "browserxssfilter": ("X-XSS-Protection", "1; mode=block", "custombrowserxssvalue"),
}
_HEADER_VALUES = {
    "customframeoptionsvalue": "X-Frame-Options",
    "custombrowserxssvalue": "X-XSS-Protection",
    "referrerpolicy": "Referrer-Policy",
    "contentsecuritypolicy": "Content-Security-Policy",
    "contentsecuritypolicyreportonly": "Content-Security-Policy-Report-Only",
    "permissionspolicy": "Permissions-Policy",
}
_STS = {"stsseconds", "stsincludesubdomains", "stspreload", "forcestsheader", "isdevelopment"}
# Deprecated options Traefik v3 reads and ignores (its headers middleware does not pass them
# to unrolled/secure): ignored as well, and said so with what does the job.
_REDIRECT_INSTEAD = ("not applied, as Traefik v3 does not apply it (deprecated there): a "
                     "redirectScheme middleware sends plain HTTP to HTTPS")  # fmt: skip
_IGNORED_WHY = {
    "featurepolicy": "not sent, as Traefik v3 does not send it (deprecated there): use "
    "permissionsPolicy",
    "sslredirect": _REDIRECT_INSTEAD,
    "ssltemporaryredirect": _REDIRECT_INSTEAD,
    "sslhost": _REDIRECT_INSTEAD,
    "sslforcehost": _REDIRECT_INSTEAD,
}
_IGNORED = set(_IGNORED_WHY)
# sslProxyHeaders: Traefik's entry point sets these itself (never the client's value).
_SET_BY_ENTRY_POINT = {"x-forwarded-port", "x-forwarded-server"}
# A Public-Key-Pins value, written in nginx's single quotes.
_PINS_RE = re.compile(r"^[\x20-\x23\x25\x26\x28-\x5b\x5d-\x7e]{1,2000}$", re.ASCII)


_CORS = {
    "accesscontrolalloworiginlist", "accesscontrolallowmethods", "accesscontrolallowheaders",
    "accesscontrolexposeheaders", "accesscontrolallowcredentials", "accesscontrolmaxage",
    "addvaryheader", "accesscontrolalloworiginlistregex",
}  # fmt: skip
_ORIGIN_RE = re.compile(r"^(?:\*|https?://[A-Za-z0-9.-]{1,253}(?::[0-9]{1,5})?)$", re.ASCII)
_TOKEN_RE = re.compile(r"^(?:\*|[A-Za-z0-9-]{1,100})$", re.ASCII)


def apply(route: Route, mw: Middleware, context: Context) -> Route:
    if set(mw.fields) <= {""}:  # `…m.headers=true`: Traefik's dynamic.Headers{}
        raise Unsupported(mw.label(""), mw.value(""), "a headers middleware without an option, "
                          "which Traefik refuses (headers configuration not valid): give it "
                          "the headers to set")  # fmt: skip
    known_fields(mw, {"customrequestheaders", "customresponseheaders", *_HEADER_FLAGS,
                      *_HEADER_VALUES, *_STS, *_CORS, *_IGNORED, "publickey",
                      "sslproxyheaders", "allowedhosts", "hostsproxyheaders"})  # fmt: skip
    cors = _cors(mw) or route.cors
    request, response = list(route.request_headers), list(route.response_headers)
    for key, (label, value) in sorted(mw.fields.items()):
        kind = key.partition(".")[0]
        header = label.rsplit(".", 1)[-1]  # as written: header names keep their case
        if kind == "customrequestheaders":
            request.append(_header(header, value, label))
        elif kind == "customresponseheaders":
            response.append(_header(header, value, label))
        elif kind in _HEADER_FLAGS and flag(mw, kind) and not mw.value(_HEADER_FLAGS[kind][2]):
            response.append(_HEADER_FLAGS[kind][:2])
        elif kind in _HEADER_VALUES and value:
            response.append(_header(_HEADER_VALUES[kind], value, label))
    for key in sorted(_IGNORED & set(mw.fields)):
        context.note(mw.label(key), mw.value(key), _IGNORED_WHY[key])
    sts, sts_on_plain_http = _strict_transport(mw)
    route = _with_allowed_hosts(route, mw)
    route = _secure_scheme(route, mw, bool(sts))
    return replace(route, request_headers=tuple(request), response_headers=tuple(response),
                   strict_transport=sts or route.strict_transport,
                   strict_transport_on_plain_http=sts_on_plain_http if sts else
                   route.strict_transport_on_plain_http, cors=cors)  # fmt: skip


def _secure_scheme(route: Route, mw: Middleware, sts: bool) -> Route:
    """unrolled/secure's publicKey (Public-Key-Pins over HTTPS; none with isDevelopment) and
    sslProxyHeaders: a request whose header has the value counts as HTTPS for it and for
    Strict-Transport-Security."""
    key = "" if flag(mw, "isdevelopment") else mw.value("publickey")
    if key and not _PINS_RE.match(key):  # pins are quoted: `pin-sha256="…"; max-age=…`
        raise Unsupported(mw.label("publickey"), key, "must be printable ASCII without ', $ "
                          "and \\")  # fmt: skip
    proxy_headers = []
    for field_key, (label, value) in sorted(mw.fields.items()):
        if field_key.startswith("sslproxyheaders."):
            header = label.rsplit(".", 1)[-1]
            proxy_headers.append(_header(header, value, label))
            if header.lower() in _SET_BY_ENTRY_POINT:
                raise Unsupported(label, value, "Traefik's entry point sets this header "
                                  "itself, which the edge cannot repeat")  # fmt: skip
    if not (key or sts or route.public_key or route.strict_transport):
        return route  # nothing for sslProxyHeaders to send
    return replace(route, public_key=key or route.public_key,
                   ssl_proxy_headers=tuple(proxy_headers) or route.ssl_proxy_headers)  # fmt: skip


def _strict_transport(mw: Middleware) -> tuple[str, bool]:
    """unrolled/secure's Strict-Transport-Security: `max-age=<stsSeconds>` with
    `; includeSubDomains` and `; preload` as flagged, when stsSeconds is not 0 and
    isDevelopment is off; over HTTPS only unless forceSTSHeader."""
    seconds = mw.value("stsseconds", "0")
    if not re.fullmatch(r"[0-9]{1,10}", seconds):
        raise Unsupported(mw.label("stsseconds"), seconds, "must be a whole number of seconds")
    if int(seconds) == 0 or flag(mw, "isdevelopment"):
        return "", False
    value = f"max-age={int(seconds)}"
    if flag(mw, "stsincludesubdomains"):
        value += "; includeSubDomains"
    if flag(mw, "stspreload"):
        value += "; preload"
    return value, flag(mw, "forcestsheader")


def _header(name: str, value: str, label: str) -> tuple[str, str]:
    if not HEADER_NAME_RE.match(name) or not HEADER_VALUE_RE.match(value):
        raise Unsupported(label, value, "header names are letters, digits and '-'; values "
                          "printable ASCII")  # fmt: skip
    return name, value


MAX_CORS_LIST = 1000  # characters of one accessControl* list


def _cors(mw: Middleware) -> Cors | None:
    """Traefik's accessControl* fields; accessControlAllowOriginListRegex's regexes are
    searched in the Origin as Go's MatchString does (read as go_regex.py reads Go's)."""
    if not any(key in _CORS for key in mw.fields):
        return None

    def listed(key: str, pattern: re.Pattern[str], what: str) -> tuple[str, ...]:
        items = tuple(i.strip() for i in mw.value(key).split(",") if i.strip())
        bad = [item for item in items if not pattern.match(item)]
        if bad:
            raise Unsupported(mw.label(key), mw.value(key), f"{bad[0]!r} is not {what}")
        if len(",".join(items)) > MAX_CORS_LIST:
            # Rendered into one nginx parameter (origins escaped into a regex): nginx reads at
            # most 4,096 characters there, and a longer one would fail every host's roll.
            raise Unsupported(mw.label(key), mw.value(key)[:80] + "…", f"the list is longer "
                              f"than {MAX_CORS_LIST} characters, more than the edge writes into "
                              "one nginx parameter: shorten it (for origins, "
                              "accessControlAllowOriginListRegex matches many at "
                              "once)")  # fmt: skip
        return items

    origins = listed("accesscontrolalloworiginlist", _ORIGIN_RE,
                     "an origin (scheme://host[:port]) or *")  # fmt: skip
    max_age = mw.value("accesscontrolmaxage")
    if max_age and not re.fullmatch(r"[0-9]{1,8}", max_age):
        raise Unsupported(mw.label("accesscontrolmaxage"), max_age, "must be seconds")
    return Cors(
        origins=origins,
        methods=listed("accesscontrolallowmethods", _TOKEN_RE, "a method"),  # as written
        headers=listed("accesscontrolallowheaders", _TOKEN_RE, "a header name"),
        expose_headers=listed("accesscontrolexposeheaders", _TOKEN_RE, "a header name"),
        credentials=flag(mw, "accesscontrolallowcredentials"),
        max_age=int(max_age) if max_age else None,
        vary=flag(mw, "addvaryheader"),
        origin_regexes=_origin_regexes(mw),
    )


def _origin_regexes(mw: Middleware) -> tuple[str, ...]:
    key = "accesscontrolalloworiginlistregex"
    regexes = []
    for written in (r.strip() for r in mw.value(key).split(",") if r.strip()):
        try:
            regexes.append(to_pcre(written).text)
        except NotPortable as why:
            raise Unsupported(mw.label(key), written, str(why)) from None
    return tuple(regexes)


_HOST_RE = re.compile(r"^[A-Za-z0-9.-]{1,253}(?::[0-9]{1,5})?$", re.ASCII)


def _with_allowed_hosts(route: Route, mw: Middleware) -> Route:
    """unrolled/secure's allowedHosts: a request whose host (the first of hostsProxyHeaders
    that is set, else Host) is none of them, compared without case, gets 500 "Bad Host"; not
    checked with isDevelopment. nginx answers it before the route's access checks."""
    hosts = tuple(h.strip().lower() for h in mw.value("allowedhosts").split(",") if h.strip())
    headers = tuple(h.strip() for h in mw.value("hostsproxyheaders").split(",") if h.strip())
    for host in hosts:
        if not _HOST_RE.match(host):
            raise Unsupported(mw.label("allowedhosts"), host, "must be a host[:port]")
    for header in headers:
        _header(header, "", mw.label("hostsproxyheaders"))
        if header.lower() in ("x-forwarded-port", "x-forwarded-server"):
            raise Unsupported(mw.label("hostsproxyheaders"), header, "Traefik sets this "
                              "header itself (its entry point's port, its own host name), "
                              "which the edge cannot repeat: name X-Forwarded-Host or the "
                              "client's own header")  # fmt: skip
    if not hosts or flag(mw, "isdevelopment"):
        return route  # hostsProxyHeaders alone changes nothing Traefik does here
    if route.basic_auth or route.auth_url or route.allow_from:
        raise Unsupported(mw.label("allowedhosts"), mw.value("allowedhosts"), "nginx answers "
                          "a bad host before the route's access checks: list this headers "
                          "middleware before the router's access middlewares")  # fmt: skip
    allowed = AllowedHosts(hosts, headers)
    return replace(route, rewrite_phase=replace(route.rewrite_phase, allowed_hosts=allowed))
