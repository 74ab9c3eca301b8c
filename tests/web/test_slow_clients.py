"""Slow and numerous clients, before any login, over real sockets on loopback (issue 25, item
12): a request must arrive within the read limit (408 after it), and one address may hold only
so many connections at once (503 beyond them). The limits are shortened here so that the tests
take seconds; the protocol is the same."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import pytest
import requests

from certbotless.settings import StatusPage
from certbotless.web.server import StatusServer
from tests.web.status_data import serving

READ_SECONDS = 1.5
BYTE_EVERY = 0.3  # "a byte every 5 s", scaled as the limit is


@pytest.fixture
def server() -> Iterator[StatusServer]:
    with serving(StatusPage(("127.0.0.1", 0), allow_from=("127.0.0.0/8",))) as started:
        started.http.RequestHandlerClass.read_seconds = READ_SECONDS  # type: ignore[attr-defined]
        started.http.per_client = 3
        yield started


def _answer(connection: socket.socket) -> bytes:
    connection.settimeout(5)
    received = b""
    try:
        while chunk := connection.recv(4096):
            received += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return received


def test_a_client_sending_a_byte_at_a_time_is_answered_408_within_the_limit(
    server: StatusServer, figure: Callable[[str], None]
) -> None:
    request = b"GET / HTTP/1.1\r\nHost: status\r\nX-Slow: " + b"a" * 200
    began = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port)) as slow:
        slow.settimeout(BYTE_EVERY)
        answer = b""
        for byte in request:  # each byte well within any per-read timeout
            if time.monotonic() - began > 4 * READ_SECONDS:
                break
            try:
                slow.sendall(bytes([byte]))
                answer = slow.recv(4096)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            if answer:
                break
        answer += _answer(slow)
    took = time.monotonic() - began
    assert answer.startswith(b"HTTP/1.0 408 "), answer[:80]
    assert READ_SECONDS <= took < READ_SECONDS + 2
    figure(f"slow client, a byte every 0.3 s against a 1.5 s limit: 408 after {took:.1f} s")


def test_an_address_holds_only_so_many_connections_and_they_time_out(
    server: StatusServer,
) -> None:
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(3)]
    try:
        time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", server.port)) as one_more:
            assert _answer(one_more).startswith(b"HTTP/1.0 503 ")
        for connection in idle:  # said nothing: let go after the read limit
            assert _answer(connection).startswith(b"HTTP/1.0 408 ")
    finally:
        for connection in idle:
            connection.close()
    deadline = time.monotonic() + 2
    while server.http.held() and time.monotonic() < deadline:
        time.sleep(0.05)
    answer = requests.get(f"http://127.0.0.1:{server.port}/api/v1/passes", timeout=5)
    assert answer.status_code == 200


def test_a_post_whose_body_never_comes_is_answered_408(server: StatusServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as client:
        client.sendall(b"POST /actions HTTP/1.1\r\nHost: status\r\nContent-Length: 100\r\n\r\nab")
        began = time.monotonic()
        answer = _answer(client)
    assert answer.startswith(b"HTTP/1.0 408 "), answer[:80]
    assert time.monotonic() - began < READ_SECONDS + 2
