"""forwardAuth's forwardBody and maxBodySize, asked of a real nginx on loopback (njs reads the
body before the route's auth subrequest, which then carries it): the auth server gets the body
(with GET, as Traefik asks it), the service gets it too, a body over maxBodySize is Traefik's
401 without a body and reaches neither, and a refusal is the auth server's own answer."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import pytest

from certbotless.edge.locations import route_locations
from certbotless.edge.njs import NJS, local_njs_features
from certbotless.forward_auth_options import ForwardAuthOptions
from certbotless.model import ErrorPages, Route
from tests.support.edge_nginx import (
    HOST,
    LOCAL_NGINX,
    NginxBinary,
    request,
    serve_routes,
    serving,
    stop,
)

pytestmark = pytest.mark.skipif(
    shutil.which("nginx") is None or NJS not in local_njs_features(), reason="needs nginx with njs"
)


def test_the_route_reads_the_body_then_asks_by_njs_not_auth_request() -> None:
    options = ForwardAuthOptions(("X-Auth-User",), forwards_body=True, max_request_body=4)
    route = Route("127.0.0.1", (HOST,), 80, redirect_to_https=False,
                  auth_url="http://auth:8000/check", auth_options=options)  # fmt: skip
    text = "".join(route_locations("k", [route], plain_http=True, has_cert=False)[1])
    assert "auth_request " not in text
    assert "js_content certbotless.forwardBodyRead;" in text
    assert (
        "client_max_body_size 4;" in text and "error_page 413 = @certbotless_body_over_0;" in text
    )
    assert "proxy_pass_request_body on;" in text and 'Content-Length ""' not in text
    assert "proxy_set_header X-Auth-User $certbotless_body_header_0;" in text


class BodyEcho(BaseHTTPRequestHandler):
    """Records each request's path, method and body; /auth/deny refuses (403 `nope`), /auth/ok
    lets through with X-Auth-User, anything else is the service's 200."""

    seen: ClassVar[list[tuple[str, str, bytes]]] = []
    users: ClassVar[list[str]] = []  # the X-Auth-User each request reached with ("" for none)

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        BodyEcho.seen.append((self.path, self.command, body))
        BodyEcho.users.append(self.headers.get("X-Auth-User", ""))
        status, text = (403, b"nope") if self.path.startswith("/auth/deny") else (200, b"ok")
        self.send_response(status)
        if self.path.startswith("/auth/ok"):
            self.send_header("X-Auth-User", "alice")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def backend() -> Iterator[int]:
    with serving(BodyEcho) as port:
        yield port


def _edge(
    backend: int, scratch: Path, auth: str, limit: int | None, binary: NginxBinary
) -> tuple[subprocess.Popen[bytes], int]:
    """An edge whose route /x (beside another on /, so that /x is reached by name) asks `auth`
    with the body; `auth` on port 1 (nothing listens): an auth server that cannot be reached."""
    options = ForwardAuthOptions(("X-Auth-User",), keeps_method=auth == "method",
                                 forwards_body=True, max_request_body=limit)  # fmt: skip
    address = f"http://127.0.0.1:{1 if auth == 'down' else backend}/auth/{auth}"
    address = address.replace("/auth/method", "/auth/ok")
    pages = ErrorPages(f"http://127.0.0.1:{backend}/page/{{status}}", (403,))
    route = Route("127.0.0.1", (HOST,), backend, path="/x", redirect_to_https=False,
                  auth_url=address.replace("paged", "deny"), auth_options=options,
                  error_pages=pages if auth == "paged" else None)  # fmt: skip
    other = Route("127.0.0.1", (HOST,), backend, redirect_to_https=False)
    nginx, port, _ = serve_routes([route, other], scratch, binary=binary)
    return nginx, port


@pytest.fixture(scope="module", params=["this machine's nginx", "nginx 1.30"])
def edges(
    request: pytest.FixtureRequest, backend: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, int]]:
    """Edges by name: `any` (no limit), `four` (maxBodySize=4), `zero`, `deny` (refused),
    `down` (the auth server cannot be reached), `paged` (refused, and error pages for 403),
    `method` (preserveRequestMethod); on
    this machine's nginx (njs 0.7.9) and the edge image's generation (the rig's forky root)."""
    binary = LOCAL_NGINX
    if request.param == "nginx 1.30":
        binary = NginxBinary(Path(request.getfixturevalue("rig_env")["CBL_NGINX_NEWEST_ROOT"]))
    scratch = tmp_path_factory.mktemp("forward-body")
    made = {name: _edge(backend, scratch / name, auth, limit, binary) for name, auth, limit in (
        ("any", "ok", None), ("four", "ok", 4), ("zero", "ok", 0), ("deny", "deny", None),
        ("down", "down", None), ("paged", "paged", None), ("method", "method", None),
    )}  # fmt: skip
    try:
        yield {name: port for name, (_, port) in made.items()}
    finally:
        for nginx, _ in made.values():
            stop(nginx)


def _post(port: int, body: bytes, chunked: bool = False) -> tuple[int, str, dict[str, str]]:
    BodyEcho.seen.clear()
    BodyEcho.users.clear()
    if chunked:
        sent = (f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n") if body else b"0\r\n\r\n"
        return request(port, "/x", "POST", [("Transfer-Encoding", "chunked")], body=sent)
    return request(port, "/x", "POST", [("Content-Length", str(len(body)))], body=body)


@pytest.mark.parametrize("chunked", [False, True])
def test_the_auth_server_and_the_service_get_the_body(edges: dict[str, int], chunked: bool) -> None:
    status, text, _ = _post(edges["any"], b"hello", chunked)
    assert (status, text) == (200, "ok")
    assert BodyEcho.seen == [("/auth/ok", "GET", b"hello"), ("/x", "POST", b"hello")]
    assert BodyEcho.users == ["", "alice"]  # authResponseHeaders: the auth answer's


def test_a_request_without_a_body_is_asked_without_one(edges: dict[str, int]) -> None:
    BodyEcho.seen.clear()
    assert request(edges["any"], "/x")[0] == 200
    assert BodyEcho.seen == [("/auth/ok", "GET", b""), ("/x", "GET", b"")]


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_over_max_body_size_is_a_401_without_a_body(
    edges: dict[str, int], chunked: bool
) -> None:
    status, text, headers = _post(edges["four"], b"hello", chunked)
    assert (status, text) == (401, "")
    assert "Content-Type" not in headers
    assert BodyEcho.seen == []  # neither the auth server nor the service was asked
    assert _post(edges["four"], b"hell", chunked)[0] == 200
    assert BodyEcho.seen[0] == ("/auth/ok", "GET", b"hell")


@pytest.mark.parametrize("chunked", [False, True])
def test_max_body_size_zero_takes_only_an_empty_body(edges: dict[str, int], chunked: bool) -> None:
    assert _post(edges["zero"], b"h", chunked)[:2] == (401, "")
    assert BodyEcho.seen == []
    assert _post(edges["zero"], b"", chunked)[0] == 200


def test_a_refusal_is_the_auth_servers_answer(edges: dict[str, int]) -> None:
    status, text, _ = _post(edges["deny"], b"hello")
    assert (status, text) == (403, "nope")
    # nginx asks once more for the refusal's answer (guards.auth_answer_locations), body too.
    assert BodyEcho.seen == [("/auth/deny", "GET", b"hello")] * 2


def test_an_auth_server_that_cannot_be_reached_is_a_500(edges: dict[str, int]) -> None:
    assert _post(edges["down"], b"hello")[0] == 500
    assert BodyEcho.seen == []


def test_a_refusal_the_routes_error_pages_replace_is_their_page(edges: dict[str, int]) -> None:
    status, text, _ = _post(edges["paged"], b"hello")
    assert (status, text) == (403, "ok")  # the page's service's own answer, at /page/403
    assert [(path, body) for path, _, body in BodyEcho.seen] == [
        ("/auth/deny", b"hello"),
        ("/page/403", b""),
    ]


def test_a_body_in_a_temporary_file_reaches_both(edges: dict[str, int]) -> None:
    """Over client_body_buffer_size (16k), nginx keeps the body in a file: sent from there."""
    large = bytes(range(256)) * 400  # 100 KiB, every byte value
    assert _post(edges["any"], large)[0] == 200
    assert BodyEcho.seen == [("/auth/ok", "GET", large), ("/x", "POST", large)]


def test_preserve_request_method_asks_with_the_requests_method(edges: dict[str, int]) -> None:
    assert _post(edges["method"], b"hello")[0] == 200
    assert BodyEcho.seen[0] == ("/auth/ok", "POST", b"hello")
