"""HTTP-01: the pending key authorizations and the HTTP server that answers for them (the
solver that publishes them, and checks the edge serves them, is `http01.py`).

Tokens live as files in one directory so that a `certbotless issue` run through `docker exec`
is answered by the daemon's responder in the same container.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from certbotless.model import CHALLENGE_PREFIX

log = logging.getLogger(__name__)

# RFC 8555 §8.3: base64url, at least 128 bits of entropy; 43 chars is typical.
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{22,128}$")


def is_valid_token(token: str) -> bool:
    return bool(_TOKEN_RE.match(token))


class TokenStore:
    """Key authorizations as files named by the SHA-256 of their token: the file name never comes
    from a request, and another process in the container (`docker exec … issue`) shares them.

    Concurrent orders that share a name get the same authorization, so the same token, from the
    CA: each `put` counts a user, and the file goes only when the last of them calls `remove`.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._users: dict[str, int] = {}
        self._lock = threading.Lock()

    def _path(self, token: str) -> Path:
        return self.directory / hashlib.sha256(token.encode()).hexdigest()

    def put(self, token: str, key_authorization: str) -> None:
        if not is_valid_token(token):
            raise ValueError(f"refusing malformed ACME token {token!r}")
        path = self._path(token)
        temporary = path.with_suffix(".tmp")
        with self._lock:
            temporary.write_text(key_authorization)
            os.replace(temporary, path)
            self._users[token] = self._users.get(token, 0) + 1

    def get(self, token: str) -> str | None:
        if not is_valid_token(token):
            return None
        try:
            return self._path(token).read_text()
        except FileNotFoundError:
            return None

    def remove(self, token: str) -> None:
        if not is_valid_token(token):
            return
        with self._lock:
            users = self._users.pop(token, 0)
            if users > 1:
                self._users[token] = users - 1
                return
            self._path(token).unlink(missing_ok=True)


class _RequestTooLarge(Exception):
    pass


class _RequestTooSlow(Exception):
    pass


class _GuardedReader:
    """The request stream, cut off after `limit` bytes or at `deadline`, however slowly the
    client trickles bytes in (a plain socket timeout restarts with every byte)."""

    def __init__(
        self, raw: io.BufferedReader, connection: socket.socket, limit: int, deadline: float
    ) -> None:
        self.raw = raw
        self.connection = connection
        self.remaining = limit
        self.deadline = deadline

    def readline(self, size: int = -1) -> bytes:
        line = bytearray()
        while not line.endswith(b"\n") and (size < 0 or len(line) < size):
            time_left = self.deadline - time.monotonic()
            if time_left <= 0:
                raise _RequestTooSlow
            self.connection.settimeout(time_left)
            try:
                buffered = self.raw.peek(1)  # at most one recv
            except TimeoutError:
                raise _RequestTooSlow from None
            if not buffered:
                break
            newline = buffered.find(b"\n")
            take = len(buffered) if newline < 0 else newline + 1
            if size >= 0:
                take = min(take, size - len(line))
            line += self.raw.read(take)
            self.remaining -= take
            if self.remaining < 0:
                raise _RequestTooLarge
        return bytes(line)

    def read(self, size: int = -1) -> bytes:
        return b""  # GET and HEAD have no body worth reading

    def close(self) -> None:
        self.raw.close()


class _BoundedServer(ThreadingHTTPServer):
    """At most `max_connections` at once; extra connections are closed straight away."""

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], max_connections: int
    ) -> None:
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(max_connections)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("responder: connection from %s failed", client_address, exc_info=True)


# Why the process is unhealthy, or None: /healthz answers 503 with it.
HealthProblem = Callable[[], str | None]


class ChallengeResponder:
    """Serves /.well-known/acme-challenge/<token> and /healthz (for Swarm's health check: 200, or
    503 and why, as `health` says); everything else is 4xx.

    Requests are bounded in size (`max_request_bytes`) and in time (`request_seconds` in all,
    however slowly the client sends), and at most `max_connections` are served at once.
    """

    def __init__(
        self,
        tokens: TokenStore,
        host: str,
        port: int,
        max_request_bytes: int = 8192,
        request_seconds: float = 10.0,
        max_connections: int = 64,
        health: HealthProblem = lambda: None,
    ) -> None:
        handler = _make_handler(_ResponderRules(tokens, max_request_bytes, request_seconds, health))
        self.server = _BoundedServer((host, port), handler, max_connections)
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="challenge-responder", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass(frozen=True)
class _ResponderRules:
    tokens: TokenStore
    max_request_bytes: int
    request_seconds: float
    health: HealthProblem


class _ChallengeHandler(BaseHTTPRequestHandler):
    """One request per connection: a token's key authorization, /healthz, or a 4xx."""

    rules: ClassVar[_ResponderRules]  # set per responder by `_make_handler`
    # Error replies to malformed (HTTP/0.9-looking) requests still get a status line.
    default_request_version = "HTTP/1.0"
    server_version = "certbotless"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        assert isinstance(self.rfile, io.BufferedReader)
        self.rfile = _GuardedReader(  # type: ignore[assignment]
            self.rfile,
            self.connection,
            self.rules.max_request_bytes,
            time.monotonic() + self.rules.request_seconds,
        )

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except _RequestTooLarge:
            self._refuse(431, "Request Header Fields Too Large")
        except _RequestTooSlow:
            self._refuse(408, "Request Timeout")

    def _refuse(self, status: int, reason: str) -> None:
        # The request may have died before its first line was parsed.
        self.close_connection = True
        self.request_version = "HTTP/1.0"
        self.requestline = getattr(self, "requestline", "")
        self.command = getattr(self, "command", "")
        with contextlib.suppress(OSError):
            self.send_error(status, reason)

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        if self.command not in ("GET", "HEAD"):
            self.send_error(405, "Only GET and HEAD")
            return False
        return True

    def do_GET(self) -> None:
        if self.path == "/healthz":
            problem = self.rules.health()
            self._reply(503 if problem else 200, f"{problem or 'ok'}\n".encode())
            return
        answer = None
        if self.path.startswith(CHALLENGE_PREFIX):
            answer = self.rules.tokens.get(self.path[len(CHALLENGE_PREFIX) :])
        if answer is None:
            self._reply(404, b"not found\n")
        else:
            self._reply(200, answer.encode())

    def do_HEAD(self) -> None:
        self.do_GET()

    def _reply(self, status: int, body: bytes) -> None:
        # One request per connection: an idle keep-alive client would hold one of the
        # `max_connections` slots, and the byte and time budget is per connection.
        self.close_connection = True
        self.send_response(status)
        self.send_header("Connection", "close")
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("responder: " + format, *args)


def _make_handler(rules: _ResponderRules) -> type[_ChallengeHandler]:
    class Handler(_ChallengeHandler):
        timeout = rules.request_seconds

    Handler.rules = rules
    return Handler
