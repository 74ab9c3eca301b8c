"""Free TCP ports on loopback for the servers a test starts."""

from __future__ import annotations

import socket


def unused_ports(count: int) -> list[int]:
    """Distinct free ports: every probe stays bound until all are chosen. Another process may
    still take one before the test binds it."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def unused_port() -> int:
    return unused_ports(1)[0]
