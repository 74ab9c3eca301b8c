"""Where a rule's alternative is served: its hostnames (over HTTPS an IP address too: its
certificate is ordered under labels.values.profile_for's profile), or every host (a rule without
a Host); on a router served over plain HTTP only, which needs no certificate, also hosts no
certificate could name (a wildcard, `*`) and IP addresses, as Host tests of each request. Pure."""

from __future__ import annotations

import ipaddress
import re

from certbotless.labels.values import InvalidFactory, parse_hostname
from certbotless.request_conditions import Check, RequestCondition


def placements(
    hosts: tuple[str, ...], https: bool, invalid: InvalidFactory
) -> list[tuple[tuple[str, ...], tuple[RequestCondition, ...]]]:
    """Where an alternative's routes go: its hostnames (none: every host), and, on a router
    served over plain HTTP only, which needs no certificate, each address, wildcard or `*` as
    a route for every host with a Host test."""
    if not hosts:
        return [((), ())]
    names: list[str] = []
    tested: list[tuple[tuple[str, ...], tuple[RequestCondition, ...]]] = []
    for host in hosts:
        conditions = None if https else _host_without_certificate(host)
        if conditions is None:
            names.append(parse_hostname(host, invalid, ip_allowed=True))
        else:
            tested.append(((), conditions))
    return ([(tuple(dict.fromkeys(names)), ())] if names else []) + tested


def _host_without_certificate(host: str) -> tuple[RequestCondition, ...] | None:
    """Host(`*`) (none: every host), Host(`*.example.com`) (one label more) or an IP address,
    as tests of nginx's $host; None for a hostname."""
    name = host.strip().rstrip(".").lower()
    if name == "*":
        return ()
    if name.startswith("*.") and "*" not in name[2:]:
        pattern = "^[^.]+" + re.escape(name[1:]) + "$"
        return (RequestCondition(Check.HOST_REGEXP, (host,), False, pattern),)
    try:
        address = ipaddress.ip_address(name.removeprefix("[").removesuffix("]"))
    except ValueError:
        return None
    shown = f"[{address}]" if address.version == 6 else str(address)
    return (RequestCondition(Check.HOST, (shown,)),)
