"""forwardAuth's maxResponseBodySize on a real nginx: Traefik reads at most that many bytes of
the auth server's answer body, and answers a longer one with a 401 of its own, without a body,
whether the auth server let the request through or not (pkg/middlewares/auth/forward.go:
readResponseBodyBytes, then `rw.WriteHeader(http.StatusUnauthorized)` before anything else).
njs measures the body (edge/njs.py, measured_auth_locations), with a Content-Length, chunked,
or up to the connection's end."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

import pytest

from certbotless.edge.njs import needs_njs, without_njs
from certbotless.labels.traefik.labels import traefik_claims
from certbotless.model import ServiceInfo
from tests.support.edge_nginx import ServeEdge, answer, one_router, serving

M = "traefik.http.middlewares.fa.forwardauth."


class _AuthServer(BaseHTTPRequestHandler):
    """Answers as its query says: `status`, `size` bytes of body, `framing` (`length`: with a
    Content-Length; `chunked`; `close`: the body ends with the connection, HTTP/1.0)."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        asked = parse_qs(urlsplit(self.headers.get("X-Forwarded-Uri", "")).query)
        status = int(asked.get("status", ["200"])[0])
        body = b"b" * int(asked.get("size", ["0"])[0])
        framing = asked.get("framing", ["length"])[0]
        if framing == "close":
            self.protocol_version = "HTTP/1.0"
        self.send_response(status)
        self.send_header("X-Auth-User", "ada")
        self.send_header("WWW-Authenticate", 'Basic realm="auth"')
        if status == 302:
            self.send_header("Location", "https://login.example.test/")
        if framing == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(body), 1000):
                part = body[start : start + 1000]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        if framing == "length":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if framing == "close":
            self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def auth_server() -> Iterator[int]:
    with serving(_AuthServer) as port:
        yield port


def _ask(port: int, path: str) -> tuple[int, dict[str, str], str]:
    """(status, headers by lowercase name, body) of the edge's answer."""
    status, body, headers = answer(port, "GET", path)
    return status, {name.lower(): value for name, value in headers.items()}, body


def _limited(upstream: int, auth: int, limit: str, **more: str) -> dict[str, str]:
    labels = {f"{M}address": f"http://127.0.0.1:{auth}/check", f"{M}maxresponsebodysize": limit,
              f"{M}authresponseheaders": "X-Auth-User"}  # fmt: skip
    return one_router(upstream, labels | {f"{M}{key}": value for key, value in more.items()})


needs_nginx = pytest.mark.skipif(shutil.which("nginx") is None, reason="needs nginx")


@needs_nginx
@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
def test_a_body_up_to_the_limit_lets_the_request_through_a_longer_one_is_a_bare_401(
    upstream: int, auth_server: int, edge: ServeEdge, framing: str
) -> None:
    port = edge(_limited(upstream, auth_server, "10")).port
    status, headers, body = _ask(port, f"/p?size=10&framing={framing}")
    assert (status, body.split(" ")[0]) == (200, f"/p?size=10&framing={framing}")
    status, headers, body = _ask(port, f"/p?size=11&framing={framing}")
    assert (status, body) == (401, "")
    assert "www-authenticate" not in headers and "content-type" not in headers  # as Go's 401


@needs_nginx
def test_a_refusal_within_the_limit_is_the_auth_servers_answer_and_over_it_a_bare_401(
    upstream: int, auth_server: int, edge: ServeEdge
) -> None:
    port = edge(_limited(upstream, auth_server, "5")).port
    status, headers, body = _ask(port, "/p?status=403&size=5&framing=chunked")
    assert (status, body, headers["x-auth-user"]) == (403, "bbbbb", "ada")
    status, headers, body = _ask(port, "/p?status=302&size=3")
    assert (status, headers["location"]) == (302, "https://login.example.test/")
    for refused in ("/p?status=403&size=6", "/p?status=401&size=9000&framing=chunked"):
        status, headers, body = _ask(port, refused)
        assert (status, body) == (401, ""), refused
        assert "x-auth-user" not in headers and "www-authenticate" not in headers


@needs_nginx
def test_a_body_over_the_limit_is_a_401_before_the_signin_redirect(
    upstream: int, auth_server: int, edge: ServeEdge
) -> None:
    labels = _limited(upstream, auth_server, "4", authsigninurl="https://signin.example.test/")
    port = edge(labels).port
    assert _ask(port, "/p?status=401&size=4")[0] == 302
    assert _ask(port, "/p?status=401&size=5")[::2] == (401, "")


@needs_nginx
def test_a_zero_limit_lets_only_an_empty_body_through_and_a_large_body_is_measured_whole(
    upstream: int, auth_server: int, edge: ServeEdge
) -> None:
    port = edge(_limited(upstream, auth_server, "0")).port
    assert _ask(port, "/p?size=0")[0] == 200
    assert _ask(port, "/p?size=1&framing=chunked")[0] == 401
    port = edge(_limited(upstream, auth_server, "2000000")).port
    assert _ask(port, "/p?size=2000000&framing=chunked")[0] == 200  # no temporary file
    assert _ask(port, "/p?size=2000001")[::2] == (401, "")


@needs_nginx
def test_an_auth_server_that_cannot_be_reached_is_a_500_with_a_limit_as_without(
    upstream: int, auth_server: int, edge: ServeEdge
) -> None:
    # nginx's own 502 page is no auth answer to measure; the auth server's own 502 is.
    with serving(_AuthServer) as gone:
        pass
    assert _ask(edge(_limited(upstream, gone, "10")).port, "/p")[0] == 500
    port = edge(_limited(upstream, auth_server, "10")).port
    assert _ask(port, "/p?status=502&size=11")[::2] == (401, "")
    assert _ask(port, "/p?status=502&size=10")[::2] == (502, "b" * 10)


def test_no_limit_needs_no_njs_and_a_limit_that_is_no_number_is_refused_by_name() -> None:
    for unlimited in ("-1", "-42", ""):
        [route] = traefik_claims([ServiceInfo("app", _limited(80, 81, unlimited))])["app"].routes
        assert route.auth_options.max_answer_body is None and not needs_njs(route)
    claims = traefik_claims([ServiceInfo("app", _limited(80, 81, "1kb"))])["app"]
    [problem] = claims.problems
    assert claims.routes == () and "maxResponseBodySize" in problem.message


def test_an_edge_without_njs_refuses_a_limited_forward_auth_by_name() -> None:
    [route] = traefik_claims([ServiceInfo("app", _limited(80, 81, "100"))])["app"].routes
    assert route.auth_options.max_answer_body == 100 and needs_njs(route)
    kept, [problem] = without_njs(
        [route, replace(route, service="other", auth_url=None)], frozenset()
    )
    assert [r.service for r in kept] == ["other"]
    assert "maxResponseBodySize" in problem.label and "njs" in problem.message
