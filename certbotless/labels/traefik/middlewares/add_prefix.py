"""addPrefix: `prefix` is put before the path before it reaches the service."""

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
    known_fields(mw, {"prefix"})
    not_after_replace(route, mw)
    prefix = mw.value("prefix")
    check_path(prefix, mw.label("prefix"), invalid_label(mw.label("prefix"), prefix))
    return replace(route, add_prefix=prefix.rstrip("/"))
