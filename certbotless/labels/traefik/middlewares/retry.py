"""retry: `attempts` → how many times in all (the first included, as Traefik counts) a request
is tried on the service's addresses after a connection error; `status` also on those answers
(nginx's proxy_next_upstream knows 500, 502, 503, 504, 403, 404 and 429), for idempotent
methods unless `retryNonIdempotentMethod`, as Traefik; `disableRetryOnNetworkError` only on
them; `timeout` stops the tries (proxy_next_upstream_timeout)."""

from __future__ import annotations

import re
from dataclasses import replace

from certbotless.labels.traefik.middlewares.options import (
    Context,
    Middleware,
    Unsupported,
    flag,
    invalid_label,
    known_fields,
)
from certbotless.labels.values import check_timeout
from certbotless.model import Route

NGINX_STATUSES = frozenset({500, 502, 503, 504, 403, 404, 429})  # proxy_next_upstream's http_*


def apply(route: Route, mw: Middleware, context: Context) -> Route:
    known_fields(mw, {"attempts", "initialinterval", "status", "disableretryonnetworkerror",
                      "retrynonidempotentmethod", "timeout", "maxrequestbodybytes"})  # fmt: skip
    attempts = mw.value("attempts")
    if not re.fullmatch(r"[0-9]{1,2}", attempts) or int(attempts) < 1:
        raise Unsupported(mw.label("attempts"), attempts, "must be a whole number from 1 to 99")
    interval = mw.value("initialinterval").strip()
    if interval and not re.fullmatch(r"0+(?:\.0+)?(?:ns|us|µs|ms|s|m|h)?", interval):
        context.note(mw.label("initialinterval"), interval, "retry.initialInterval is not "
                     "waited: nginx tries the service's next address at once (open-source "
                     "nginx has no back-off between tries); the answer is the same, only "
                     "sooner")  # fmt: skip
    statuses = _statuses(mw)
    if statuses and mw.value("maxrequestbodybytes").strip() != "-1":
        context.note(mw.label("status"), mw.value("status"), "a request whose body is over "
                     "retry.maxRequestBodyBytes (2 MB unless set) is retried on these "
                     "statuses too: nginx keeps any body for a retry")  # fmt: skip
    conditions = [] if flag(mw, "disableretryonnetworkerror") else ["error", "timeout"]
    if not conditions and not statuses:
        raise Unsupported(mw.label("disableretryonnetworkerror"), "true", "without status, "
                          "Traefik refuses the middleware (it would retry nothing): list "
                          "statuses or retry on network errors")  # fmt: skip
    conditions += [f"http_{code}" for code in sorted(statuses)]
    if flag(mw, "retrynonidempotentmethod"):
        conditions.append("non_idempotent")
    return replace(route, retries=int(attempts), retry_on=" ".join(conditions),
                   retry_timeout=_timeout(mw))  # fmt: skip


def _statuses(mw: Middleware) -> set[int]:
    """Traefik's status list: codes and ranges (`500-599`), each one nginx can retry on."""
    codes: set[int] = set()
    for part in (p.strip() for p in mw.value("status").split(",") if p.strip()):
        bounds = re.fullmatch(r"([0-9]{3})(?:-([0-9]{3}))?", part)
        if not bounds:
            raise Unsupported(mw.label("status"), part, "must be a status or a range (500-504)")
        codes |= set(range(int(bounds[1]), int(bounds[2] or bounds[1]) + 1))
    if codes - NGINX_STATUSES:
        raise Unsupported(mw.label("status"), mw.value("status"), "nginx retries on the "
                          "statuses 403, 404, 429, 500, 502, 503 and 504 only, not "
                          f"{min(codes - NGINX_STATUSES)}: list those it should retry on, "
                          "e.g. 502,503,504")  # fmt: skip
    return codes


def _timeout(mw: Middleware) -> str | None:
    given = mw.value("timeout").strip()
    if not given or re.fullmatch(r"0+(?:ms|s|m|h)?", given):
        return None  # Traefik: no limit
    check_timeout(given, mw.label("timeout"), invalid_label(mw.label("timeout"), given))
    return given
