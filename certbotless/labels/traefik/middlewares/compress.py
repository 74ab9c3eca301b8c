"""compress: answers are compressed (`compress=true`, no options)."""

from __future__ import annotations

from dataclasses import replace

from certbotless.labels.traefik.middlewares.options import Context, Middleware, known_fields
from certbotless.model import Route


def apply(route: Route, mw: Middleware, context: Context) -> Route:
    known_fields(mw, {""})  # `compress=true`: no options
    return replace(route, compress=True)
