"""retry: `attempts` → how many times in all (the first included, as Traefik counts) a request
is tried on the service's addresses after a connection error."""

from __future__ import annotations

import re
from dataclasses import replace

from certbotless.labels.traefik.middlewares.options import (
    Context,
    Middleware,
    Unsupported,
    known_fields,
)
from certbotless.model import Route


def apply(route: Route, mw: Middleware, context: Context) -> Route:
    # initialInterval (Traefik's wait before the next try) is read and not waited: nginx tries
    # the next address at once, and the answer is the same (docs/traefik-labels.md).
    known_fields(mw, {"attempts", "initialinterval"})
    attempts = mw.value("attempts")
    if not re.fullmatch(r"[0-9]{1,2}", attempts) or int(attempts) < 1:
        raise Unsupported(mw.label("attempts"), attempts, "must be a whole number from 1 to 99")
    return replace(route, retries=int(attempts))
