"""The access middlewares Traefik's labels introduce, answered by a real nginx running the
rendered configuration on loopback (random ports): basic auth 401/200, allowlist 403/200,
rate limit 429, strip prefix."""

from __future__ import annotations

import base64
import hashlib
import shutil
from collections.abc import Callable

import pytest

from tests.support.edge_nginx import HOST, ServeEdge, answer, get, one_router

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None, reason="needs nginx")
Serve = Callable[[dict[str, str]], int]  # labels → the port nginx serves them on
PASSWORD_HASH = "{SHA}" + base64.b64encode(hashlib.sha1(b"secret").digest()).decode()


@pytest.fixture
def serve(edge: ServeEdge) -> Serve:
    return lambda labels: edge(labels).port


M = "traefik.http.middlewares."


def test_basic_auth_answers_401_without_the_password_and_200_with_it(
    upstream: int, serve: Serve
) -> None:
    port = serve(one_router(upstream, {f"{M}auth.basicauth.users": f"ops:{PASSWORD_HASH}",
                                    f"{M}auth.basicauth.removeheader": "true"}))  # fmt: skip
    assert get(port)[0] == 401
    assert get(port, auth="ops:wrong")[0] == 401
    status, body = get(port, "/x", auth="ops:secret")
    assert (status, body) == (200, "/x -")  # the service does not see the password


def test_an_allowlist_lets_only_its_networks_in(upstream: int, serve: Serve) -> None:
    outside = serve(one_router(upstream, {f"{M}lan.ipallowlist.sourcerange": "10.0.0.0/8"}))
    inside = serve(one_router(upstream, {f"{M}lan.ipallowlist.sourcerange": "127.0.0.0/8"}))
    assert get(outside)[0] == 403
    assert get(inside)[0] == 200


def test_a_rate_limit_answers_429_past_the_burst(upstream: int, serve: Serve) -> None:
    port = serve(one_router(upstream, {f"{M}slow.ratelimit.average": "1",
                                    f"{M}slow.ratelimit.period": "1m",
                                    f"{M}slow.ratelimit.burst": "2"}))  # fmt: skip
    statuses = [get(port)[0] for _ in range(5)]
    assert statuses == [200, 200, 429, 429, 429]  # Traefik's bucket holds `burst`


def test_strip_prefix_hides_the_prefix_from_the_service(upstream: int, serve: Serve) -> None:
    port = serve(one_router(upstream, {f"{M}strip.stripprefix.prefixes": "/api"}, path="/api"))
    assert get(port, "/api/users?page=2") == (200, "/users?page=2 -")
    assert get(port, "/api") == (200, "/ -")


def test_method_and_header_matchers_answer_404_to_other_requests(
    upstream: int, serve: Serve
) -> None:
    labels = one_router(upstream, {})
    labels["traefik.http.routers.r.rule"] = (
        f"Host(`{HOST}`) && Method(`GET`, `HEAD`) && Headers(`X-Api`, `v2`)"
    )
    labels["traefik.http.routers.r.ruleSyntax"] = "v2"  # several methods, Headers
    port = serve(labels)
    assert get(port, headers={"X-Api": "v2"})[0] == 200
    assert get(port, headers={"X-Api": "v1"})[0] == 404
    assert get(port)[0] == 404
    assert get(port, method="POST", headers={"X-Api": "v2"})[0] == 404


def test_replace_path_regex_rewrites_the_path_and_keeps_the_query(
    upstream: int, serve: Serve
) -> None:
    moved = {
        f"{M}moved.replacepathregex.regex": "^/old/(.*)",
        f"{M}moved.replacepathregex.replacement": "/new/${1}",
    }
    port = serve(one_router(upstream, moved))
    assert get(port, "/old/a/b?page=2") == (200, "/new/a/b?page=2 -")
    assert get(port, "/other") == (200, "/other -")


def test_cors_echoes_listed_origins_and_answers_preflights_itself(
    upstream: int, serve: Serve
) -> None:
    cors = {
        f"{M}cors.headers.accesscontrolalloworiginlist": "https://app.example.com",
        f"{M}cors.headers.accesscontrolallowmethods": "GET,POST",
        f"{M}cors.headers.accesscontrolallowheaders": "Authorization",
        f"{M}cors.headers.accesscontrolmaxage": "600",
        f"{M}cors.headers.accesscontrolallowcredentials": "true",
        f"{M}cors.headers.addvaryheader": "true",
        f"{M}strip.stripprefix.prefixes": "/api",
    }
    labels = one_router(upstream, cors, path="/api")
    labels["traefik.http.routers.r.middlewares"] = "cors,strip"
    port = serve(labels)
    listed = {"Origin": "https://app.example.com"}
    status, body, headers = answer(port, "GET", "/api/x", listed)
    assert (status, body) == (200, "/x -")  # proxied, prefix stripped
    assert headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert headers["Access-Control-Allow-Credentials"] == "true"
    assert headers["Vary"] == "Origin"
    assert "Access-Control-Allow-Methods" not in headers  # preflights only
    status, _, headers = answer(port, "GET", "/api/x", {"Origin": "https://evil.test"})
    assert status == 200 and "Access-Control-Allow-Origin" not in headers
    asked = {**listed, "Access-Control-Request-Method": "POST"}
    status, body, headers = answer(port, "OPTIONS", "/api/x", asked)
    assert (status, body) == (200, "")  # answered by the edge, not the service
    assert headers["Access-Control-Allow-Methods"] == "GET,POST"  # joined as Traefik joins them
    assert headers["Access-Control-Allow-Headers"] == "Authorization"
    assert headers["Access-Control-Max-Age"] == "600"
    assert headers["Access-Control-Allow-Origin"] == "https://app.example.com"
