"""ipAllowList (and v2's ipWhiteList): only clients from `sourceRange` get in; two of them on
one route both must let the client through."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

from certbotless.labels.traefik.middlewares.options import (
    Context,
    Middleware,
    Unsupported,
    known_fields,
)
from certbotless.model import Route


def apply(route: Route, mw: Middleware, context: Context) -> Route:
    known_fields(mw, {"sourcerange", "ipstrategy.depth"})
    if mw.value("ipstrategy.depth", "0") != "0":
        raise Unsupported(mw.label("ipstrategy.depth"), mw.value("ipstrategy.depth"),
                          "the edge takes the client's address from the connection (or the "
                          "front's PROXY header), not from X-Forwarded-For")  # fmt: skip
    networks = []
    for part in mw.value("sourcerange").split(","):
        try:
            networks.append(str(ipaddress.ip_network(part.strip(), strict=False)))
        except ValueError:
            raise Unsupported(
                mw.label("sourcerange"),
                mw.value("sourcerange"),
                f"{part.strip()!r} is not an address or network",
            ) from None
    allowed = tuple(networks)
    if route.allow_from:  # two allowlists: both must let the client through
        allowed = tuple(n for n in allowed if n in route.allow_from) or ("127.0.0.255/32",)
    return replace(route, allow_from=allowed)
