"""redirectScheme: plain HTTP → HTTPS on port 443, the only redirect the edge makes."""

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
    known_fields(mw, {"scheme", "permanent", "port"})
    if mw.value("scheme").lower() != "https" or mw.value("port") not in ("", "443"):
        raise Unsupported(mw.label("scheme"), mw.value("scheme"), "only redirects to https "
                          "on port 443 are supported")  # fmt: skip
    return replace(route, redirect_to_https=True)
