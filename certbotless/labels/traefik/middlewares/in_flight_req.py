"""inFlightReq: at most `amount` requests in flight per client address (or per what
`sourceCriterion` says, source_criterion.py)."""

from __future__ import annotations

import re
from dataclasses import replace

from certbotless.labels.traefik.middlewares.options import (
    Context,
    Middleware,
    Unsupported,
    known_fields,
)
from certbotless.labels.traefik.middlewares.source_criterion import FIELDS, limit_key
from certbotless.model import Route


def apply(route: Route, mw: Middleware, context: Context) -> Route:
    known_fields(mw, {"amount", *FIELDS})
    key = limit_key(mw)
    amount = mw.value("amount")
    if not re.fullmatch(r"[0-9]{1,6}", amount) or int(amount) < 1:
        raise Unsupported(mw.label("amount"), amount, "must be a whole number from 1")
    return replace(route, max_connections=int(amount), connection_key=key)
