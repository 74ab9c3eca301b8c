"""Compression: nginx's gzip, and for Traefik's compress middleware what Traefik does beside
it (pkg/middlewares/compress): nothing for a HEAD request nor for one whose Content-Type is
application/grpc, and `Vary: Accept-Encoding` on the answer whenever the client's
Accept-Encoding picks one of the middleware's encodings (gzhttp adds it before it knows
whether it compresses). gzip takes no variables: it is turned off in an `if` of the route's
location, which nginx applies only when it is the last `if` to match, so that `if` stands
last in the rewrite phase and before each `rewrite … break` (which ends the phase)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from certbotless.model import GRPC_TYPES, Route

_GZIP_TYPES = (
    "text/plain text/css text/xml application/json application/javascript application/xml "
    "image/svg+xml"
)
# 1 where Traefik's compress steps aside: a HEAD request, or one whose media type is gRPC's or
# one of excludedContentTypes (mime.ParseMediaType: case and spaces do not count, parameters
# may follow); one map per list of types.
SKIPPED = "$certbotless_compress_skipped"


# One item of an Accept-Encoding that Traefik accepts (parseAcceptableEncodings: spaces do not
# count; the weight is 1 without `q=`, and a `q=` that is no number or zero drops the item).
_WEIGHT = "[+-]?(?=[0-9.]*[1-9])[0-9]*\\.?[0-9]*(?:[eE][+-]?[0-9]+)?"
_ITEM = "\\s*(?:{names})\\s*(?:;\\s*(?!q\\s*=)[^,]*|;\\s*q\\s*=\\s*" + _WEIGHT + "\\s*)?(?:,|$)"


def compression_directives(route: Route) -> str:
    if not route.compress:
        return ""
    lines = ["gzip on;", "gzip_proxied any;"]
    if route.compress_min_bytes is None:
        lines.append(f"gzip_types {_GZIP_TYPES};")
    else:  # Traefik's compress: answers of any type (none sniffed) or those listed, from a size
        lines += [f"gzip_types {' '.join(route.compress_types) or '*'};",
                  f"gzip_min_length {route.compress_min_bytes};"]  # fmt: skip
    return "".join(f"\n            {line}" for line in lines)


def with_traefik_skips(route: Route, directives: str) -> str:
    """The location's `directives` with gzip turned off where Traefik's compress steps aside:
    the `if` before each `rewrite … break` and at the end."""
    if not route.compress_encodings:
        return directives
    skip = f"if ({_skipped_variable(_skipped_types(route))}) {{ gzip off; }}"
    indent = "\n            "
    ended = re.sub(r"(\n[ ]*)(rewrite [^\n]* break;)", rf"\1{skip}\1\2", directives)
    return ended + indent + skip


def vary_variable(route: Route) -> str:
    return _vary_variable(route.compress_encodings, _skipped_types(route))


def vary_directives(route: Route) -> list[str]:
    """Traefik's `Vary: Accept-Encoding`, unless the service's answer names it already."""
    if not route.compress_encodings:
        return []
    return [f"add_header Vary {vary_variable(route)} always;"]


def compress_maps(routes: Iterable[Route]) -> str:
    """The maps Traefik's compress reads: for each list of skipped types, whether the request
    is skipped; for each list of encodings with it, whether the Accept-Encoding picks one of
    them (or `*`, Traefik's first)."""
    kinds = sorted({(r.compress_encodings, _skipped_types(r)) for r in routes
                    if r.compress_encodings})  # fmt: skip
    maps = [_skipped_map(types) for types in sorted({types for _, types in kinds})]
    for encodings, types in kinds:
        names = "|".join([*encodings, "\\*"])
        key = f"{_skipped_variable(types)}:$upstream_http_vary:$http_accept_encoding"
        maps.append(f"""
    map "{key}" {_vary_variable(encodings, types)} {{
        default "";
        ~^1: "";
        "~^0:[^:]*(?i:accept-encoding)" "";
        "~^0:[^:]*:(?:.*,)?{_ITEM.format(names=names)}" Accept-Encoding;
    }}""")  # fmt: skip
    return "".join(maps)


def _skipped_types(route: Route) -> tuple[str, ...]:
    return route.compress_skipped_types or GRPC_TYPES


def _skipped_variable(types: tuple[str, ...]) -> str:
    if types == GRPC_TYPES:
        return SKIPPED
    return f"{SKIPPED}_{hashlib.sha256(' '.join(types).encode()).hexdigest()[:8]}"


def _vary_variable(encodings: tuple[str, ...], types: tuple[str, ...]) -> str:
    suffix = _skipped_variable(types).removeprefix(SKIPPED)  # "" for GRPC_TYPES alone
    return f"$certbotless_compress_vary_{'_'.join(encodings)}{suffix}"


def _skipped_map(types: tuple[str, ...]) -> str:
    lines = "".join(f'\n        "~*^[^:]*:\\s*{re.escape(t)}\\s*(?:;|$)" 1;' for t in types)
    return f"""
    map "$request_method:$content_type" {_skipped_variable(types)} {{
        default 0;
        ~^HEAD: 1;{lines}
    }}"""
