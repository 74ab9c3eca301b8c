"""Traefik's sourceCriterion (rateLimit, inFlightReq): what requests are counted per, as the
route's limit key (model.RateLimit.key). The edge stands where Traefik's entry point stands with
no trusted IPs: it removed the client's X-Forwarded-For before any middleware, so an
ipStrategy with `depth` or `excludedIPs` finds no address, and Traefik counts every client
together under the empty one (with or without ipv6Subnet). `ipv6Subnet` alone counts IPv6
clients per network of that prefix length."""

from __future__ import annotations

import ipaddress
import re

from certbotless.labels.traefik.middlewares.options import Middleware, Unsupported, flag
from certbotless.labels.values import HEADER_NAME_RE

_PREFIX = "sourcecriterion."
FIELDS = {_PREFIX + name for name in (
    "ipstrategy.depth", "ipstrategy.excludedips", "ipstrategy.ipv6subnet",
    "requestheadername", "requesthost",
)}  # fmt: skip
EVERY_CLIENT = "one"


def limit_key(mw: Middleware) -> str:
    """The key Traefik's extractor gives (GetSourceExtractor): "" the client's address,
    "subnet:<N>" its IPv6 /N network, "host", "header:<name>", or EVERY_CLIENT."""

    def given(key: str) -> str:
        return mw.value(_PREFIX + key).strip()

    strategy = any(key.startswith(_PREFIX + "ipstrategy.") for key in mw.fields)
    header, host = given("requestheadername"), flag(mw, _PREFIX + "requesthost")
    if sum((strategy, bool(header), host)) > 1:
        raise Unsupported(mw.label(_PREFIX + "requestheadername"), header, "ipStrategy, "
                          "requestHeaderName and requestHost are mutually exclusive, as "
                          "Traefik says")  # fmt: skip
    if header:
        if not HEADER_NAME_RE.match(header):
            raise Unsupported(mw.label(_PREFIX + "requestheadername"), header,
                              "must be a header name")  # fmt: skip
        return f"header:{header}"
    if host:
        return "host"
    return _ip_strategy_key(mw) if strategy else ""


def _ip_strategy_key(mw: Middleware) -> str:
    depth = mw.value(_PREFIX + "ipstrategy.depth", "0").strip() or "0"
    if not re.fullmatch(r"[0-9]{1,3}", depth):
        raise Unsupported(mw.label(_PREFIX + "ipstrategy.depth"), depth, "must be a number")
    excluded = [n.strip() for n in mw.value(_PREFIX + "ipstrategy.excludedips").split(",")
                if n.strip()]  # fmt: skip
    for network in excluded:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise Unsupported(mw.label(_PREFIX + "ipstrategy.excludedips"), network,
                              "is not an address or network") from None  # fmt: skip
    if int(depth) > 0 or excluded:
        return EVERY_CLIENT  # no X-Forwarded-For left to read: the empty address
    subnet = mw.value(_PREFIX + "ipstrategy.ipv6subnet").strip()
    return _ipv6_subnet_key(mw.label(_PREFIX + "ipstrategy.ipv6subnet"), subnet) if subnet else ""


def _ipv6_subnet_key(label: str, subnet: str) -> str:
    """`subnet:<N>`: IPv6 clients counted per /N network (their address's first N/8 bytes),
    IPv4 clients per address, as Traefik's ipv6Subnet. nginx's key is cut from the address's
    bytes ($binary_remote_addr), so N must be a multiple of 8."""
    if not subnet.isascii() or not subnet.isdigit() or not 1 <= int(subnet) <= 128:
        raise Unsupported(label, subnet, "must be a prefix length from 1 to 128")
    if int(subnet) % 8:
        lower, upper = int(subnet) // 8 * 8, int(subnet) // 8 * 8 + 8
        nearest = f"{lower} or {upper}" if lower else str(upper)
        raise Unsupported(label, subnet, "the edge counts IPv6 clients by whole bytes of their "
                          f"address (a multiple of 8 bits): use {nearest}")  # fmt: skip
    return f"subnet:{int(subnet)}"
