"""buffering: `maxRequestBodyBytes` → the route's largest request body (larger: 413), and
`memRequestBodyBytes` → how much of a body is kept in memory before the rest goes to a
temporary file (nginx's client_body_buffer_size, the same split)."""

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
    value, memory = mw.value("maxrequestbodybytes"), mw.value("memrequestbodybytes")
    for key, given in (("maxrequestbodybytes", value), ("memrequestbodybytes", memory)):
        if given and (not given.isascii() or not given.isdigit() or len(given) > 12):
            raise Unsupported(mw.label(key), given, "must be a number of bytes")
    if memory and int(memory):
        route = replace(route, body_buffer_size=int(memory))
    if not value:
        return route
    return replace(route, max_body_size=value if int(value) else "0")
