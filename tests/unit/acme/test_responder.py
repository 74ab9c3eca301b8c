"""The HTTP-01 responder on a real socket: exactly the pending tokens, nothing else."""

import contextlib
import http.client
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from certbotless.acme.challenges import TokenStore
from certbotless.acme.responder import ChallengeResponder, ResponderLimits

TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"


@pytest.fixture
def responder(tmp_path: Path) -> Iterator[tuple[TokenStore, int]]:
    tokens = TokenStore(tmp_path / "challenges")
    server = ChallengeResponder(tokens, "127.0.0.1", 0)
    server.start()
    yield tokens, server.port
    server.stop()


def get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.request("GET", path)
    response = connection.getresponse()
    return response.status, response.read()


def test_pending_token_is_answered_and_removed_token_is_not(
    responder: tuple[TokenStore, int],
) -> None:
    tokens, port = responder
    tokens.put(TOKEN, TOKEN + ".thumbprint")
    assert get(port, f"/.well-known/acme-challenge/{TOKEN}") == (
        200,
        (TOKEN + ".thumbprint").encode(),
    )
    tokens.remove(TOKEN)
    assert get(port, f"/.well-known/acme-challenge/{TOKEN}")[0] == 404


@pytest.mark.parametrize(
    "path",
    [
        "/.well-known/acme-challenge/../../etc/passwd",
        "/.well-known/acme-challenge/%2e%2e%2fetc%2fpasswd",
        "/.well-known/acme-challenge/" + "a" * 500,
        "/.well-known/acme-challenge/short",
        "/.well-known/acme-challenge/" + TOKEN + "!",
        "/etc/passwd",
    ],
)
def test_hostile_paths_are_404(responder: tuple[TokenStore, int], path: str) -> None:
    tokens, port = responder
    tokens.put(TOKEN, "secret-answer")
    status, body = get(port, path)
    assert status == 404
    assert b"secret-answer" not in body and b"root:" not in body


def test_token_store_refuses_malformed_tokens(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="malformed"):
        TokenStore(tmp_path).put("../escape", "x")


def test_a_token_two_orders_share_stays_until_the_last_is_done(tmp_path: Path) -> None:
    # Two orders for one name get the same authorization, so the same token, from the CA.
    tokens = TokenStore(tmp_path)
    tokens.put(TOKEN, "answer")
    tokens.put(TOKEN, "answer")
    tokens.remove(TOKEN)
    assert tokens.get(TOKEN) == "answer", "the other order still waits for the CA"
    tokens.remove(TOKEN)
    assert tokens.get(TOKEN) is None
    assert not any(tmp_path.iterdir())


def test_token_users_are_counted_safely_across_threads(tmp_path: Path) -> None:
    tokens = TokenStore(tmp_path)
    tokens.put(TOKEN, "answer")  # held throughout by one more user
    start = threading.Barrier(8)

    def order() -> None:
        start.wait()
        for _ in range(200):
            tokens.put(TOKEN, "answer")
            tokens.remove(TOKEN)

    workers = [threading.Thread(target=order) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert tokens.get(TOKEN) == "answer"
    tokens.remove(TOKEN)
    assert tokens.get(TOKEN) is None


@pytest.fixture
def strict_responder(tmp_path: Path) -> Iterator[tuple[TokenStore, int]]:
    tokens = TokenStore(tmp_path / "challenges")
    server = ChallengeResponder(
        tokens, "127.0.0.1", 0, ResponderLimits(max_request_bytes=4096, request_seconds=1)
    )
    server.start()
    yield tokens, server.port
    server.stop()


def raw_exchange(port: int, chunks: list[bytes], pause: float = 0.0) -> bytes:
    """Send `chunks` (`pause` s apart), then read until the responder closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        for chunk in chunks:
            connection.sendall(chunk)
            time.sleep(pause)
        reply = b""
        while data := connection.recv(65536):
            reply += data
    return reply


def status_of(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1])


def test_a_keep_alive_client_is_answered_then_disconnected(
    strict_responder: tuple[TokenStore, int],
) -> None:
    # An idle keep-alive connection would hold one of the responder's few slots.
    tokens, port = strict_responder
    tokens.put(TOKEN, "answer")
    request = (
        f"GET /.well-known/acme-challenge/{TOKEN} HTTP/1.1\r\n"
        "Host: x\r\nConnection: keep-alive\r\n\r\n"
    ).encode()
    started = time.monotonic()
    reply = raw_exchange(port, [request])  # returns only once the responder has closed
    assert time.monotonic() - started < 0.5, "closed at once, not when the time budget ran out"
    head, _, body = reply.partition(b"\r\n\r\n")
    assert status_of(reply) == 200 and body == b"answer"
    assert b"\r\nConnection: close" in head


def test_huge_headers_are_refused_with_431(strict_responder: tuple[TokenStore, int]) -> None:
    _, port = strict_responder
    many = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"a" * 200) for i in range(50))
    reply = raw_exchange(port, [b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n"])
    assert status_of(reply) == 431
    one_long_line = b"GET /healthz HTTP/1.1\r\nX-Long: " + b"b" * 70000 + b"\r\n\r\n"
    assert status_of(raw_exchange(port, [one_long_line])) == 431


def test_stalled_client_gets_408_when_its_time_is_up(
    strict_responder: tuple[TokenStore, int],
) -> None:
    tokens, port = strict_responder
    tokens.put(TOKEN, "answer")
    started = time.monotonic()
    reply = raw_exchange(port, [b"GET /.well-kn", b"own/acme-"], pause=0.3)
    assert status_of(reply) == 408
    assert 1.0 <= time.monotonic() - started < 3


def test_trickling_client_is_cut_off_at_the_deadline(
    strict_responder: tuple[TokenStore, int],
) -> None:
    _, port = strict_responder
    request = f"GET /.well-known/acme-challenge/{TOKEN} HTTP/1.1\r\nHost: x\r\n".encode()
    # One byte every 0.1 s would take 7 s; the responder allows 1 s in all.
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        with contextlib.suppress(OSError):
            for byte in request:
                connection.sendall(bytes([byte]))
                time.sleep(0.1)
                if connection.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK):
                    break
        reply = b""
        with contextlib.suppress(OSError):
            reply = connection.recv(65536)
    assert time.monotonic() - started < 3, "the responder must not wait for the whole request"
    assert reply == b"" or status_of(reply) == 408


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "TRACE", "FOO"])
def test_methods_other_than_get_and_head_are_405(
    strict_responder: tuple[TokenStore, int], method: str
) -> None:
    _, port = strict_responder
    reply = raw_exchange(port, [f"{method} /healthz HTTP/1.1\r\nHost: x\r\n\r\n".encode()])
    assert status_of(reply) == 405


def test_garbage_request_lines_are_400(strict_responder: tuple[TokenStore, int]) -> None:
    _, port = strict_responder
    assert status_of(raw_exchange(port, [b"\x16\x03\x01 hello tls\r\n\r\n"])) == 400


def test_no_file_outside_the_token_store_is_ever_read(
    responder: tuple[TokenStore, int], tmp_path: Path
) -> None:
    _, port = responder
    (tmp_path / "secret.txt").write_text("root:x:0:0")
    for path in [
        "/.well-known/acme-challenge/../secret.txt",
        "/.well-known/acme-challenge/..%2fsecret.txt",
        "/.well-known/acme-challenge/" + "../" * 10 + "etc/passwd",
        "/.well-known/acme-challenge/secret.txt",
    ]:
        status, body = get(port, path)
        assert status == 404 and b"root:" not in body


def test_responder_still_answers_after_hostile_traffic(
    strict_responder: tuple[TokenStore, int],
) -> None:
    tokens, port = strict_responder
    raw_exchange(port, [b"GET /" + b"x" * 100000 + b" HTTP/1.1\r\n\r\n"])
    raw_exchange(port, [b"\x00\xff" * 100])
    tokens.put(TOKEN, "still-here")
    assert get(port, f"/.well-known/acme-challenge/{TOKEN}") == (200, b"still-here")
    head = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    head.request("HEAD", f"/.well-known/acme-challenge/{TOKEN}")
    response = head.getresponse()
    assert (response.status, response.read()) == (200, b"")


def test_tokens_written_by_another_process_are_served(
    responder: tuple[TokenStore, int],
) -> None:
    # The `docker exec … certbotless issue` path: a second process shares the token directory.
    tokens, port = responder
    writer = (
        "import sys; from pathlib import Path; "
        "from certbotless.acme.challenges import TokenStore; "
        "TokenStore(Path(sys.argv[1])).put(sys.argv[2], 'from-another-process')"
    )
    subprocess.run([sys.executable, "-c", writer, str(tokens.directory), TOKEN], check=True)
    assert get(port, f"/.well-known/acme-challenge/{TOKEN}") == (200, b"from-another-process")


def test_healthz_says_why_the_daemon_is_unhealthy(tmp_path: Path) -> None:
    problem: list[str | None] = [None]
    server = ChallengeResponder(
        TokenStore(tmp_path / "challenges"), "127.0.0.1", 0, health=lambda: problem[0]
    )
    server.start()
    try:
        assert get(server.port, "/healthz") == (200, b"ok\n")
        problem[0] = "a pass has been running for 31 min"
        assert get(server.port, "/healthz") == (503, b"a pass has been running for 31 min\n")
    finally:
        server.stop()
