"""The responder under idle connections, on real loopback sockets (issue 14, item 7): clients
that open connections and send nothing must starve neither challenges nor /healthz, one client
address keeps only its share of them, and whole requests are never turned away.

Idle clients come from other loopback addresses (127.0.0.2 and up): Linux routes all of
127.0.0.0/8 to `lo`, so each stands for another container on the overlay network.
"""

import contextlib
import http.client
import resource
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from certbotless.acme import responder as responder_module
from certbotless.acme.challenges import TokenStore
from certbotless.acme.responder import (
    PER_CLIENT_GRACE_SECONDS,
    SWEEP_SECONDS,
    ChallengeResponder,
    ResponderLimits,
    waiting_room,
)

TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
CHALLENGE = f"/.well-known/acme-challenge/{TOKEN}"
IDLE = 1000
PROMPT_SECONDS = 1.0
# Long enough that no idle connection times out while a test holds it.
PATIENT = ResponderLimits(request_line_seconds=30.0, request_seconds=30.0)


@pytest.fixture(autouse=True)
def enough_file_descriptors() -> Iterator[None]:
    """Each connection costs the test two descriptors (its end and the responder's)."""
    needed = 2 * IDLE + 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.fail(f"needs {needed} file descriptors; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def start(tmp_path: Path, limits: ResponderLimits) -> ChallengeResponder:
    tokens = TokenStore(tmp_path / "challenges")
    tokens.put(TOKEN, "answer")
    server = ChallengeResponder(tokens, "127.0.0.1", 0, limits)
    server.start()
    return server


@contextlib.contextmanager
def idle_connections(port: int, sources: list[str], each: int) -> Iterator[list[socket.socket]]:
    """`each` connections from every source address; every other one sends half a request
    line (a slowloris), the rest nothing."""
    held: list[socket.socket] = []
    try:
        for number in range(each * len(sources)):
            connection = socket.create_connection(
                ("127.0.0.1", port), timeout=5, source_address=(sources[number % len(sources)], 0)
            )
            held.append(connection)
            if number % 2:
                connection.sendall(b"GET /.well-known/acme-chal")
        yield held
    finally:
        for connection in held:
            connection.close()


def still_open(connection: socket.socket) -> bool:
    connection.setblocking(False)
    try:
        connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False  # closed, or answered: either way no longer held idle


def timed(port: int, method: str, path: str, source: str = "127.0.0.1") -> tuple[int, float]:
    started = time.monotonic()
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=5, source_address=(source, 0)
    )
    connection.request(method, path)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response.status, time.monotonic() - started


def loopback(first: int, count: int) -> list[str]:
    return [f"127.0.0.{n}" for n in range(first, first + count)]


def test_a_thousand_idle_connections_starve_neither_challenges_nor_healthz(
    tmp_path: Path, figure: Callable[[str], None]
) -> None:
    # Before: 64 connections at once, so the 65th, Swarm's health check, was closed unanswered.
    server = start(tmp_path, PATIENT)
    try:
        opened = time.monotonic()
        with idle_connections(server.port, loopback(2, 20), IDLE // 20) as held:
            opening = time.monotonic() - opened
            time.sleep(SWEEP_SECONDS + PER_CLIENT_GRACE_SECONDS)  # within every client's share
            answers = {
                "healthz": timed(server.port, "GET", "/healthz"),
                "challenge": timed(server.port, "GET", CHALLENGE),
                "challenge HEAD": timed(server.port, "HEAD", CHALLENGE),
                "challenge from an idle client": timed(server.port, "GET", CHALLENGE, "127.0.0.2"),
            }
            held_open = sum(still_open(connection) for connection in held)
        for what, (status, seconds) in answers.items():
            assert status == 200, what
            assert seconds < PROMPT_SECONDS, f"{what} took {seconds:.3f} s"
        assert held_open == IDLE, "20 clients of 50 each are within their share"
        figure(
            f"responder: {held_open} idle connections held (opened in {opening:.2f} s); "
            + ", ".join(f"{what} {seconds * 1000:.1f} ms" for what, (_, seconds) in answers.items())
        )
    finally:
        server.stop()


def test_one_client_keeps_only_its_share_and_its_new_connections_are_answered(
    tmp_path: Path, figure: Callable[[str], None]
) -> None:
    limits = replace(PATIENT, max_waiting_per_client=64)
    server = start(tmp_path, limits)
    try:
        with idle_connections(server.port, ["127.0.0.2"], IDLE) as held:
            flooding = [
                timed(server.port, "GET", "/healthz"),
                timed(server.port, "GET", "/healthz", "127.0.0.2"),
            ]
            deadline = time.monotonic() + 5
            while (held_open := sum(map(still_open, held))) > limits.max_waiting_per_client:
                assert time.monotonic() < deadline, f"{held_open} still held after 5 s"
                time.sleep(0.05)
            newest_kept = all(still_open(connection) for connection in held[-60:])
        assert all(status == 200 and seconds < PROMPT_SECONDS for status, seconds in flooding)
        assert held_open == limits.max_waiting_per_client
        assert newest_kept, "the oldest idle connections go first"
        figure(
            f"responder: one client opened {IDLE} idle connections, {held_open} kept; /healthz "
            + " and ".join(f"{seconds * 1000:.1f} ms" for _, seconds in flooding)
        )
    finally:
        server.stop()


def test_a_burst_of_whole_requests_from_one_address_is_all_answered(tmp_path: Path) -> None:
    # nginx forwards every CA and self-check request from its task's address: far more at once
    # than one client's share of idle connections must still all be answered.
    server = start(tmp_path, ResponderLimits(max_waiting_per_client=8))
    try:
        request = f"GET {CHALLENGE} HTTP/1.0\r\nHost: x\r\n\r\n".encode()
        burst = []
        for _ in range(200):
            connection = socket.create_connection(
                ("127.0.0.1", server.port), timeout=5, source_address=("127.0.0.3", 0)
            )
            connection.sendall(request)
            burst.append(connection)
        replies = []
        for connection in burst:
            with connection:
                reply = b""
                while data := connection.recv(65536):
                    reply += data
                replies.append(reply)
        assert all(reply.startswith(b"HTTP/1.0 200 ") for reply in replies)
        assert all(reply.endswith(b"\r\n\r\nanswer") for reply in replies)
    finally:
        server.stop()


def test_over_the_total_the_oldest_idle_connection_anywhere_goes(tmp_path: Path) -> None:
    server = start(tmp_path, replace(PATIENT, max_waiting=100))
    try:
        with idle_connections(server.port, loopback(2, 3), 50) as held:
            status, seconds = timed(server.port, "GET", "/healthz")
            time.sleep(0.2)
            kept = [still_open(connection) for connection in held]
        assert status == 200 and seconds < PROMPT_SECONDS
        assert sum(kept) == 99, "100 waiting at most, one of them the health check while it ran"
        assert kept[-99:] == [True] * 99
    finally:
        server.stop()


def test_a_connection_without_a_request_line_is_timed_out_first(tmp_path: Path) -> None:
    server = start(tmp_path, ResponderLimits(request_line_seconds=0.5, request_seconds=5))
    try:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as silent:
            reply = silent.recv(65536)
        assert reply.startswith(b"HTTP/1.0 408 ")
        assert 0.5 <= time.monotonic() - started < 1.5
        # A request line in time buys the rest of the request's time for its headers.
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as slow:
            slow.sendall(f"GET {CHALLENGE} HTTP/1.1\r\n".encode())
            for header in range(4):
                time.sleep(0.3)
                slow.sendall(b"X-Slow-%d: y\r\n" % header)
            slow.sendall(b"\r\n")
            reply = slow.recv(65536)
        assert reply.startswith(b"HTTP/1.0 200 ")
    finally:
        server.stop()


def test_the_waiting_room_leaves_file_descriptors_to_the_rest_of_the_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda _: (1024, 4096))
    assert waiting_room(4096) == 1024 - responder_module.FD_RESERVE
    assert waiting_room(100) == 100
    unlimited = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
    monkeypatch.setattr(resource, "getrlimit", lambda _: unlimited)
    assert waiting_room(4096) == 4096
