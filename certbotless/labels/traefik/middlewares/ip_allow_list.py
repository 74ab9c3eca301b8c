"""ipAllowList (and v2's ipWhiteList): only clients from `sourceRange` get in, others get
`rejectStatusCode` (403); two of them on one route both must let the client through.

`ipStrategy`: the edge stands where Traefik's entry point stands with no trusted IPs, which
removed the client's X-Forwarded-For before any middleware: `depth` and `excludedIPs` find no
address there, and Traefik lets nobody in. `ipv6Subnet` alone checks the client's address
masked to that prefix (IPv6 only), which is computed here on the networks."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import replace

from certbotless.labels.traefik.middlewares.options import (
    Context,
    Middleware,
    Unsupported,
    known_fields,
)
from certbotless.model import Route

NOBODY = ("127.0.0.255/32",)  # no client comes from there: everyone is turned away
_STRATEGY = ("ipstrategy.depth", "ipstrategy.excludedips", "ipstrategy.ipv6subnet")


def apply(route: Route, mw: Middleware, context: Context) -> Route:
    known_fields(mw, {"sourcerange", "rejectstatuscode", *_STRATEGY})
    status = _reject_status(mw)
    if route.allow_from and status != route.allow_reject_status:
        raise Unsupported(mw.label("rejectstatuscode"), str(status), "two allowlists on one "
                          "router answering with different statuses: give them one "
                          "rejectStatusCode")  # fmt: skip
    networks = []
    for part in mw.value("sourcerange").split(","):
        try:
            networks.append(ipaddress.ip_network(part.strip(), strict=False))
        except ValueError:
            raise Unsupported(
                mw.label("sourcerange"),
                mw.value("sourcerange"),
                f"{part.strip()!r} is not an address or network",
            ) from None
    allowed = tuple(str(n) for n in _through_strategy(mw, networks)) or NOBODY
    if route.allow_from:  # two allowlists: both must let the client through
        allowed = tuple(n for n in allowed if n in route.allow_from) or NOBODY
    return replace(route, allow_from=allowed, allow_reject_status=status)


def _reject_status(mw: Middleware) -> int:
    status = mw.value("rejectstatuscode").strip() or "0"
    if not re.fullmatch(r"[0-9]{1,3}", status) or not (
        int(status) == 0 or 400 <= int(status) <= 599
    ):
        raise Unsupported(mw.label("rejectstatuscode"), status, "must be an HTTP status from "
                          "400 to 599 (nginx answers those itself)")  # fmt: skip
    return int(status) or 403


def _through_strategy(
    mw: Middleware, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The networks a client's address (as the strategy reads it) must be in."""
    depth = mw.value("ipstrategy.depth").strip() or "0"
    subnet = mw.value("ipstrategy.ipv6subnet").strip()
    if not re.fullmatch(r"[0-9]{1,3}", depth) or (subnet and not re.fullmatch(r"[0-9]{1,3}",
                                                                              subnet)):  # fmt: skip
        raise Unsupported(mw.label("ipstrategy.depth"), depth, "depth and ipv6Subnet must be "
                          "numbers")  # fmt: skip
    if int(depth) > 0 or mw.value("ipstrategy.excludedips").strip():
        return []  # no X-Forwarded-For left: the empty address, in no network
    if not subnet:
        return networks
    if not 0 < int(subnet) <= 128:
        raise Unsupported(mw.label("ipstrategy.ipv6subnet"), subnet, "must be from 1 to 128")
    return [masked for n in networks if (masked := _masked(n, int(subnet))) is not None]


def _masked(
    network: ipaddress.IPv4Network | ipaddress.IPv6Network, prefix: int
) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """The IPv6 clients whose address masked to `prefix` bits is in `network`: all of it when
    it is no longer than the prefix, else the prefix's network when `network` starts one (its
    bits after the prefix are zero), else none. IPv4 addresses are not masked."""
    if network.version == 4 or network.prefixlen <= prefix:
        return network
    wider = network.supernet(new_prefix=prefix)
    return wider if wider.network_address == network.network_address else None
