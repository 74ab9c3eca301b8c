"""The status page's connections, bounded before anyone has logged in: a request's head and
body must arrive within READ_SECONDS of the connection (a client sending a byte every few
seconds is answered 408 and let go, whatever the socket's per-read timeout), and a client
address may hold PER_CLIENT connections at once, everyone together TOTAL (more are answered 503
by the accepting thread, with no handler thread of their own).

Each connection otherwise holds a thread of `ThreadingHTTPServer` for as long as the client
keeps it; these bounds make that time and that number finite.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

READ_SECONDS = 10.0  # the request's head and body, from the connection's acceptance
PER_CLIENT = 8  # connections one address may hold at once
TOTAL = 64  # connections everyone together may hold at once
WRITE_SECONDS = 15.0  # each answer's write to a client that reads slowly


class TooSlow(Exception):
    """The request did not arrive within READ_SECONDS (not a TimeoutError: the standard handler
    would drop the connection without an answer)."""


class _DeadlineReader(io.RawIOBase):
    """The socket's bytes, each read given only the time left until the deadline."""

    def __init__(self, connection: socket.socket, deadline: float) -> None:
        super().__init__()
        self.connection = connection
        self.deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TooSlow
        self.connection.settimeout(left)
        try:
            return self.connection.recv_into(buffer)
        except TimeoutError:
            raise TooSlow from None
        finally:
            self.connection.settimeout(WRITE_SECONDS)


class DeadlineHandler(BaseHTTPRequestHandler):
    """A handler whose request must arrive by a deadline; after it, 408 and the connection
    closed."""

    read_seconds = READ_SECONDS
    timeout = WRITE_SECONDS

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the socket stays open: it is read through the deadline instead
        raw = _DeadlineReader(self.connection, time.monotonic() + self.read_seconds)
        self.rfile = io.BufferedReader(raw)

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except TooSlow:
            self.close_connection = True
            self.log_message("request not received within %.0f s: 408", self.read_seconds)
            _answer_plainly(self.connection, 408, "Request Timeout",
                            "the request did not arrive in time")  # fmt: skip


class BoundedHTTPServer(ThreadingHTTPServer):
    """A thread per connection, within PER_CLIENT per address and TOTAL overall."""

    daemon_threads = True
    per_client = PER_CLIENT
    total = TOTAL

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._held: Counter[str] = Counter()
        self._lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        client = str(client_address[0])
        with self._lock:
            admitted = (self._held[client] < self.per_client
                        and sum(self._held.values()) < self.total)  # fmt: skip
            if admitted:
                self._held[client] += 1
        if not admitted:
            _answer_plainly(request, 503, "Service Unavailable",
                            "too many connections at once; try again")  # fmt: skip
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._lock:
                client = str(client_address[0])
                self._held[client] -= 1
                if self._held[client] <= 0:
                    del self._held[client]

    def held(self) -> int:
        """Connections being served now."""
        with self._lock:
            return sum(self._held.values())


def _answer_plainly(connection: socket.socket, status: int, phrase: str, text: str) -> None:
    """A short answer written at once, whatever state the request was read to."""
    body = f"{status} {phrase}: {text}\n".encode()
    head = (
        f"HTTP/1.0 {status} {phrase}\r\nConnection: close\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    try:
        connection.settimeout(1.0)  # the accepting thread must not wait on a client
        connection.sendall(head.encode("latin-1") + body)
    except OSError:
        pass  # the client left: nothing to tell
