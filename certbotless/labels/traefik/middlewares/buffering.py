"""buffering: `maxRequestBodyBytes` → the route's largest request body (larger: 413), and
`memRequestBodyBytes` → how much of a body is kept in memory before the rest goes to a
temporary file (nginx's client_body_buffer_size, the same split); `memResponseBodyBytes` →
how much of an answer is kept in memory, the rest in a temporary file (nginx's proxy_buffers,
in whole 4 KiB pages, at least four: nothing a client sees). The other answer options are
reported and the rest applied: nginx cannot refuse an answer by its size, and retries by no
expression."""

from __future__ import annotations

from dataclasses import replace

from certbotless.labels.traefik.middlewares.forward_auth import BODY_LIMITS_TOGETHER
from certbotless.labels.traefik.middlewares.options import (
    Context,
    Middleware,
    Unsupported,
    known_fields,
)
from certbotless.model import Route

# Options nginx cannot honour: why, and the closest alternative.
_NOTED = {
    "maxresponsebodybytes": "buffering.maxResponseBodyBytes is not applied: nginx passes an "
    "answer of any size on (it has no limit that fails it with 500); limit it in the service",
    "retryexpression": "buffering.retryExpression is not applied: nginx evaluates no "
    "expression; use a retry middleware (attempts), which retries on connection errors",
}


def apply(route: Route, mw: Middleware, context: Context) -> Route:
    known_fields(mw, {"maxrequestbodybytes", "memrequestbodybytes", "memresponsebodybytes",
                      *_NOTED})  # fmt: skip
    for key, why in _NOTED.items():
        if key in mw.fields:
            context.note(mw.label(key), mw.value(key), why)
    value, memory = mw.value("maxrequestbodybytes"), mw.value("memrequestbodybytes")
    answer = mw.value("memresponsebodybytes")
    for key, given in (("maxrequestbodybytes", value), ("memrequestbodybytes", memory),
                       ("memresponsebodybytes", answer)):  # fmt: skip
        if given and (not given.isascii() or not given.isdigit() or len(given) > 12):
            raise Unsupported(mw.label(key), given, "must be a number of bytes")
    if memory and int(memory):
        route = replace(route, body_buffer_size=int(memory))
    if answer and int(answer):
        route = replace(route, upstream=replace(route.upstream, answer_memory=int(answer)))
    if not value:
        return route
    if route.auth_options.max_request_body is not None:
        raise Unsupported(mw.label("maxrequestbodybytes"), value, BODY_LIMITS_TOGETHER)
    return replace(route, max_body_size=value if int(value) else "0")
