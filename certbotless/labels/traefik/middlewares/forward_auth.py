"""forwardAuth: each request is first asked of `address`; its `authResponseHeaders` are passed
on to the service."""

from __future__ import annotations

from dataclasses import replace

from certbotless.labels.traefik.middlewares.options import (
    Context,
    Middleware,
    Unsupported,
    invalid_label,
    known_fields,
)
from certbotless.labels.values import HEADER_NAME_RE, InvalidLabel, check_url
from certbotless.model import Route


def apply(route: Route, mw: Middleware, context: Context) -> Route:
    known_fields(mw, {"address", "trustforwardheader", "authresponseheaders",
                      "authrequestheaders"})  # fmt: skip
    address = mw.value("address")
    invalid = invalid_label(mw.label("address"), address)
    try:
        check_url(address, "", invalid, "http://auth:8000/check")
    except InvalidLabel as error:
        raise Unsupported(mw.label("address"), address, error.problem.message) from None
    headers = tuple(h.strip() for h in mw.value("authresponseheaders").split(",") if h.strip())
    if not all(HEADER_NAME_RE.match(h) for h in headers):
        raise Unsupported(mw.label("authresponseheaders"), mw.value("authresponseheaders"),
                          "must be header names, comma-separated")  # fmt: skip
    return replace(route, auth_url=address, auth_response_headers=headers)
