"""addPrefix: `prefix` is put before the path before it reaches the service (after a
stripPrefix(Regex) before it, as the rest of what it strips)."""

from __future__ import annotations

from dataclasses import replace

from certbotless.labels.traefik.middlewares.options import (
    Context,
    Middleware,
    Unsupported,
    invalid_label,
    known_fields,
)
from certbotless.labels.traefik.middlewares.path_changes import not_after_replace
from certbotless.labels.values import check_path
from certbotless.model import Route


def apply(route: Route, mw: Middleware, context: Context) -> Route:
    known_fields(mw, {"prefix"})
    prefix = mw.value("prefix")
    if prefix and not prefix.startswith("/"):
        prefix = "/" + prefix  # Traefik gives the path its leading `/` after the prefix
    check_path(prefix, mw.label("prefix"), invalid_label(mw.label("prefix"), prefix))
    strip = route.rewrite_phase.strip_prefix_regex
    if strip is not None and route.replace_path is None:
        if strip.add_prefix:
            raise Unsupported(mw.label("prefix"), prefix, "a second addPrefix after a strip "
                              "is not supported: write the prefixes as one")  # fmt: skip
        added = replace(strip, add_prefix=prefix.rstrip("/"))
        return replace(route, rewrite_phase=replace(route.rewrite_phase,
                                                    strip_prefix_regex=added))  # fmt: skip
    not_after_replace(route, mw)
    return replace(route, add_prefix=prefix.rstrip("/"))
