"""inFlightReq: at most `amount` requests in flight per client address."""

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
    known_fields(mw, {"amount", "sourcecriterion.ipstrategy.depth"})
    if mw.value("sourcecriterion.ipstrategy.depth", "0") != "0":
        raise Unsupported(mw.label("sourcecriterion.ipstrategy.depth"),
                          mw.value("sourcecriterion.ipstrategy.depth"),
                          "the edge counts by the client's address, not "
                          "X-Forwarded-For")  # fmt: skip
    amount = mw.value("amount")
    if not re.fullmatch(r"[0-9]{1,6}", amount) or int(amount) < 1:
        raise Unsupported(mw.label("amount"), amount, "must be a whole number from 1")
    return replace(route, max_connections=int(amount))
