"""replacePath: the service is sent `path` whatever the request's."""

from __future__ import annotations

from certbotless.labels.traefik.middlewares.options import (
    Context,
    Middleware,
    Unsupported,
    invalid_label,
    known_fields,
)
from certbotless.labels.traefik.middlewares.path_changes import with_replacement
from certbotless.labels.values import check_path
from certbotless.model import Route


def apply(route: Route, mw: Middleware, context: Context) -> Route:
    known_fields(mw, {"path"})
    path = mw.value("path")
    check_path(path, mw.label("path"), invalid_label(mw.label("path"), path))
    if "%" in path:
        raise Unsupported(mw.label("path"), path, "a percent-encoded path: nginx would escape "
                          "the % again (%2F reaches the service as %252F); write the "
                          "characters themselves")  # fmt: skip
    return with_replacement(route, mw, ("^.*$", path))
