"""compress: answers are gzipped (`compress=true`), from `minResponseBodyBytes` bytes on
(Traefik's default 1024: nginx's gzip_min_length), as Traefik picks: not for HEAD, nor for a
request whose Content-Type is application/grpc, and with `Vary: Accept-Encoding` whenever the
client's Accept-Encoding picks one of `encodings` (edge/shaping.py). What nginx cannot do is
said on the route: nginx compresses answers of status 200, 403 and 404 only, and with gzip
only (its brotli and zstd are no modules of nginx:stable nor nginx-light)."""

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

TRAEFIK_MIN_BYTES = 1024  # Traefik's defaultMinSize
TRAEFIK_ENCODINGS = "gzip,br,zstd"  # Traefik's default, in its order of preference
_KNOWN_ENCODINGS = {"gzip", "br", "zstd"}
STATUSES_SAID = ("nginx compresses answers of status 200, 403 and 404 only: an answer of "
                 "another status (201…) is sent uncompressed, where Traefik compresses any "
                 "status")  # fmt: skip


def apply(route: Route, mw: Middleware, context: Context) -> Route:
    known_fields(mw, {"", "minresponsebodybytes", "encodings"})
    minimum = mw.value("minresponsebodybytes").strip() or "0"
    if not re.fullmatch(r"[0-9]{1,10}", minimum):
        raise Unsupported(mw.label("minresponsebodybytes"), minimum, "must be bytes")
    asked = mw.value("encodings", TRAEFIK_ENCODINGS)
    encodings = [e.strip() for e in asked.split(",") if e.strip()]
    unknown = [e for e in encodings if e not in _KNOWN_ENCODINGS]
    if unknown or not encodings:
        raise Unsupported(mw.label("encodings"), mw.value("encodings"), "Traefik knows the "
                          "encodings gzip, br and zstd only")  # fmt: skip
    if "gzip" not in encodings:
        raise Unsupported(mw.label("encodings"), mw.value("encodings"), "nginx compresses "
                          "with gzip only (brotli and zstd are no modules of nginx:stable "
                          "nor nginx-light): add gzip to encodings")  # fmt: skip
    context.note(mw.label(), mw.name, STATUSES_SAID, situational=True)
    others = [e for e in encodings if e != "gzip"]
    if others:
        context.note(mw.label("encodings"), ",".join(encodings), _gzip_only(others),
                     situational=True)  # fmt: skip
    # Traefik: 0 (or none) is its default.
    least = int(minimum) or TRAEFIK_MIN_BYTES
    return replace(route, compress=True, compress_min_bytes=least,
                   compress_encodings=tuple(dict.fromkeys(encodings)))  # fmt: skip


def _gzip_only(others: list[str]) -> str:
    names = " or ".join(others)
    return (f"nginx compresses with gzip only (no {names} module in nginx:stable nor "
            f"nginx-light): a client that prefers {names} gets gzip, or an uncompressed answer "
            f"when it does not accept gzip, where Traefik answers {names}")  # fmt: skip
