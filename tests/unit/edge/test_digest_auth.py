"""digestAuth's nonces at the edge (njs, edge/njs/certbotless.js), asked of a real nginx on
loopback: stateless nonces that another task with the edge's key accepts, that expire (a
challenge with stale="true", so a browser asks again without prompting), and that no other key
makes; an unknown user never gets in (go-http-auth would hash an empty secret for them); the
nonce count is not tracked (a request may be replayed while its nonce lasts)."""

from __future__ import annotations

import hashlib
import hmac
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from certbotless.edge.deployer import digest_key_references
from certbotless.edge.mounts import DIGEST_KEY_TARGET
from certbotless.edge.njs import NJS, local_njs_features
from certbotless.model import BasicAuth, Route
from certbotless.swarm.api import Swarm
from certbotless.swarm.store import CertStore
from tests.support.digest_client import authorization, challenge_pairs
from tests.support.edge_nginx import HOST, echo_upstream, request, serve_routes, stop
from tests.support.fakes import SecretsSwarm

needs_njs = pytest.mark.skipif(shutil.which("nginx") is None or NJS not in local_njs_features(),
                               reason="needs nginx with njs")  # fmt: skip
KEY = "one edge's key\n"
USERS = ("test:traefik:a2688e031edb4be6a3797f3882655c05",)  # test's password: test
RIGHT = {"method": "GET", "url": f"http://{HOST}/", "digest": ["test", "test"]}


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    with echo_upstream() as port:
        yield port


def _route(port: int) -> Route:
    auth = BasicAuth(USERS, "traefik", user_header="X-User", digest=True)
    return Route("127.0.0.1", (HOST,), port, redirect_to_https=False, basic_auth=auth)


class Task:
    """One nginx task of the edge, with `key` as the edge's nonce key."""

    def __init__(self, upstream: int, scratch: Path, key: str = KEY) -> None:
        self.scratch = scratch
        self.nginx, self.port, _ = serve_routes([_route(upstream)], scratch,
                                                extra={DIGEST_KEY_TARGET: key})  # fmt: skip

    def ask(self, path: str = "/", auth: str = "") -> tuple[int, dict[str, str]]:
        headers = [("Authorization", auth)] if auth else []
        status, _, answered = request(self.port, path, headers=headers)
        return status, answered

    def challenge(self) -> dict[str, str]:
        status, answered = self.ask()
        assert status == 401
        return challenge_pairs(answered["WWW-Authenticate"])


@pytest.fixture
def task(upstream: int, tmp_path: Path) -> Iterator[Task]:
    one = Task(upstream, tmp_path / "a")
    yield one
    stop(one.nginx)


@needs_njs
def test_a_nonce_of_one_task_is_taken_by_another_with_the_key(
    task: Task, upstream: int, tmp_path: Path
) -> None:
    other, stranger = Task(upstream, tmp_path / "b"), Task(upstream, tmp_path / "c", "other\n")
    try:
        answer = authorization(RIGHT, task.challenge())
        assert task.ask(auth=answer)[0] == 200
        assert other.ask(auth=answer)[0] == 200
        assert task.ask(auth=answer)[0] == 200  # the nonce count is not tracked: a replay
        assert stranger.ask(auth=answer)[0] == 401  # another key: not its opaque nor nonce
    finally:
        stop(other.nginx)
        stop(stranger.nginx)


@needs_njs
def test_an_expired_nonce_is_stale_and_a_forged_one_refused(task: Task) -> None:
    challenge = task.challenge()
    old = f"{int(time.time()) - 601:x}"
    text = f"nonce:traefik:{old}"
    signed = hmac.new(KEY.encode(), text.encode(), hashlib.sha256).hexdigest()[:32]
    expired = {**challenge, "nonce": f"{old}-{signed}"}
    status, answered = task.ask(auth=authorization(RIGHT, expired))
    assert status == 401
    assert 'stale="true"' in answered["WWW-Authenticate"]
    forged = {**challenge, "nonce": f"{int(time.time()):x}-{'0' * 32}"}
    status, answered = task.ask(auth=authorization(RIGHT, forged))
    assert status == 401
    assert "stale" not in answered["WWW-Authenticate"]


@needs_njs
def test_an_unknown_user_never_gets_in(task: Task) -> None:
    """go-http-auth hashes an empty secret for a user it does not know; the edge refuses them."""
    challenge = task.challenge()
    nonce, nc, cnonce = challenge["nonce"], "00000001", "c"
    ha2 = hashlib.md5(b"GET:/", usedforsecurity=False).hexdigest()
    response = hashlib.md5(f":{nonce}:{nc}:{cnonce}:auth:{ha2}".encode(),
                           usedforsecurity=False).hexdigest()  # fmt: skip
    forged = (f'Digest username="nobody", realm="traefik", nonce="{nonce}", uri="/", '
              f'qop=auth, nc={nc}, cnonce="{cnonce}", response="{response}", '
              f'opaque="{challenge["opaque"]}"')  # fmt: skip
    assert task.ask(auth=forged)[0] == 401


@needs_njs
def test_the_digest_may_name_a_path_the_request_is_under(task: Task) -> None:
    """go-http-auth's lenient check: the digest's uri a prefix of the request's path."""
    answer = authorization(RIGHT, task.challenge())
    assert task.ask("/sub/page", answer)[0] == 200
    elsewhere = authorization({**RIGHT, "target": "/sub"}, task.challenge())
    assert task.ask("/other", elsewhere)[0] == 401


def test_the_key_is_made_once_and_mounted_for_digest_routes_only() -> None:
    swarm = SecretsSwarm(32)
    store = CertStore(cast(Swarm, swarm))
    plain = Route("app", (HOST,), 80)
    assert digest_key_references([plain], store) == []
    assert swarm.made == []
    first = digest_key_references([plain, _route(80)], store)
    assert [(r.object_name, r.target, r.mode) for r in first] == [
        ("cbl-digest-nonce-key", DIGEST_KEY_TARGET, 0o444)]  # fmt: skip
    assert digest_key_references([_route(80)], store) == first
    assert len(swarm.made) == 1
