"""Traefik's errors middleware (pkg/middlewares/customerrors) as the edge renders and serves
it: the page's query with Traefik's placeholders, errorRequestHeaders, nginxHeaders; and the
values that would write nginx syntax into the configuration, refused by name."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from certbotless.edge.error_pages import error_pages_location
from certbotless.edge.render import render_nginx_conf
from certbotless.edge.validation import validate_nginx_conf
from certbotless.labels.traefik.labels import traefik_claims
from certbotless.model import ErrorPages, LabelProblem, Route, ServiceInfo
from tests.support.edge_nginx import HOST, Echo, ServeEdge, answer, one_router
from tests.support.factories import CERTS_DIR, RESPONDER, certs_for

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None, reason="needs nginx")
M = "traefik.http.middlewares.m.errors."
# The service's error, which the page replaces.
DOWN: tuple[int, list[tuple[str, str]], str] = (503, [], "down\n")


def _labels(upstream: int, **options: str) -> dict[str, str]:
    """Router `r` for HOST with errors middleware `m`, whose pages `s` (the echo) gives."""
    errors = {f"{M}service": "s", f"{M}status": "503", f"{M}query": "/page"}
    errors.update({f"{M}{key}": value for key, value in options.items()})
    labels = one_router(upstream, errors)
    labels["traefik.http.routers.r.middlewares"] = "m"
    return labels


def _claims(labels: dict[str, str]) -> tuple[list[Route], list[LabelProblem]]:
    claims = traefik_claims([ServiceInfo("127.0.0.1", labels)])["127.0.0.1"]
    return list(claims.routes), list(claims.problems)


def _page_request(path: str) -> tuple[str, dict[str, str]]:
    """The path and headers the page's service was last asked with, beside `path`."""
    return next((seen, headers) for seen, headers in reversed(Echo.seen) if seen != path)


@pytest.fixture
def down() -> Iterator[None]:
    """The echo answers 503 at the paths the tests ask."""
    for path in ("/down", "/down/(x)?q=a%20b", "/down/{a}%41"):
        Echo.scripted[path] = DOWN
    yield
    for path in ("/down", "/down/(x)?q=a%20b", "/down/{a}%41"):
        Echo.scripted.pop(path, None)


def test_listed_and_nginx_headers_render_into_the_page_location() -> None:
    pages = ErrorPages("http://s:80/page?c={status}", (503,), True, ("X-Keep", "Host"),
                       (("X-Namespace", "default"), ("X-Keep", "ours")))  # fmt: skip
    location = error_pages_location(0, pages)
    assert "set $certbotless_page_status $status;" in location  # noted before `=` loses it
    assert "error_page 418 = @certbotless_errors_0_page;" in location
    assert "proxy_pass_request_headers off;" in location
    assert "proxy_set_header Host $http_host;" not in location  # the Host is the page's own
    assert 'if ($http_x_keep != "") { set $certbotless_page_header_1 "$http_x_keep, ours"; }' in (
        location
    )
    assert "proxy_set_header X-Namespace $certbotless_page_header_0;" in location
    assert "proxy_set_header X-Code $certbotless_page_status;" in location
    assert "set $error_page http://s:80/page?c=${certbotless_page_status};" in location


def test_entry_point_headers_are_traefiks_and_go_s_own_are_never_listed() -> None:
    pages = ErrorPages("http://s:80/page", (503,), False, ("X-Forwarded-Port", "Connection"),
                       (("X-Forwarded-Port", "1"), ("Host", "h")))  # fmt: skip
    location = error_pages_location(0, pages)
    # Traefik's entry point's port, which its value follows (a variable the location sets).
    assert location.index("set $certbotless_forwarded_port 80;") < location.index(
        'if ($certbotless_forwarded_port != "")'
    )
    assert "Connection" not in location and "proxy_set_header Host" not in location


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("errorRequestHeaders", "X-A;return 200", "not a header name the edge can forward"),
        ("errorRequestHeaders", "X-A, X_B", "'X_B' is not a header name"),
        ("nginxHeaders.X-A", 'x"; return 200 "', "nginxHeaders.<name> takes a header name"),
        ("nginxHeaders.X-A", "$remote_addr", "without '\"', '$' and '\\'"),
        ("nginxHeaders.X-A", "", "not empty"),
        ("query", "/page;return 200", "characters a URL cannot hold"),
        ("query", "/page${host}", "characters a URL cannot hold"),
        ("query", "/%zz?c={status}", "starts no %XX escape"),
    ],
)
def test_a_value_that_could_write_nginx_syntax_is_refused_by_name(
    option: str, value: str, words: str
) -> None:
    routes, problems = _claims(_labels(8080, **{option: value}))
    (problem,) = problems
    assert problem.label == f"{M}{option}" and words in problem.message
    assert "served without it" in problem.message
    assert routes and routes[0].error_pages is None


def test_url_and_nginx_headers_after_a_path_change_are_refused() -> None:
    labels = _labels(8080, query="/page?u={url}")
    labels["traefik.http.middlewares.cut.stripprefix.prefixes"] = "/api"
    labels["traefik.http.routers.r.middlewares"] = "cut,m"
    _, problems = _claims(labels)
    assert ["list errors before stripPrefix" in p.message for p in problems] == [True]


def test_what_traefik_reads_passes_nginx_t() -> None:
    labels = _labels(8080, query="500.html?u={url}&s={originalStatus}#frag",
                     errorRequestHeaders="X-Request-Id, X-Forwarded-Port, Connection",
                     **{"nginxHeaders.X-Namespace": "a b, c"})  # fmt: skip
    routes, problems = _claims(labels)
    assert problems == []
    pages = routes[0].error_pages
    assert pages is not None and pages.url.endswith("/500.html?u={url}&s={status}")
    assert validate_nginx_conf(render_nginx_conf(routes, certs_for(HOST), RESPONDER,
                                                 CERTS_DIR)) == ()  # fmt: skip


@pytest.mark.parametrize(
    ("path", "escaped"),
    [
        # Go's EscapedPath keeps a valid escaping as sent, the query as sent.
        ("/down/(x)?q=a%20b", "%2Fdown%2F%28x%29%3Fq%3Da%2520b"),
        # ...and writes one it does not take for valid ('{') anew from the decoded path.
        ("/down/{a}%41", "%2Fdown%2F%257Ba%257DA"),
    ],
)
def test_url_is_the_request_url_as_go_writes_it_query_escaped(
    upstream: int, edge: ServeEdge, down: None, path: str, escaped: str
) -> None:
    served = edge(_labels(upstream, query="/page?u={url}&c={status}"))
    status, _, _ = answer(served.port, path=path)
    assert status == 503
    asked, _ = _page_request(path)
    assert asked == f"/page?u=http%3A%2F%2F{HOST}{escaped}&c=503"


def test_only_listed_headers_reach_the_page(upstream: int, edge: ServeEdge, down: None) -> None:
    served = edge(_labels(upstream, errorRequestHeaders="X-Keep,Cookie"))
    sent = {"X-Keep": "1", "X-Drop": "2", "Cookie": "a=b", "Authorization": "Bearer x"}
    assert answer(served.port, path="/down", headers=sent)[0] == 503
    _, headers = _page_request("/down")
    assert (headers.get("x-keep"), headers.get("cookie")) == ("1", "a=b")
    assert "x-drop" not in headers and "authorization" not in headers
    assert headers["host"] == HOST


def test_nginx_headers_reach_the_page_whose_status_is_kept(
    upstream: int, edge: ServeEdge, down: None
) -> None:
    served = edge(_labels(upstream, **{"nginxHeaders.X-Namespace": "web"}))
    sent = {"Accept": "text/html", "X-Request-ID": "r1", "X-Namespace": "mine"}
    status, body, _ = answer(served.port, path="/down", headers=sent)
    assert (status, body) == (200, "/page -")  # the page's own answer
    _, headers = _page_request("/down")
    assert headers["x-code"] == "503" and headers["x-format"] == "text/html"
    assert headers["x-original-uri"] == "/down" and headers["x-request-id"] == "r1"
    assert headers["x-namespace"] == "mine, web"  # Go's CopyHeaders adds to the request's
