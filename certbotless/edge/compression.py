"""Compression: nginx's gzip, and for Traefik's compress middleware what Traefik does beside
it (pkg/middlewares/compress): nothing for a HEAD request nor for one whose Content-Type is
application/grpc, and `Vary: Accept-Encoding` on the answer whenever the client's
Accept-Encoding picks one of the middleware's encodings (gzhttp adds it before it knows
whether it compresses). gzip takes no variables: it is turned off in an `if` of the route's
location, which nginx applies only when it is the last `if` to match, so that `if` stands
last in the rewrite phase and before each `rewrite … break` (which ends the phase)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from certbotless.model import Route

_GZIP_TYPES = (
    "text/plain text/css text/xml application/json application/javascript application/xml "
    "image/svg+xml"
)
# 1 where Traefik's compress steps aside: a HEAD request, or one whose media type is gRPC's
# (mime.ParseMediaType: case and spaces do not count, parameters may follow).
SKIPPED = "$certbotless_compress_skipped"
SKIPPED_MAP = f"""
    map "$request_method:$content_type" {SKIPPED} {{
        default 0;
        ~^HEAD: 1;
        "~*^[^:]*:\\s*application/grpc\\s*(?:;|$)" 1;
    }}"""
_SKIP = f"if ({SKIPPED}) {{ gzip off; }}"
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
    else:  # Traefik's compress: answers of any type (none sniffed), from that many bytes
        lines += ["gzip_types *;", f"gzip_min_length {route.compress_min_bytes};"]
    return "".join(f"\n            {line}" for line in lines)


def with_traefik_skips(route: Route, directives: str) -> str:
    """The location's `directives` with gzip turned off where Traefik's compress steps aside:
    the `if` before each `rewrite … break` and at the end."""
    if not route.compress_encodings:
        return directives
    indent = "\n            "
    ended = re.sub(r"(\n[ ]*)(rewrite [^\n]* break;)", rf"\1{_SKIP}\1\2", directives)
    return ended + indent + _SKIP


def vary_variable(route: Route) -> str:
    return "$certbotless_compress_vary_" + "_".join(route.compress_encodings)


def vary_directives(route: Route) -> list[str]:
    """Traefik's `Vary: Accept-Encoding`, unless the service's answer names it already."""
    if not route.compress_encodings:
        return []
    return [f"add_header Vary {vary_variable(route)} always;"]


def compress_maps(routes: Iterable[Route]) -> str:
    """The maps Traefik's compress reads: SKIPPED, and for each list of encodings whether the
    Accept-Encoding picks one of them (or `*`, Traefik's first)."""
    kinds = sorted({route.compress_encodings for route in routes if route.compress_encodings})
    if not kinds:
        return ""
    maps = [SKIPPED_MAP]
    for encodings in kinds:
        names = "|".join([*encodings, "\\*"])
        variable = "$certbotless_compress_vary_" + "_".join(encodings)
        maps.append(f"""
    map "{SKIPPED}:$upstream_http_vary:$http_accept_encoding" {variable} {{
        default "";
        ~^1: "";
        "~^0:[^:]*(?i:accept-encoding)" "";
        "~^0:[^:]*:(?:.*,)?{_ITEM.format(names=names)}" Accept-Encoding;
    }}""")
    return "".join(maps)
