"""rateLimit: `average` requests per `period` with `burst` → requests per minute per client.

Traefik's token bucket holds `burst` requests (at least 1) and starts full, so `burst`
requests pass at once; nginx's `burst=N nodelay` lets N more through than the first, so the
edge's burst is Traefik's minus one. `average=0` is no limit in Traefik. `sourceCriterion`
says what is counted per (source_criterion.py)."""

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
from certbotless.model import RateLimit, Route

_DURATION_RE = re.compile(r"^([0-9]{1,6})(ms|s|m|h)?$", re.ASCII)
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


def apply(route: Route, mw: Middleware, context: Context) -> Route:
    known_fields(mw, {"average", "period", "burst", *FIELDS})
    key = limit_key(mw)
    average, burst = mw.value("average", "0") or "0", mw.value("burst", "1") or "1"
    period = _DURATION_RE.match(mw.value("period", "1s"))
    if not (
        average.isascii()
        and average.isdigit()
        and burst.isascii()
        and burst.isdigit()
        and period
        and int(average) <= 1_000_000
        and int(burst) <= 100_000
    ):
        raise Unsupported(mw.label("average"), average, "average, burst and period must be "
                          "whole numbers (period like 1s or 1m)")  # fmt: skip
    if int(average) == 0:
        return route  # Traefik: no limit
    seconds = int(period.group(1)) * _SECONDS[period.group(2) or "s"] or 1  # 0: a second
    per_minute = int(average) * 60 / seconds
    if per_minute < 1 or per_minute != int(per_minute):
        raise Unsupported(mw.label("average"), average, f"{average} per "
                          f"{mw.value('period', '1s')} is {per_minute:g} a minute; nginx "
                          "counts whole requests a minute (at least 1): set average and "
                          "period to a whole number a minute, e.g. period=1m")  # fmt: skip
    return replace(route, rate_limit=RateLimit(int(per_minute), max(int(burst), 1) - 1, key))
