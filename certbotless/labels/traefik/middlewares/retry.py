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
    known_fields(mw, {"attempts", "initialinterval"})
    attempts = mw.value("attempts")
    if not re.fullmatch(r"[0-9]{1,2}", attempts) or int(attempts) < 1:
        raise Unsupported(mw.label("attempts"), attempts, "must be a whole number from 1 to 99")
    interval = mw.value("initialinterval").strip()
    if interval and not re.fullmatch(r"0+(?:\.0+)?(?:ns|us|µs|ms|s|m|h)?", interval):
        context.note(mw.label("initialinterval"), interval, "retry.initialInterval is not "
                     "waited: nginx tries the service's next address at once (open-source "
                     "nginx has no back-off between tries); the answer is the same, only "
                     "sooner")  # fmt: skip
    return replace(route, retries=int(attempts))
