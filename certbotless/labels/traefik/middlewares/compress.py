"""compress: answers are gzipped (`compress=true`), from `minResponseBodyBytes` bytes on
(Traefik's default 1024: nginx's gzip_min_length), as Traefik picks: not for HEAD, nor for a
request whose Content-Type is application/grpc, and with `Vary: Accept-Encoding` whenever the
client's Accept-Encoding picks one of `encodings` (edge/shaping.py). What nginx cannot do is
said on the route: nginx compresses answers of status 200, 403 and 404 only, and with gzip
only (its brotli and zstd are no modules of nginx:stable nor nginx-light).
`includedContentTypes` is nginx's gzip_types (which always has text/html: said when it is not
listed); `excludedContentTypes` turns gzip off for requests of those types, as Traefik does, but
answers of those types are still gzipped (said)."""

from __future__ import annotations

import re
from dataclasses import replace

from certbotless.labels.traefik.middlewares.options import (
    Context,
    Middleware,
    Unsupported,
    known_fields,
)
from certbotless.model import GRPC_TYPES, Route

TRAEFIK_MIN_BYTES = 1024  # Traefik's defaultMinSize
TRAEFIK_ENCODINGS = "gzip,br,zstd"  # Traefik's default, in its order of preference
_KNOWN_ENCODINGS = {"gzip", "br", "zstd"}
STATUSES_SAID = ("nginx compresses answers of status 200, 403 and 404 only: an answer of "
                 "another status (201…) is sent uncompressed, where Traefik compresses any "
                 "status")  # fmt: skip


# mime.ParseMediaType's media type: a type and subtype of token characters, lower-cased
# (Of the token characters, those that could mean something in nginx's syntax are left out.)
_MEDIA_TYPE = re.compile(r"[a-z0-9!#&^_.+-]+/[a-z0-9!#&^_.+-]+")
EXCLUDED_SAID = ("excludedContentTypes is applied to the request's Content-Type only: an answer "
                 "of an excluded type is still gzipped (nginx's gzip_types cannot leave types "
                 "out of all), where Traefik sends it uncompressed")  # fmt: skip
HTML_SAID = ("text/html answers are gzipped as well: nginx's gzip_types always has text/html, "
             "where Traefik compresses the listed types only")  # fmt: skip


def apply(route: Route, mw: Middleware, context: Context) -> Route:
    known_fields(mw, {"", "minresponsebodybytes", "encodings", "excludedcontenttypes",
                      "includedcontenttypes"})  # fmt: skip
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
    excluded, included = (
        _media_types(mw, "excludedcontenttypes"),
        _media_types(mw, "includedcontenttypes"),
    )
    if excluded and included:
        raise Unsupported(mw.label("excludedcontenttypes"), mw.value("excludedcontenttypes"),
                          "Traefik refuses excludedContentTypes beside includedContentTypes "
                          "(they are mutually exclusive): keep one")  # fmt: skip
    if excluded:
        context.note(mw.label("excludedcontenttypes"), mw.value("excludedcontenttypes"),
                     EXCLUDED_SAID, situational=True)  # fmt: skip
    if included and "text/html" not in included:
        context.note(mw.label("includedcontenttypes"), mw.value("includedcontenttypes"),
                     HTML_SAID, situational=True)  # fmt: skip
    # Traefik: 0 (or none) is its default.
    least = int(minimum) or TRAEFIK_MIN_BYTES
    skipped = tuple(dict.fromkeys((*GRPC_TYPES, *excluded)))
    return replace(route, compress=True, compress_min_bytes=least,
                   compress_encodings=tuple(dict.fromkeys(encodings)), compress_types=included,
                   compress_skipped_types=skipped)  # fmt: skip


def _media_types(mw: Middleware, key: str) -> tuple[str, ...]:
    """The media types of a list, as mime.ParseMediaType reads each (parameters dropped)."""
    found = []
    for item in mw.value(key).split(","):
        media_type = item.split(";", 1)[0].strip().lower()
        if not item.strip():
            continue
        if not _MEDIA_TYPE.fullmatch(media_type):
            raise Unsupported(mw.label(key), mw.value(key), f"{item.strip()!r} is not a media "
                              "type (type/subtype, e.g. text/event-stream)")  # fmt: skip
        found.append(media_type)
    return tuple(dict.fromkeys(found))


def _gzip_only(others: list[str]) -> str:
    names = " or ".join(others)
    return (f"nginx compresses with gzip only (no {names} module in nginx:stable nor "
            f"nginx-light): a client that prefers {names} gets gzip, or an uncompressed answer "
            f"when it does not accept gzip, where Traefik answers {names}")  # fmt: skip
