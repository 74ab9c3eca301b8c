"""redirectScheme: plain HTTP → HTTPS, as Traefik's redirect answers: 302 for GET and 307 for
other methods, or 301 and 308 with `permanent`, 308 for all with `forcePermanentRedirect`; to
`port` (443 unless given)."""

from __future__ import annotations

import re
from dataclasses import replace

from certbotless.labels.traefik.middlewares.options import (
    Context,
    Middleware,
    Unsupported,
    flag,
    known_fields,
)
from certbotless.model import Route

TEMPORARY = (302, 307)  # for GET, for other methods (HEAD included)
PERMANENT = (301, 308)


def apply(route: Route, mw: Middleware, context: Context) -> Route:
    return with_redirect(replace(route, redirect_to_https=True), mw)


def with_redirect(route: Route, mw: Middleware) -> Route:
    """`route`'s plain-HTTP redirect made the one `mw` (a redirectScheme) answers."""
    known_fields(mw, {"scheme", "permanent", "port", "forcepermanentredirect"})
    if mw.value("scheme").lower() != "https":
        raise Unsupported(mw.label("scheme"), mw.value("scheme"), "only redirects to https "
                          "are supported")  # fmt: skip
    port = mw.value("port", "443") or "443"
    if not re.fullmatch(r"[0-9]{1,5}", port) or not 1 <= int(port) <= 65535:
        raise Unsupported(mw.label("port"), port, "must be a port number from 1 to 65535")
    statuses = PERMANENT if flag(mw, "permanent") else TEMPORARY
    if flag(mw, "forcepermanentredirect"):
        statuses = (308, 308)
    return replace(route, redirect_statuses=statuses, redirect_port=int(port))
