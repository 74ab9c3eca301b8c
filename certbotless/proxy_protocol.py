"""Connections of the sidecar's own to one edge task (the challenge self-check, the served
certificate check). Behind the L4 front, nginx listens with PROXY protocol, so such a connection
starts with a v2 header of the LOCAL command: nginx accepts it and takes no client address from
it (HAProxy's own health checks send the same)."""

from __future__ import annotations

import socket

# PROXY protocol v2 (haproxy.org/download/2.9/doc/proxy-protocol.txt, section 2.2): the 12-byte
# signature, version 2 with the LOCAL command, address family UNSPEC, no address block.
PROXY_V2_LOCAL = b"\r\n\r\n\x00\r\nQUIT\n" + bytes((0x20, 0x00, 0x00, 0x00))


def connect_to_edge_task(
    address: str, port: int, timeout: float, proxy_protocol: bool
) -> socket.socket:
    """A TCP connection to one edge task, past the PROXY protocol header when it expects one."""
    connection = socket.create_connection((address, port), timeout=timeout)
    if proxy_protocol:
        try:
            connection.sendall(PROXY_V2_LOCAL)
        except OSError:
            connection.close()
            raise
    return connection
