"""The HTTP server that answers HTTP-01 challenges and Swarm's health check (/healthz).

One event loop holds every connection, so a client that opens connections and sends nothing
costs a file descriptor and a few kilobytes each, never a worker: challenges and /healthz are
answered however many idle connections are open. Connections whose request has not fully
arrived are bounded three ways:

- in time: the request line within `request_line_seconds`, the whole request within
  `request_seconds`, however slowly the client trickles bytes in (then 408);
- per client address: beyond `max_waiting_per_client`, a client's oldest waiting connection is
  closed once it has had `PER_CLIENT_GRACE_SECONDS` to send its request. A new connection is
  never refused: Swarm's health check shares loopback with everything in the container, and
  nginx forwards the CA's requests from a few addresses (always whole: it reads the request
  before it connects), so what is closed is only ever a connection that sends nothing;
- in all: beyond `max_waiting`, or what the file-descriptor limit leaves room for, the oldest
  waiting connection anywhere is closed as a new one arrives.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import resource
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus

from certbotless.acme.challenges import TokenStore
from certbotless.model import CHALLENGE_PREFIX

log = logging.getLogger(__name__)

# Connections the kernel queues while the loop is busy accepting others.
LISTEN_BACKLOG = 1024
# File descriptors left to the rest of the process (Docker API, ACME, token files, logs).
FD_RESERVE = 256
# A legitimate client sends its request with the connection; one that has not after this long,
# and has more waiting connections than its share, loses its oldest.
PER_CLIENT_GRACE_SECONDS = 0.5
SWEEP_SECONDS = 0.25

# Why the process is unhealthy, or None: /healthz answers 503 with it.
HealthProblem = Callable[[], str | None]


@dataclass(frozen=True)
class ResponderLimits:
    max_request_bytes: int = 8192
    request_seconds: float = 10.0
    request_line_seconds: float = 2.0
    max_waiting: int = 4096
    max_waiting_per_client: int = 64


def waiting_room(wanted: int) -> int:
    """`wanted`, or fewer when the file-descriptor limit is lower: out of descriptors, asyncio
    stops accepting for a second, which is what the limits are there to prevent."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - FD_RESERVE))


class WaitingConnections:
    """Connections whose request has not fully arrived, oldest first, in all and per client."""

    def __init__(self, max_waiting: int, max_per_client: int) -> None:
        self.max_waiting = max_waiting
        self.max_per_client = max_per_client
        self._clients: dict[asyncio.WriteTransport, str] = {}
        self._since: dict[str, dict[asyncio.WriteTransport, float]] = {}

    def __len__(self) -> int:
        return len(self._clients)

    def add(self, transport: asyncio.WriteTransport, client: str) -> None:
        if len(self._clients) >= self.max_waiting:
            self._close(next(iter(self._clients)))
        self._clients[transport] = client
        self._since.setdefault(client, {})[transport] = time.monotonic()

    def discard(self, transport: asyncio.WriteTransport) -> None:
        client = self._clients.pop(transport, None)
        if client is None:
            return
        mine = self._since[client]
        del mine[transport]
        if not mine:
            del self._since[client]

    def sweep(self) -> None:
        """Close each client's oldest connections beyond its share that had their grace."""
        now = time.monotonic()
        for client, mine in list(self._since.items()):
            beyond = max(0, len(mine) - self.max_per_client)
            overdue = [
                transport
                for transport, since in itertools.islice(mine.items(), beyond)
                if now - since >= PER_CLIENT_GRACE_SECONDS
            ]
            for transport in overdue:
                self._close(transport)
            if overdue:
                log.debug("responder: closed %d idle connections of %s", len(overdue), client)

    def close_all(self) -> None:
        for transport in list(self._clients):
            self._close(transport)

    def _close(self, transport: asyncio.WriteTransport) -> None:
        self.discard(transport)
        transport.abort()


@dataclass(frozen=True)
class _Request:
    method: str
    target: str


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes

    @classmethod
    def error(cls, status: HTTPStatus) -> _Reply:
        return cls(status, f"{status.value} {status.phrase}\n".encode())


class _Refused(Exception):
    def __init__(self, status: HTTPStatus) -> None:
        super().__init__(status.phrase)
        self.reply = _Reply.error(status)


async def _read_request(reader: asyncio.StreamReader, limits: ResponderLimits) -> _Request | None:
    """The request's method and target once its head has arrived; None if the client left.
    The reader's own limit (`max_request_bytes`) cuts off any single overlong line."""
    started = asyncio.get_running_loop().time()
    line_seconds = min(limits.request_line_seconds, limits.request_seconds)
    try:
        async with asyncio.timeout_at(started + line_seconds) as deadline:
            line = await reader.readuntil(b"\n")
            deadline.reschedule(started + limits.request_seconds)
            request = _parse_request_line(line)
            received = len(line)
            while line not in (b"\r\n", b"\n"):
                line = await reader.readuntil(b"\n")
                received += len(line)
                if received > limits.max_request_bytes:
                    raise _Refused(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
    except TimeoutError:
        raise _Refused(HTTPStatus.REQUEST_TIMEOUT) from None
    except asyncio.LimitOverrunError:
        raise _Refused(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE) from None
    except asyncio.IncompleteReadError:
        return None
    if request.method not in ("GET", "HEAD"):
        raise _Refused(HTTPStatus.METHOD_NOT_ALLOWED)
    return request


def _parse_request_line(line: bytes) -> _Request:
    words = line.decode("latin-1").rstrip("\r\n").split(" ")
    if len(words) != 3 or words[2] not in ("HTTP/1.0", "HTTP/1.1") or not words[1]:
        raise _Refused(HTTPStatus.BAD_REQUEST)
    return _Request(words[0], words[1])


def _response(reply: _Reply, head_only: bool) -> bytes:
    # One request per connection: the byte and time budget is per connection.
    head = (
        f"HTTP/1.0 {reply.status} {HTTPStatus(reply.status).phrase}\r\n"
        "Server: certbotless\r\n"
        f"Date: {formatdate(usegmt=True)}\r\n"
        "Connection: close\r\n"
        "Content-Type: text/plain\r\n"
        f"Content-Length: {len(reply.body)}\r\n\r\n"
    ).encode("latin-1")
    return head if head_only else head + reply.body


def client_address(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) else "unknown"


class LoopServer:
    """A listener whose connections one event loop holds, on its own thread, within the bounds
    the module describes (`waiting`: connections not yet done with their request or handshake).
    Subclasses answer in `_serve`; `stream_limit` bounds one line a reader reads."""

    thread_name = "loop-server"

    def __init__(self, host: str, port: int, max_waiting: int, max_per_client: int,
                 stream_limit: int = 2**16) -> None:  # fmt: skip
        self._stream_limit = stream_limit
        family = socket.AF_INET6 if ":" in host else socket.AF_INET  # a CA dials an IPv6 name
        self._socket = socket.create_server((host, port), family=family, backlog=LISTEN_BACKLOG)
        self.waiting = WaitingConnections(waiting_room(max_waiting), max_per_client)
        self._loop = asyncio.new_event_loop()
        self._stopping = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join()
        self._socket.close()
        self._loop.close()

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve_until_stopped())

    async def _serve_until_stopped(self) -> None:
        server = await asyncio.start_server(
            self._serve, sock=self._socket, limit=self._stream_limit, backlog=LISTEN_BACKLOG
        )
        sweeper = asyncio.create_task(self._sweep_forever())
        await self._stopping.wait()
        server.close()
        sweeper.cancel()
        await asyncio.sleep(0)  # connections just accepted join the waiting ones
        self.waiting.close_all()
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        if others:
            _, late = await asyncio.wait(others, timeout=1)
            for task in late:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)
        await asyncio.sleep(0)  # closed transports release their sockets on the next turn

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            self.waiting.sweep()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


class ChallengeResponder(LoopServer):
    """Serves /.well-known/acme-challenge/<token> and /healthz (for Swarm's health check: 200, or
    503 and why, as `health` says) on its own thread; everything else is 4xx. Only GET and HEAD,
    one request per connection, within the `limits` the module describes.
    """

    thread_name = "challenge-responder"

    def __init__(
        self,
        tokens: TokenStore,
        host: str,
        port: int,
        limits: ResponderLimits = ResponderLimits(),
        health: HealthProblem = lambda: None,
    ) -> None:
        super().__init__(host, port, limits.max_waiting, limits.max_waiting_per_client,
                         limits.max_request_bytes)  # fmt: skip
        self._tokens = tokens
        self._limits = limits
        self._health = health

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = client_address(writer)
        self.waiting.add(writer.transport, client)
        try:
            try:
                request = await _read_request(reader, self._limits)
            except _Refused as refused:
                await self._send(writer, refused.reply, head_only=False)
                return
            except ConnectionError:  # the client left, or was closed to make room
                return
            finally:
                self.waiting.discard(writer.transport)
            if request is not None:
                log.debug("responder: %s %s %s", client, request.method, request.target)
                await self._send(writer, self._answer(request), request.method == "HEAD")
        except Exception:
            log.warning("responder: answering %s failed", client, exc_info=True)
        except asyncio.CancelledError:
            # Only `stop` cancels; Python 3.11's streams log a cancelled handler as an error.
            pass
        finally:
            if not writer.transport.is_closing():
                writer.close()

    def _answer(self, request: _Request) -> _Reply:
        # Both are quick and never block: a lookup under a short lock, one small file read.
        if request.target == "/healthz":
            problem = self._health()
            return _Reply(503 if problem else 200, f"{problem or 'ok'}\n".encode())
        answer = None
        if request.target.startswith(CHALLENGE_PREFIX):
            answer = self._tokens.get(request.target[len(CHALLENGE_PREFIX) :])
        if answer is None:
            return _Reply(404, b"not found\n")
        return _Reply(200, answer.encode())

    async def _send(self, writer: asyncio.StreamWriter, reply: _Reply, head_only: bool) -> None:
        writer.write(_response(reply, head_only))
        try:
            async with asyncio.timeout(self._limits.request_seconds):
                await writer.drain()
        except (TimeoutError, ConnectionError):
            writer.transport.abort()  # a client that reads nothing keeps no descriptor
