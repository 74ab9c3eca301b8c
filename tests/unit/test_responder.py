"""The HTTP-01 responder on a real socket: exactly the pending tokens, nothing else."""

import http.client
from collections.abc import Iterator
from pathlib import Path

import pytest

from certbotless.acme.challenges import ChallengeResponder, TokenStore

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
