"""Traefik's active health checks (`loadbalancer.healthcheck.*`): read as Traefik reads them
(labels/traefik/health_check.py), refused by name where njs cannot make them, and run by a real
nginx with njs >= 0.8.1 (the rig's Debian forky root, the edge image's generation) against an
echo upstream on loopback: a service whose check fails answers 503 until it passes again."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path

import pytest

from certbotless.edge.health_checks import CHECKS, NO_SERVER, ZONE, down_answer
from certbotless.edge.njs import ALL_FEATURES, NJS, njs_features, without_njs
from certbotless.edge.render import render_nginx_conf
from certbotless.labels.traefik.labels import traefik_claims
from certbotless.model import ErrorPages, LabelProblem, Route, ServiceInfo
from certbotless.upstream_options import HealthCheck
from tests.support.edge_nginx import (
    HOST,
    METHOD_SEEN,
    Echo,
    NginxBinary,
    answer,
    echo_upstream,
    serve_routes,
    stop,
)
from tests.support.factories import RESPONDER

CHECK = "traefik.http.services.s.loadbalancer.healthcheck."
# Fast checks: every second, each answered within half a second.
FAST = {"interval": "1s", "timeout": "500ms"}
Serve = Callable[[Mapping[str, str]], int]  # the check's options → the port nginx serves on


def _claims(options: Mapping[str, str], port: int = 8000, scheme: str = "http"
            ) -> tuple[list[Route], list[LabelProblem]]:  # fmt: skip
    labels = {
        "traefik.enable": "true",
        "traefik.http.routers.r.rule": f"Host(`{HOST}`)",
        "traefik.http.routers.r.entrypoints": "web",
        "traefik.http.services.s.loadbalancer.server.port": str(port),
        "traefik.http.services.s.loadbalancer.server.scheme": scheme,
        **{CHECK + key: value for key, value in options.items()},
    }
    claims = traefik_claims([ServiceInfo("127.0.0.1", labels)])["127.0.0.1"]
    return list(claims.routes), list(claims.problems)


def _check(options: Mapping[str, str], scheme: str = "http") -> HealthCheck | None:
    routes, problems = _claims(options, scheme=scheme)
    assert routes, problems
    return routes[0].upstream.health_check


def test_traefiks_defaults_and_durations() -> None:
    assert _check({"path": "/health"}) == HealthCheck(path="/health")
    check = _check({"path": "/h", "interval": "1m30s", "timeout": "10", "method": "HEAD",
                    "status": "204", "followRedirects": "false", "hostname": "b.test",
                    "headers.X-Check": "foobar", "port": "8080", "scheme": "https"})  # fmt: skip
    assert check == HealthCheck(path="/h", scheme="https", port=8080, method="HEAD",
                                hostname="b.test", headers=(("X-Check", "foobar"),), status=204,
                                follow_redirects=False, interval_ms=90_000,
                                unhealthy_interval_ms=90_000, timeout_ms=10_000)  # fmt: skip
    # unhealthyInterval: the interval's when unset, Traefik's default (30 s) when not positive.
    assert _check({"interval": "2s", "unhealthyInterval": "0"}).unhealthy_interval_ms == 30_000  # type: ignore[union-attr]
    assert _check({"interval": "-1s"}).interval_ms == 30_000  # type: ignore[union-attr]
    assert _check({"interval": "1.5s"}).interval_ms == 1_500  # type: ignore[union-attr]
    routes, _ = _claims({})
    assert routes[0].upstream.health_check is None


@pytest.mark.parametrize(
    ("options", "label", "words"),
    [
        ({"path": "/h", "mode": "grpc"}, "mode", "gRPC"),
        ({"path": "/h", "scheme": "ftp"}, "scheme", "http or https"),
        ({"path": "/h", "interval": "soon"}, "interval", "duration"),
        ({"path": "/h", "status": "ok"}, "status", "number"),
        ({"path": "http://elsewhere/h"}, "path", "path"),
        ({"path": "/h", "followRedirects": "maybe"}, "followRedirects", "true or false"),
    ],
)
def test_what_cannot_be_applied_is_said_and_the_service_served_without_it(
    options: Mapping[str, str], label: str, words: str
) -> None:
    routes, problems = _claims(options)
    assert routes and routes[0].upstream.health_check is None
    [problem] = problems
    assert problem.label == CHECK + label and words in problem.message, problem
    assert "served without the health check" in problem.message


def test_an_h2c_service_is_checked_only_over_a_scheme_njs_speaks() -> None:
    routes, [problem] = _claims({"path": "/h"}, scheme="h2c")
    assert routes[0].upstream.health_check is None and "h2c" in problem.message
    routes, problems = _claims({"path": "/h", "scheme": "http"}, scheme="h2c")
    assert problems == [] and routes[0].upstream.health_check is not None


def test_the_probe_tells_what_njs_can_do() -> None:
    assert njs_features('dlopen() "/usr/lib/nginx/modules/ngx_http_js_module.so" failed') == set()
    assert njs_features('unknown directive "js_periodic" in command line') == {NJS}
    assert njs_features('"js_periodic" directive is not allowed here') == ALL_FEATURES


def test_an_njs_without_js_periodic_serves_the_service_without_its_check_and_says_so() -> None:
    routes, _ = _claims({"path": "/health", **FAST})
    kept, [problem] = without_njs(routes, frozenset({NJS}))
    assert [route.upstream.health_check for route in kept] == [None]
    assert problem.label == CHECK + "path" and "0.8.1" in problem.message
    assert without_njs(routes, ALL_FEATURES) == (routes, [])


def test_the_checks_are_rendered_only_when_asked() -> None:
    routes, _ = _claims({"path": "/health", "interval": "1s"})
    conf = "".join(render_nginx_conf(routes, {}, RESPONDER, "/certs").values())
    assert f"js_shared_dict_zone zone={ZONE}:1m" in conf and CHECKS in conf
    # A timeout (5 s) as long as the interval: the runs are just longer apart.
    assert "js_periodic certbotless.healthCheck interval=5100ms;" in conf
    plain, _ = _claims({})
    assert "js_shared_dict_zone" not in "".join(render_nginx_conf(plain, {}, RESPONDER,
                                                                  "/certs").values())  # fmt: skip


@pytest.fixture
def forky(rig_env: dict[str, str]) -> NginxBinary:
    root = Path(rig_env.get("CBL_NGINX_NEWEST_ROOT", ""))
    if not (root / "usr/sbin/nginx").is_file():
        pytest.fail(f"no nginx >= 1.27.3 root at {root} (`python3 -m rig up` unpacks one)")
    return NginxBinary(root)


@pytest.fixture
def checked(forky: NginxBinary, tmp_path: Path) -> Iterator[Serve]:
    """Serves the health-checked echo upstream: call with the check's options, get the port."""
    started: list[subprocess.Popen[bytes]] = []
    with echo_upstream() as upstream:

        def serve(options: Mapping[str, str]) -> int:
            routes, problems = _claims({**FAST, **options}, port=upstream)
            assert problems == [], problems
            nginx, port, _ = serve_routes(routes, tmp_path / str(len(started)), binary=forky)
            started.append(nginx)
            return port

        yield serve
        for nginx in started:
            stop(nginx)


def _script(path: str, status: int | None, headers: list[tuple[str, str]] | None = None) -> None:
    """What the echo server answers at `path` (None: the echo, 200)."""
    Echo.scripted.pop(path, None)
    if status is not None:
        Echo.scripted[path] = (status, headers or [], "")


def _until(port: int, status: int, within: float = 4.0) -> tuple[int, str]:
    """The answer to GET / once it has `status`, or the last one after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        got, body, _ = answer(port)
        if got == status or time.monotonic() > deadline:
            return got, body
        time.sleep(0.1)


def _seen(path: str) -> list[dict[str, str]]:
    return [headers for seen, headers in Echo.seen if seen == path]


def test_a_failing_check_answers_503_until_it_passes_again(checked: Serve) -> None:
    port = checked({"path": "/hc-fails"})
    assert answer(port)[0] == 200  # up from the start, as Traefik's servers
    _script("/hc-fails", 500)
    assert _until(port, 503) == (503, "no available server\n")
    _script("/hc-fails", None)
    assert _until(port, 200)[0] == 200


def test_hostname_headers_and_method_reach_the_health_endpoint(checked: Serve) -> None:
    port = checked({"path": "/hc-asked?x=1", "hostname": "b.test", "method": "HEAD",
                    "headers.X-Check": "foobar"})  # fmt: skip
    deadline = time.monotonic() + 4
    while not _seen("/hc-asked?x=1") and time.monotonic() < deadline:
        time.sleep(0.1)
    [first, *_] = _seen("/hc-asked?x=1")
    assert (first["host"], first["x-check"], first[METHOD_SEEN]) == ("b.test", "foobar", "HEAD")
    time.sleep(1.5)
    assert answer(port)[0] == 200  # a HEAD's 200 without a body is healthy


@pytest.mark.parametrize("follow", [True, False])
def test_redirects_are_followed_unless_followredirects_is_false(
    checked: Serve, follow: bool
) -> None:
    start, gone = f"/hc-redirect-{follow}", f"/hc-redirect-{follow}-gone"
    _script(start, 302, [("Location", gone)])
    _script(gone, 500)
    port = checked({"path": start, "followRedirects": str(follow).lower()})
    if follow:  # the redirect's target fails: down
        assert _until(port, 503)[0] == 503 and _seen(gone)
    else:  # the 302 itself is healthy (200 to 399), its target never asked
        time.sleep(2.5)
        assert answer(port)[0] == 200 and _seen(start) and not _seen(gone)


def test_a_redirect_to_a_healthy_path_is_healthy(checked: Serve) -> None:
    _script("/hc-relative", 307, [("Location", "/hc-relative-here")])
    port = checked({"path": "/hc-relative", "hostname": "b.test"})
    time.sleep(2.5)
    assert answer(port)[0] == 200
    [*_, last] = _seen("/hc-relative-here")
    assert last["host"] == "b.test"  # Go keeps the Host through a relative redirect


def test_status_asks_for_that_status_only(checked: Serve) -> None:
    port = checked({"path": "/hc-status", "status": "204"})
    assert _until(port, 503)[0] == 503  # the echo's 200 is not 204
    _script("/hc-status", 204)
    assert _until(port, 200)[0] == 200


def test_a_routers_error_page_for_503_answers_for_a_service_that_is_down() -> None:
    """As Traefik's errors middleware catches its load balancer's 503."""
    [route], _ = _claims({"path": "/health"})
    assert f"return 503 {NO_SERVER};" in down_answer(route)
    caught = replace(route, error_pages=ErrorPages("http://127.0.0.1:8000/{status}", (503,)))
    assert "return 503;" in down_answer(caught)
