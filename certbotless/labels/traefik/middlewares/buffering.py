"""buffering: `maxRequestBodyBytes` → the route's largest request body."""

from __future__ import annotations

from dataclasses import replace

from certbotless.labels.traefik.middlewares.options import (
    Context,
    Middleware,
    Unsupported,
    known_fields,
)
from certbotless.model import Route


def apply(route: Route, mw: Middleware, context: Context) -> Route:
    known_fields(mw, {"maxrequestbodybytes", "memrequestbodybytes"})
    value = mw.value("maxrequestbodybytes")
    if not value:
        return route
    if not value.isascii() or not value.isdigit() or len(value) > 12:
        raise Unsupported(mw.label("maxrequestbodybytes"), value, "must be a number of bytes")
    return replace(route, max_body_size=value if int(value) else "0")
