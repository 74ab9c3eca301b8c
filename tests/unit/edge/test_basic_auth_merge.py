"""basicAuth's users and usersFile together, merged as Traefik merges them (the labels' users
winning), asked of a real nginx on loopback: the secret's file is one certbotless never reads,
so nginx picks the file by the user's name."""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator

import pytest

from certbotless.edge.guards import access_directives
from certbotless.edge.mounts import htpasswd_secret_target
from certbotless.model import BasicAuth, Route
from tests.support.edge_nginx import HOST, Echo, echo_upstream, request, serve_routes, stop

needs_nginx = pytest.mark.skipif(shutil.which("nginx") is None, reason="needs nginx")
# openssl passwd -apr1 -salt abcdefgh <password>
OVERRIDDEN = "$apr1$abcdefgh$YLq3q5EPhOJoLEdzuBx0c/"
TEST2 = "$apr1$abcdefgh$n6io6ITw08nMoBPpjKXyg/"
TEST = "$apr1$abcdefgh$/cesMUEGhga5MgaTGywaW0"
OTHER = "$apr1$abcdefgh$Z2c9NiKlv6d.KgXK4n2DD/"
# The labels give test2 (password `overridden`) and a.b (`other`); the secret test (`test`),
# test2 (`test2`), axb (`other`) and Test2 (`test2`).
LABEL_USERS = (f"test2:{OVERRIDDEN}", f"a.b:{OTHER}")
SECRET = f"test:{TEST}\ntest2:{TEST2}\naxb:{OTHER}\nTest2:{TEST2}\n"


def _route(port: int) -> Route:
    auth = BasicAuth(LABEL_USERS, "traefik", secret="basic-users", user_header="X-User")
    return Route("127.0.0.1", (HOST,), port, redirect_to_https=False, basic_auth=auth)


def test_the_users_name_picks_the_file() -> None:
    text = access_directives(_route(8000))
    secret = htpasswd_secret_target("basic-users")
    assert f"set $certbotless_basic_users {secret};" in text
    assert 'if ($remote_user ~ "^test2$")' in text
    assert 'if ($remote_user ~ "^a\\\\.b$")' in text  # a regex's \. inside nginx's "…"
    assert "auth_basic_user_file $certbotless_basic_users;" in text
    labels_only = Route("127.0.0.1", (HOST,), 8000, basic_auth=BasicAuth(LABEL_USERS))
    one_file = access_directives(labels_only)
    assert "$certbotless_basic_users" not in one_file


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with echo_upstream() as upstream:
        secret = {htpasswd_secret_target("basic-users"): SECRET}
        scratch = tmp_path_factory.mktemp("merge") / "nginx"
        nginx, port, _ = serve_routes([_route(upstream)], scratch, extra=secret)
        try:
            yield port
        finally:
            stop(nginx)


def _ask(port: int, user: str = "", password: str = "") -> tuple[int, dict[str, str]]:
    credentials = base64.b64encode(f"{user}:{password}".encode()).decode()
    headers = [("Authorization", f"Basic {credentials}")] if user else []
    status, _, answered = request(port, headers=headers)
    return status, answered


@needs_nginx
@pytest.mark.parametrize(("user", "password"), [
    ("test", "test"),  # the secret's
    ("test2", "overridden"),  # the labels'
    ("a.b", "other"),
    ("axb", "other"),  # the secret's: the labels' a.b is no pattern
    ("Test2", "test2"),  # the secret's: names are compared with case
])  # fmt: skip
def test_merged_users_get_in(edge: int, user: str, password: str) -> None:
    assert _ask(edge, user, password)[0] == 200
    assert Echo.seen[-1][1].get("x-user") == user


@needs_nginx
@pytest.mark.parametrize(("user", "password"), [
    ("", ""),
    ("test2", "test2"),  # the secret's password of a user the labels give
    ("test", "wrong"),
    ("foo", "foo"),
    ("a.b", "wrong"),
])  # fmt: skip
def test_others_get_the_realms_challenge(edge: int, user: str, password: str) -> None:
    status, answered = _ask(edge, user, password)
    assert status == 401
    assert answered["WWW-Authenticate"] == 'Basic realm="traefik"'
