"""compress: answers are gzipped (`compress=true`), from `minResponseBodyBytes` bytes on
(Traefik's default 1024: nginx's gzip_min_length). `encodings` must include gzip, the one
encoding nginx-light has: Traefik would pick brotli or zstd for a client that prefers them."""

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
_KNOWN_ENCODINGS = {"gzip", "br", "zstd"}


def apply(route: Route, mw: Middleware, context: Context) -> Route:
    known_fields(mw, {"", "minresponsebodybytes", "encodings"})
    minimum = mw.value("minresponsebodybytes").strip() or "0"
    if not re.fullmatch(r"[0-9]{1,10}", minimum):
        raise Unsupported(mw.label("minresponsebodybytes"), minimum, "must be bytes")
    encodings = [e.strip() for e in mw.value("encodings", "gzip").split(",") if e.strip()]
    unknown = [e for e in encodings if e not in _KNOWN_ENCODINGS]
    if unknown or not encodings:
        raise Unsupported(mw.label("encodings"), mw.value("encodings"), "Traefik knows the "
                          "encodings gzip, br and zstd only")  # fmt: skip
    if "gzip" not in encodings:
        raise Unsupported(mw.label("encodings"), mw.value("encodings"), "nginx compresses "
                          "with gzip only (brotli and zstd are no modules of nginx-light): "
                          "add gzip to encodings")  # fmt: skip
    # Traefik: 0 (or none) is its default.
    least = int(minimum) or TRAEFIK_MIN_BYTES
    return replace(route, compress=True, compress_min_bytes=least)
