"""Traefik's replacePathRegex where nginx's rewrite cannot do it (every match, any template),
done by njs (edge/njs.py) on a real nginx: each request checks what Traefik's Go would give."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest

from certbotless.edge.njs import ALL_FEATURES, JS_TARGET, NJS_MODULE, without_njs
from certbotless.edge.render import render_nginx_conf
from certbotless.labels.traefik.go_template import njs_template
from certbotless.labels.traefik.labels import traefik_claims
from certbotless.model import Route, ServiceInfo
from tests.support.edge_nginx import Echo, ServeEdge, one_router, request
from tests.support.factories import RESPONDER

M = "traefik.http.middlewares.rp.replacepathregex."


def _replacing(upstream: int, regex: str, replacement: str) -> dict[str, str]:
    return one_router(upstream, {f"{M}regex": regex, f"{M}replacement": replacement})


def _replaced_path_header(path: str) -> str | None:
    return next(seen.get("x-replaced-path") for got, seen in reversed(Echo.seen) if got == path)


@pytest.mark.skipif(shutil.which("nginx") is None, reason="needs nginx")
def test_every_match_is_replaced_as_gos_replace_all_string(upstream: int, edge: ServeEdge) -> None:
    port = edge(_replacing(upstream, "/(?P<w>[a-z]+)", "/<${w}>")).port
    assert request(port, "/ab/cd?q=1")[:2] == (200, "/<ab>/<cd>?q=1 -")
    assert _replaced_path_header("/<ab>/<cd>?q=1") == "/ab/cd"
    # Go's template: `$1x` is the group named 1x (none: empty), `$$` a dollar.
    port = edge(_replacing(upstream, "b", "$1x$$")).port
    assert request(port, "/abcb")[:2] == (200, "/a$c$ -")
    # The path as written: an escape is not its character; one the replacement leaves broken
    # is Traefik's 500.
    port = edge(_replacing(upstream, "(?i)x", "%2")).port
    assert request(port, "/a%2Fb")[:2] == (200, "/a%2Fb -")
    assert _replaced_path_header("/a%2Fb") is None
    assert request(port, "/X")[0] == 500


@pytest.mark.skipif(shutil.which("nginx") is None, reason="needs nginx")
def test_an_empty_match_after_a_match_is_not_replaced(upstream: int, edge: ServeEdge) -> None:
    port = edge(_replacing(upstream, "b*", "-")).port
    assert request(port, "/abc")[:2] == (200, "/-/-a-c- -")  # JS's replace gives -/-a--c-


@pytest.mark.parametrize(
    ("go", "njs"),
    [("/x/$1", "/x/${1}"), ("${1}y$1y", "${1}y"), ("${name}-$2-$9", "${1}-${2}-"),
     ("a$-b$", "a$$-b$$"), ("$$1", "$$1"), ("$0", "${0}")],
)  # fmt: skip
def test_gos_templates_are_written_with_group_numbers(go: str, njs: str) -> None:
    assert njs_template(go, 2, [("name", 1)]) == njs


def test_an_anchored_regex_stays_nginxs_rewrite_and_loads_no_module() -> None:
    [route] = traefik_claims([ServiceInfo("app", _replacing(8000, "^/a/(.*)", "/b/$1"))])[
        "app"
    ].routes
    assert not route.replace_path_everywhere
    files = render_nginx_conf([route], {}, RESPONDER, "/certs")
    assert JS_TARGET not in files and NJS_MODULE not in "".join(files.values())


def test_an_edge_without_njs_refuses_the_routes_that_need_it_by_name() -> None:
    plain = Route("app", ("a.example.test",), 80)
    needing = replace(plain, service="other", replace_path=("b", "c"),
                      replace_path_everywhere=True)  # fmt: skip
    files = render_nginx_conf([plain, needing], {}, RESPONDER, "/certs")
    assert files[JS_TARGET] and f"load_module {NJS_MODULE};" in files["/etc/nginx/nginx.conf"]
    kept, [problem] = without_njs([plain, needing], frozenset())
    assert kept == [plain] and problem.service == "other" and "njs" in problem.message
    assert without_njs([plain, needing], ALL_FEATURES) == ([plain, needing], [])
