"""stripPrefix: `prefixes` are taken off the path before it reaches the service."""

from __future__ import annotations

from dataclasses import replace

from certbotless.labels.traefik.middlewares.options import (
    Context,
    Middleware,
    invalid_label,
    known_fields,
)
from certbotless.labels.traefik.middlewares.path_changes import not_after_replace
from certbotless.labels.values import check_path
from certbotless.model import Route


def apply(route: Route, mw: Middleware, context: Context) -> Route:
    known_fields(mw, {"prefixes", "forceslash"})
    not_after_replace(route, mw)
    prefixes = tuple(p.strip() for p in mw.value("prefixes").split(",") if p.strip())
    for prefix in prefixes:
        check_path(prefix, mw.label("prefixes"), invalid_label(mw.label("prefixes"), prefix))
    return replace(route, strip_prefixes=route.strip_prefixes + prefixes)
