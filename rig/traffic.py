"""Client traffic against an HTTPS address, in a thread, bounded in requests and in time.

Two loops, for benchmarks and for tests that roll or kill edges while clients keep asking:

- `NewConnectionLoop`: a new TCP and TLS connection for every request (`Connection: close`), the
  way a client that keeps nothing open sees the edge;
- `KeepAliveLoop`: one HTTP/1.1 connection reused for every request, the way a browser does. When
  the server closed the reused connection between two requests (end of stream or reset before any
  byte of the response), the request is sent once more on a new connection, as browsers do; such a
  close is counted apart (`closes_absorbed`), and a retried request that then succeeds is not a
  failure.

A target with `alternates` (other nodes' fronts, as several A records or an operator's load
balancer give them) is reached as browsers reach such a name: a connection refused, timed out or
cut before any byte of TLS came back is tried on the next address at once, and the loop keeps
to the address that answered. Such a move is counted apart too (`failovers`), not as a failure.

Both stop by themselves after `max_requests` requests or `max_seconds`, whichever comes first,
and never aim anywhere but an IP address on loopback or in a private range: the address of a
container the caller made, or a port it published on loopback.

    target = Target("127.0.0.1", 9443, "app.example.test", ca_file=Path("root.pem"))
    with NewConnectionLoop(target, max_requests=5000, max_seconds=60) as fresh, \\
            KeepAliveLoop(target, max_requests=5000, max_seconds=60) as kept:
        started = time.monotonic()
        ...                                   # roll, kill, restart
        window = kept.summary(since=started)  # the figures of one stretch
    assert fresh.failed == 0 and kept.failed == 0, fresh.errors | kept.errors
    print(fresh.outage, kept.closes_absorbed)

Times are `time.monotonic()` seconds. Stdlib only.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import ipaddress
import itertools
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self, cast

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = [
    "KeepAliveLoop",
    "NewConnectionLoop",
    "Request",
    "Summary",
    "Target",
    "TrafficLoop",
    "longest_gap",
    "summarize",
]


@dataclass(frozen=True)
class Target:
    """Where the requests go: `address:port` over TLS with SNI and Host `host`, `GET path`.

    `ca_file`: the roots to verify the server's certificate against (and its name against
    `host`); None: no verification at all (benchmarks that only count answers).
    `expect_status`: the status that makes a request succeed.
    `alternates`: further addresses of the same service, tried in turn when one refuses.
    """

    address: str
    port: int
    host: str
    ca_file: Path | None = None
    path: str = "/"
    expect_status: int = 200
    alternates: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for address in (self.address, *self.alternates):
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                raise ValueError(
                    f"traffic goes to an IP address the run owns, not to a name: {address!r}"
                ) from None
            if not (ip.is_loopback or ip.is_private):
                raise ValueError(
                    f"traffic goes to loopback or to the run's own containers, not to {ip}"
                )

    @property
    def addresses(self) -> tuple[str, ...]:
        return (self.address, *self.alternates)

    def tls_context(self) -> ssl.SSLContext:
        if self.ca_file is not None:
            return ssl.create_default_context(cafile=str(self.ca_file))
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context

    def request_bytes(self, keep_alive: bool) -> bytes:
        connection = "keep-alive" if keep_alive else "close"
        return (
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUser-Agent: certbotless-rig\r\n"
            f"Accept: */*\r\nConnection: {connection}\r\n\r\n"
        ).encode()


@dataclass(frozen=True)
class Request:
    """One request as the client saw it. `error` is "" when `ok`; otherwise what went wrong
    (the exception, or the unexpected status). Keep-alive only: `reused`, sent on a connection
    that had answered before; `retried`, that connection was closed by the server before any byte
    of the answer and the request went again on a new connection (`close_error` says how it
    closed); `started`..`ended` then spans both attempts. `failovers`: addresses that refused
    the connection before one took it (`failover_error` says how the last refused)."""

    started: float
    ended: float
    ok: bool
    error: str = ""
    reused: bool = False
    retried: bool = False
    close_error: str = ""
    failovers: int = 0
    failover_error: str = ""


@dataclass(frozen=True)
class Summary:
    """The figures of a list of requests: `requests` made, `failed` ones (after the keep-alive
    retry), `closes_absorbed` (server closes between requests that one retry absorbed, failed
    retry or not), `outage` (`longest_gap`, seconds), `errors` (message → count, failed requests
    only), `close_errors` (message → count, the closes that led to a retry), `failovers`
    (requests that moved to another address) and `failover_errors` (message → count)."""

    requests: int
    failed: int
    closes_absorbed: int
    outage: float
    errors: dict[str, int]
    close_errors: dict[str, int]
    failovers: int = 0
    failover_errors: dict[str, int] = field(default_factory=dict)


def longest_gap(records: Sequence[Request]) -> float:
    """The longest stretch without a successful request, in seconds: between the ends of two
    successive successful requests; and, when failed requests come before the first success or
    after the last one, from the first request's start or to the last request's end. With no
    success at all, the whole span of the requests."""
    if not records:
        return 0.0
    ordered = sorted(records, key=lambda r: r.started)
    successes = [r.ended for r in ordered if r.ok]
    if not successes:
        return max(r.ended for r in ordered) - ordered[0].started
    successes.sort()
    longest = 0.0
    if not ordered[0].ok:
        longest = successes[0] - ordered[0].started
    for before, after in itertools.pairwise(successes):
        longest = max(longest, after - before)
    last_end = max(r.ended for r in ordered)
    if any(not r.ok and r.ended > successes[-1] for r in ordered):
        longest = max(longest, last_end - successes[-1])
    return longest


def summarize(records: Sequence[Request]) -> Summary:
    return Summary(
        requests=len(records),
        failed=sum(not r.ok for r in records),
        closes_absorbed=sum(r.retried for r in records),
        outage=longest_gap(records),
        errors=dict(Counter(r.error for r in records if not r.ok)),
        close_errors=dict(Counter(r.close_error for r in records if r.retried)),
        failovers=sum(r.failovers > 0 for r in records),
        failover_errors=dict(Counter(r.failover_error for r in records if r.failovers)),
    )


class TrafficLoop:
    """The common part: a thread that sends requests until `max_requests` were made,
    `max_seconds` passed, or `stop()`.

    `connect_timeout`: seconds for TCP connect (short, so that a SYN swallowed while a host port
    has no container does not stretch the measured outage by the client's own wait); `timeout`:
    seconds for every later step (TLS handshake, sending, each read). `interval`: the least time
    between the starts of two requests (0: back to back), so that a loop does not starve what it
    measures of CPU. `pause_after_failure`: a short wait after a failed request, so that a refused
    port does not spin.
    """

    def __init__(
        self,
        target: Target,
        *,
        max_requests: int,
        max_seconds: float,
        connect_timeout: float = 1.0,
        timeout: float = 5.0,
        interval: float = 0.0,
        pause_after_failure: float = 0.01,
    ) -> None:
        if max_requests < 1 or max_seconds <= 0:
            raise ValueError("a traffic loop needs max_requests >= 1 and max_seconds > 0")
        self.target = target
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.interval = interval
        self.pause_after_failure = pause_after_failure
        self._tls = target.tls_context()
        self._records: list[Request] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._crash: BaseException | None = None
        self.started_at: float | None = None
        # The address in use (an index into target.addresses), and this request's moves.
        self._address = 0
        self._moves: list[str] = []

    # --- running ----------------------------------------------------------------------------

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError(f"{type(self).__name__} was started already")
        self.started_at = time.monotonic()
        self._thread = threading.Thread(
            target=self._run, name=f"{type(self).__name__}-{self.target.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop after the request under way (which its own timeouts bound) and wait for it;
        re-raises what crashed the thread, if anything did."""
        self._stop.set()
        self.wait(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Until the loop ended by itself (or was stopped); False when `timeout` ran out first."""
        if self._thread is not None:
            self._thread.join(
                timeout if timeout is not None else self.max_seconds + 3 * self.timeout + 10
            )
            if self._thread.is_alive():
                return False
        if self._crash is not None:
            raise RuntimeError(f"{type(self).__name__} crashed") from self._crash
        return True

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        assert self.started_at is not None
        deadline = self.started_at + self.max_seconds
        try:
            for _ in range(self.max_requests):
                now = time.monotonic()
                if self._stop.is_set() or now >= deadline:
                    break
                self._moves = []
                record = self._one_request()
                if self._moves:
                    record = replace(
                        record, failovers=len(self._moves), failover_error=self._moves[-1]
                    )
                with self._lock:
                    self._records.append(record)
                pause = max(0.0, self.interval - (time.monotonic() - now))
                if not record.ok:
                    pause = max(pause, self.pause_after_failure)
                if pause:
                    self._stop.wait(pause)
        except BaseException as crash:  # a bug here must not vanish with the thread
            self._crash = crash
        finally:
            self._close()

    def _one_request(self) -> Request:
        raise NotImplementedError

    def _close(self) -> None:
        """Release what the loop keeps between requests."""

    def _connect(self) -> ssl.SSLSocket:
        """A TLS connection to the address in use; with alternates, the next one in turn when it
        refuses (each address at most once per request)."""
        addresses = self.target.addresses
        for attempt in range(len(addresses)):
            address = addresses[self._address]
            try:
                return self._connect_to(address)
            except OSError as refused:
                if attempt == len(addresses) - 1 or not _refused(refused):
                    raise
                self._moves.append(f"{address}: {_describe(refused)}")
                self._address = (self._address + 1) % len(addresses)
        raise AssertionError("unreachable")

    def _connect_to(self, address: str) -> ssl.SSLSocket:
        raw = socket.create_connection((address, self.target.port), timeout=self.connect_timeout)
        try:
            raw.settimeout(self.timeout)
            return self._tls.wrap_socket(raw, server_hostname=self.target.host)
        except BaseException:
            raw.close()
            raise

    # --- figures ----------------------------------------------------------------------------

    @property
    def records(self) -> list[Request]:
        """A copy of every request so far, in order."""
        with self._lock:
            return list(self._records)

    def between(self, since: float | None = None, until: float | None = None) -> list[Request]:
        """The requests that started in [since, until] (monotonic seconds; None: no bound)."""
        return [
            r
            for r in self.records
            if (since is None or r.started >= since) and (until is None or r.started <= until)
        ]

    def summary(self, since: float | None = None, until: float | None = None) -> Summary:
        return summarize(self.between(since, until))

    @property
    def requests(self) -> int:
        return self.summary().requests

    @property
    def failed(self) -> int:
        return self.summary().failed

    @property
    def closes_absorbed(self) -> int:
        return self.summary().closes_absorbed

    @property
    def outage(self) -> float:
        return self.summary().outage

    @property
    def errors(self) -> dict[str, int]:
        return self.summary().errors


def _refused(error: OSError) -> bool:
    """Whether an address could not take the connection, before any byte of TLS came back:
    refused (no listener), timed out or unreachable (no container behind the port), or cut
    during the handshake (a front stopping, or started and not passing yet). A TLS alert or a
    certificate that fails verification is an answer: not that."""
    if isinstance(error, ssl.SSLError):
        return isinstance(error, ssl.SSLEOFError | ssl.SSLZeroReturnError)
    return True


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class NewConnectionLoop(TrafficLoop):
    """A new TCP and TLS connection for every request, closed after the answer."""

    def _one_request(self) -> Request:
        started = time.monotonic()
        ok, error = False, ""
        try:
            with self._connect() as connection:
                connection.sendall(self.target.request_bytes(keep_alive=False))
                response = http.client.HTTPResponse(cast(socket.socket, connection))
                try:
                    response.begin()
                    response.read()
                finally:
                    response.close()
                ok = response.status == self.target.expect_status
                if not ok:
                    error = f"HTTP {response.status}"
        except (OSError, http.client.HTTPException) as failure:
            error = _describe(failure)
        return Request(started, time.monotonic(), ok, error)


class _CountingReader(io.RawIOBase):
    """The socket's bytes for one response, counted: zero when the server closed (or reset) the
    connection before answering."""

    def __init__(self, connection: ssl.SSLSocket) -> None:
        super().__init__()
        self.connection = connection
        self.received = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        count = self.connection.recv_into(buffer)
        self.received += count
        return count


class _ResponseSource:
    """What `http.client.HTTPResponse` wants of a socket (`makefile`), over a counting reader."""

    def __init__(self, reader: _CountingReader) -> None:
        self.reader = reader

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(self.reader)


# How a server's close of an idle keep-alive connection shows at the client: the end of the
# stream before a status line (RemoteDisconnected), a reset, a broken pipe on sending, or a TLS
# stream cut without close_notify.
_CLOSED = (
    http.client.RemoteDisconnected,
    ConnectionResetError,
    BrokenPipeError,
    ssl.SSLEOFError,
    ssl.SSLZeroReturnError,
)


class KeepAliveLoop(TrafficLoop):
    """One persistent HTTP/1.1 connection for every request. A new one is opened only at the
    start, after a failure, when the server said `Connection: close`, or when it closed the
    reused connection before answering; that last case is retried once at once (as browsers do)
    and counted in `closes_absorbed`, not in `failed` unless the retry fails too."""

    _connection: ssl.SSLSocket | None = None

    def _close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(OSError):
                self._connection.close()
            self._connection = None

    def _one_request(self) -> Request:
        started = time.monotonic()
        reused = self._connection is not None
        ok, error, closed_early = self._exchange()
        if ok or not (reused and closed_early):
            return Request(started, time.monotonic(), ok, error, reused=reused)
        # The server closed the idle connection between two requests: once more, on a new one.
        close_error = error
        ok, error, _ = self._exchange()
        return Request(
            started, time.monotonic(), ok, error, reused=True, retried=True, close_error=close_error
        )

    def _exchange(self) -> tuple[bool, str, bool]:
        """(ok, error, closed before any byte of the answer) for one request on the kept
        connection, opening one first when there is none."""
        try:
            if self._connection is None:
                self._connection = self._connect()
            connection = self._connection
        except (OSError, http.client.HTTPException) as failure:
            self._close()
            return False, _describe(failure), False
        reader = _CountingReader(connection)
        try:
            connection.sendall(self.target.request_bytes(keep_alive=True))
            response = http.client.HTTPResponse(cast(socket.socket, _ResponseSource(reader)))
            try:
                response.begin()
                response.read()
            finally:
                response.close()
        except _CLOSED as failure:
            self._close()
            return False, _describe(failure), reader.received == 0
        except (OSError, http.client.HTTPException) as failure:
            self._close()
            return False, _describe(failure), False
        if response.will_close:
            self._close()
        if response.status != self.target.expect_status:
            self._close()
            return False, f"HTTP {response.status}", False
        return True, "", False
