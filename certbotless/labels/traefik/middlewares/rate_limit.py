"""rateLimit: `average` requests per `period` with `burst` → requests per minute per client."""

from __future__ import annotations

import re
from dataclasses import replace

from certbotless.labels.traefik.middlewares.options import (
    Context,
    Middleware,
    Unsupported,
    known_fields,
)
from certbotless.model import RateLimit, Route

_DURATION_RE = re.compile(r"^([0-9]{1,6})(ms|s|m|h)?$", re.ASCII)
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


def apply(route: Route, mw: Middleware, context: Context) -> Route:
    known_fields(mw, {"average", "period", "burst"})
    average, burst = mw.value("average", "0"), mw.value("burst", "1")
    period = _DURATION_RE.match(mw.value("period", "1s"))
    if not (
        average.isascii()
        and average.isdigit()
        and burst.isascii()
        and burst.isdigit()
        and period
        and 0 < int(average) <= 1_000_000
        and int(burst) <= 100_000
    ):
        raise Unsupported(mw.label("average"), average, "average, burst and period must be "
                          "whole numbers (period like 1s or 1m)")  # fmt: skip
    seconds = int(period.group(1)) * _SECONDS[period.group(2) or "s"]
    per_minute = max(1, round(int(average) * 60 / seconds)) if seconds else int(average) * 60
    return replace(route, rate_limit=RateLimit(per_minute, max(int(burst), 1)))
