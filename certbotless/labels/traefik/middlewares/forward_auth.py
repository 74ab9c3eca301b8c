"""forwardAuth: each request is first asked of `address`, with only `authRequestHeaders` of
the client's headers when listed; its `authResponseHeaders` are passed on to the service.
`preserveRequestMethod`: the auth server is asked with the request's method (else GET); its
`tls` options say how the edge speaks TLS to an https address. A refusal is the auth server's
own answer, its relative Location made absolute unless `preserveLocationHeader`; a 401 is a
redirect to `authSigninURL` when given. `maxResponseBodySize`: an auth answer whose body is
longer is a 401 without a body, as Traefik's. `forwardBody`: the request's body goes to the auth
server too, a body longer than `maxBodySize` a 401 without a body."""

from __future__ import annotations

import re
from dataclasses import replace

from certbotless.client_tls import AuthServerTls
from certbotless.forward_auth_options import ForwardAuthOptions
from certbotless.labels.traefik.middlewares.basic_auth import mounted_secret
from certbotless.labels.traefik.middlewares.options import (
    Context,
    Middleware,
    Unsupported,
    access_checks_applied,
    flag,
    invalid_label,
    known_fields,
)
from certbotless.labels.values import HEADER_NAME_RE, InvalidLabel, check_url
from certbotless.model import Route

# Options nginx's auth_request cannot honour, with the closest alternative.
_REFUSED = {
    "authResponseHeadersRegex": "nginx copies named headers of the auth answer only: list "
    "them in authResponseHeaders",
    "addAuthCookiesToResponse": "nginx cannot pick cookies out of the auth answer's "
    "Set-Cookie headers: have the service set them, or the auth server redirect to a page "
    "that does",
}
# maxBodySize beside buffering's maxRequestBodyBytes: which answers a body over both (401 or
# 413) would be the order of the middlewares, which the edge does not keep for bodies.
BODY_LIMITS_TOGETHER = (
    "forwardAuth's maxBodySize beside buffering's maxRequestBodyBytes on one router: keep one "
    "of the two limits"
)
_TLS_FILES = {"ca": "the auth server's CA", "cert": "a client certificate", "key": "a key"}


def apply(route: Route, mw: Middleware, context: Context) -> Route:
    known_fields(mw, {"address", "trustforwardheader", "authresponseheaders",
                      "authrequestheaders", "preserverequestmethod", "preservelocationheader",
                      "maxresponsebodysize", "authsigninurl", "tls.ca", "tls.cert", "tls.key",
                      "tls.insecureskipverify", "tls.caoptional", "forwardbody", "maxbodysize",
                      *(name.lower() for name in _REFUSED)})  # fmt: skip
    for name, why in _REFUSED.items():
        key = name.lower()
        if key in mw.fields or any(field.startswith(key + ".") for field in mw.fields):
            raise Unsupported(mw.label(key), mw.value(key), f"forwardAuth's {name}: {why}")
    limit = _byte_limit(mw, "maxresponsebodysize", "maxResponseBodySize")
    forwards_body = flag(mw, "forwardbody")
    # Traefik reads maxBodySize only with forwardBody.
    body_limit = _byte_limit(mw, "maxbodysize", "maxBodySize")
    body_limit = body_limit if forwards_body else None
    if forwards_body and (before := _answered_before(route)):
        raise Unsupported(mw.label("forwardbody"), mw.value("forwardbody"), "forwardAuth's "
                          f"forwardBody after {', '.join(before)}: the edge asks the auth server "
                          "with the body before anything else of the router, where Traefik "
                          "runs the middlewares listed before it first; list the forwardAuth "
                          "first")  # fmt: skip
    if forwards_body and limit is not None:
        raise Unsupported(mw.label("forwardbody"), mw.value("forwardbody"), "forwardAuth's "
                          "forwardBody beside maxResponseBodySize: the edge measures the auth "
                          "answer's body and sends the request's by two different subrequests, "
                          "which do not combine; keep one of the two")  # fmt: skip
    if body_limit is not None and route.max_body_size is not None:
        raise Unsupported(mw.label("maxbodysize"), mw.value("maxbodysize"), BODY_LIMITS_TOGETHER)
    address = mw.value("address")
    invalid = invalid_label(mw.label("address"), address)
    try:
        check_url(address, "", invalid, "http://auth:8000/check")
    except InvalidLabel as error:
        raise Unsupported(mw.label("address"), address, error.problem.message) from None
    signin = mw.value("authsigninurl").strip()
    if signin:
        try:
            check_url(signin, "", invalid_label(mw.label("authsigninurl"), signin),
                      "https://auth.example.com/login")  # fmt: skip
        except InvalidLabel as error:
            raise Unsupported(mw.label("authsigninurl"), signin, error.problem.message) from None
    response = _header_names(mw, "authresponseheaders")
    request = _header_names(mw, "authrequestheaders")
    trust = flag(mw, "trustforwardheader") if mw.value("trustforwardheader").strip() else None
    options = ForwardAuthOptions(response, request, flag(mw, "preserverequestmethod"),
                                 flag(mw, "preservelocationheader"), signin, limit,
                                 trust, forwards_body, body_limit)  # fmt: skip
    route = replace(route, auth_url=address, auth_options=options)
    tls = _auth_server_tls(mw, context)
    if tls is not None:
        if not address.lower().startswith("https://"):
            raise Unsupported(mw.label("tls.ca"), mw.value("tls.ca"), "forwardAuth's tls "
                              "options are for an https address")  # fmt: skip
        route = replace(route, client_tls=replace(route.client_tls, auth_server=tls))
    return route


def _answered_before(route: Route) -> list[str]:
    """The middlewares applied so far that answer or refuse a request: with forwardBody, njs
    asks the auth server before any of them (edge/njs.py, body_reading_location)."""
    phase = route.rewrite_phase
    return [*access_checks_applied(route), *(name for name, there in (
        ("headers (CORS)", route.cors is not None),
        ("headers (allowedHosts)", phase.allowed_hosts is not None),
        ("redirectScheme", phase.scheme_redirect is not None),
        ("redirectRegex", phase.redirect_regex is not None),
        ("circuitBreaker", route.circuit_breaker is not None),
    ) if there)]  # fmt: skip


def _auth_server_tls(mw: Middleware, context: Context) -> AuthServerTls | None:
    """Traefik's ClientTLS for the auth server: `ca`, `cert` and `key` from Swarm secrets
    (mounted into the edge), `insecureSkipVerify`; `caOptional` changes nothing, as in
    Traefik (deprecated there: client auth is a server's option)."""
    if not any(key.startswith("tls.") for key in mw.fields):
        return None
    secrets = {
        key: mounted_secret(mw, context, f"tls.{key}", what,
                            f"create a Swarm secret from it and set tls.{key}=/run/secrets/"
                            "<its name>") if mw.value(f"tls.{key}") else ""
        for key, what in _TLS_FILES.items()
    }  # fmt: skip
    if bool(secrets["cert"]) != bool(secrets["key"]):
        given = "tls.cert" if secrets["cert"] else "tls.key"
        raise Unsupported(mw.label(given), mw.value(given), "forwardAuth's tls.cert and tls.key "
                          "go together (Traefik refuses one alone): set both")  # fmt: skip
    verify = not flag(mw, "tls.insecureskipverify")
    return AuthServerTls(secrets["ca"], secrets["cert"], secrets["key"], verify)


def _byte_limit(mw: Middleware, key: str, name: str) -> int | None:
    """maxResponseBodySize or maxBodySize: the bytes of the auth answer's or the request's body
    Traefik reads at most (a negative number, as its default -1: no limit)."""
    given = mw.value(key).strip()
    if not given:
        return None
    if not re.fullmatch(r"[+-]?[0-9]{1,18}", given):
        raise Unsupported(mw.label(key), given, f"forwardAuth's {name} must be a whole number "
                          "of bytes (-1: no limit)")  # fmt: skip
    limit = int(given)
    return limit if limit >= 0 else None


def _header_names(mw: Middleware, key: str) -> tuple[str, ...]:
    names = tuple(h.strip() for h in mw.value(key).split(",") if h.strip())
    if not all(HEADER_NAME_RE.match(name) for name in names):
        raise Unsupported(mw.label(key), mw.value(key), "must be header names, comma-separated")
    return names
