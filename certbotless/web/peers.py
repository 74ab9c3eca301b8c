"""Who is at the other end of a status-page connection: one of the edge's nginx tasks (the only
peers whose X-Forwarded-* headers the page trusts: nginx sets them, replacing the client's),
a network the operator lets reach the page directly (CERTBOTLESS_STATUS_DIRECT_FROM), or anyone
else on the networks the sidecar shares with tenants, who is refused.

The edge's tasks are known by their addresses: Docker's DNS answers `tasks.<nginx service>`
with each running task's address on the network the sidecar shares with it, which is the
address its connections to the page come from. Swarm's IPAM gives each task its own address on
an overlay network, and a container cannot complete a TCP handshake from an address that is not
its own (the answer goes to the address's owner), so no tenant connects as an nginx task. The
answer is short-lived: a task that stopped gives its address back, and Swarm may give it to a
tenant's next task, so the addresses are asked again every few seconds, and at once (at most
once a second) for a peer not among them, such as a task a roll has just started."""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence

log = logging.getLogger(__name__)

# How long the edge's task addresses are trusted once asked, and how often a peer not among
# them may have them asked again.
ADDRESSES_MAX_AGE = 5.0
ASK_AGAIN_AFTER = 1.0
# The edge's service name, as looked up: it changes only with the operator's stack.
NAME_MAX_AGE = 60.0


def task_addresses(service: str) -> frozenset[str]:
    """The addresses Docker's DNS gives for `tasks.<service>` (none when it knows no task)."""
    try:
        infos = socket.getaddrinfo(f"tasks.{service}", None, proto=socket.IPPROTO_TCP)
    except OSError:
        return frozenset()
    return frozenset(str(info[4][0]) for info in infos)


class EdgePeers:
    """Whether an address is one of the edge's nginx tasks (`address in peers`)."""

    def __init__(
        self,
        edge_service: Callable[[], str | None],
        resolve: Callable[[str], frozenset[str]] = task_addresses,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._edge_service = edge_service
        self._resolve = resolve
        self._clock = clock
        self._lock = threading.Lock()
        self._name: str | None = None
        self._named_at = -NAME_MAX_AGE
        self._addresses: frozenset[str] = frozenset()
        self._asked_at = -ADDRESSES_MAX_AGE

    def __contains__(self, address: object) -> bool:
        with self._lock:
            now = self._clock()
            stale = now - self._asked_at >= ADDRESSES_MAX_AGE
            unknown = address not in self._addresses and now - self._asked_at >= ASK_AGAIN_AFTER
            if stale or unknown:
                self._addresses = self._ask(now)
                self._asked_at = now
            return address in self._addresses

    def _ask(self, now: float) -> frozenset[str]:
        if self._name is None or now - self._named_at >= NAME_MAX_AGE:
            try:
                self._name = self._edge_service()
            except Exception as error:  # the engine's or the proxy's: the last name stands
                log.warning("status page: cannot tell the edge's service: %s", error)
            self._named_at = now
        return self._resolve(self._name) if self._name else frozenset()


def in_networks(address: str, networks: Sequence[str]) -> bool:
    """Whether `address` is in one of `networks` (CIDRs); False for what is not an address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(network) for network in networks)
