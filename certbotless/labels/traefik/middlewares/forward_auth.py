"""forwardAuth: each request is first asked of `address`, with only `authRequestHeaders` of
the client's headers when listed; its `authResponseHeaders` are passed on to the service.
`preserveRequestMethod`: the auth server is asked with the request's method (else GET)."""

from __future__ import annotations

from dataclasses import replace

from certbotless.labels.traefik.middlewares.options import (
    Context,
    Middleware,
    Unsupported,
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
    "forwardBody": "nginx's auth subrequest carries no request body: the auth server decides "
    "from the headers",
    "maxBodySize": "nginx's auth subrequest carries no request body (forwardBody)",
    "tls": "TLS client options for the auth server are not supported: an https address is "
    "verified by nothing and sent no client certificate",
}


def apply(route: Route, mw: Middleware, context: Context) -> Route:
    known_fields(mw, {"address", "trustforwardheader", "authresponseheaders",
                      "authrequestheaders", "preserverequestmethod",
                      *(name.lower() for name in _REFUSED)})  # fmt: skip
    for name, why in _REFUSED.items():
        key = name.lower()
        if key in mw.fields or any(field.startswith(key + ".") for field in mw.fields):
            raise Unsupported(mw.label(key), mw.value(key), f"forwardAuth's {name}: {why}")
    address = mw.value("address")
    invalid = invalid_label(mw.label("address"), address)
    try:
        check_url(address, "", invalid, "http://auth:8000/check")
    except InvalidLabel as error:
        raise Unsupported(mw.label("address"), address, error.problem.message) from None
    response = _header_names(mw, "authresponseheaders")
    request = _header_names(mw, "authrequestheaders")
    return replace(route, auth_url=address, auth_response_headers=response,
                   auth_request_headers=request,
                   auth_keeps_method=flag(mw, "preserverequestmethod"))  # fmt: skip


def _header_names(mw: Middleware, key: str) -> tuple[str, ...]:
    names = tuple(h.strip() for h in mw.value(key).split(",") if h.strip())
    if not all(HEADER_NAME_RE.match(name) for name in names):
        raise Unsupported(mw.label(key), mw.value(key), "must be header names, comma-separated")
    return names
