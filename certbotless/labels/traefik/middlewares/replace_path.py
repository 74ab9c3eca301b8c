"""replacePath: the service is sent `path` whatever the request's, as written (Traefik's
RawPath: `%2F` stays escaped)."""

from __future__ import annotations

import re

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
    if re.search(r"%(?![0-9A-Fa-f]{2})", path):
        raise Unsupported(mw.label("path"), path, "a % that starts no escape (%XX): Traefik "
                          "cannot unescape it either; escape it as %25")  # fmt: skip
    return with_replacement(route, mw, ("^.*$", path))
