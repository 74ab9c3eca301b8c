"""Traefik's circuitBreaker (oxy's cbreaker) kept by njs at the edge (edge/breaker.py), on the
rig's newest nginx (its njs has shared dictionaries): it trips on the expression, answers
responseCode for fallbackDuration, lets a growing share through while it recovers and then
everything; the expressions Traefik refuses are refused by name; an njs without shared
dictionaries (bookworm's 0.7.9) has the breaker left out, and says so. Durations of 1 s."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import replace
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from certbotless.edge.njs import ALL_FEATURES, NJS, PERIODIC, without_njs
from certbotless.labels.traefik.labels import traefik_claims
from certbotless.model import ErrorPages, Route, ServiceInfo
from tests.support.edge_nginx import (
    HOST,
    LOCAL_NGINX,
    Echo,
    NginxBinary,
    echo_task,
    echo_upstream,
    one_router,
    serve_routes,
    serving,
    stop,
)
from tests.support.ports import unused_ports

CB = "traefik.http.middlewares.cb.circuitBreaker."
Serve = Callable[[int, Mapping[str, str]], int]  # (service's port, options) → the edge's port


def _routes(upstream: int, options: Mapping[str, str]) -> tuple[list[Route], list[str]]:
    labels = one_router(upstream, {CB + key: value for key, value in options.items()})
    claims = traefik_claims([ServiceInfo("127.0.0.1", labels)])["127.0.0.1"]
    return list(claims.routes), [f"{p.label}: {p.message}" for p in claims.problems]


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    with echo_upstream() as port:
        yield port


@pytest.fixture
def serve(tmp_path: Path, newest: NginxBinary) -> Iterator[Serve]:
    started: list[subprocess.Popen[bytes]] = []

    def start(upstream: int, options: Mapping[str, str]) -> int:
        routes, problems = _routes(upstream, options)
        assert problems == []
        assert routes[0].circuit_breaker is not None
        nginx, port, _ = serve_routes(routes, tmp_path / str(len(started)), binary=newest)
        started.append(nginx)
        return port

    yield start
    for nginx in started:
        stop(nginx)


def _get(port: int, path: str = "/") -> tuple[int, str]:
    """(status, body), read to the connection's end: nginx closes it after its log phase, where
    the breaker counts the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"
                           .encode())  # fmt: skip
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode("latin-1")


def _checked(port: int, path: str = "/") -> tuple[int, str]:
    """`_get` once the check period (1 ms) since the last answer is over: that answer's check
    may have been skipped otherwise, as oxy's would."""
    time.sleep(0.005)
    return _get(port, path)


def _statuses_until(port: int, seconds: float) -> list[int]:
    """The statuses of requests sent every 20 ms for `seconds`."""
    found, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        found.append(_get(port)[0])
        time.sleep(0.02)
    return found


def test_trips_on_a_dead_service_answers_for_the_fallback_then_recovers(serve: Serve) -> None:
    [dead] = unused_ports(1)
    port = serve(dead, {"expression": "NetworkErrorRatio() > 0.5", "responseCode": "418",
                        "fallbackDuration": "1s", "recoveryDuration": "1s"})  # fmt: skip
    assert _get(port)[0] == 502  # nginx's: the service is down, and the breaker trips
    tripped = time.monotonic()
    assert _get(port) == (418, "I'm a teapot")  # Go's status text, as Traefik's fallback
    with ExitStack() as stack:
        stack.enter_context(echo_task("127.0.0.1", dead))  # the service is back
        assert set(_statuses_until(port, 0.8)) == {418}  # the fallback lasts 1 s
        time.sleep(max(0.0, tripped + 1.05 - time.monotonic()))
        # Recovering: the first request is refused (the share let through starts at 0), then a
        # growing share goes through; none fails, so it does not trip again.
        recovering = _statuses_until(port, 1.0)
        assert recovering[0] == 418 and set(recovering) == {418, 200}
        first_half = recovering[: len(recovering) // 2]
        assert first_half.count(200) < recovering[len(first_half) :].count(200)
        time.sleep(0.1)
        assert set(_statuses_until(port, 0.3)) == {200}  # standby: every request goes through


def test_trips_again_when_recovery_meets_the_failing_service(serve: Serve) -> None:
    [dead] = unused_ports(1)
    port = serve(dead, {"expression": "NetworkErrorRatio() > 0.5",
                        "fallbackDuration": "1s", "recoveryDuration": "1s"})  # fmt: skip
    assert _get(port)[0] == 502
    assert _get(port) == (503, "Service Unavailable")
    time.sleep(1.05)
    statuses = _statuses_until(port, 1.0)  # recovering: the first let through fails again
    assert 502 in statuses
    after = statuses[statuses.index(502) + 1 :]
    assert after and set(after) == {503}  # tripped anew, for another second


def test_response_code_ratio_and_request_threshold(serve: Serve, upstream: int) -> None:
    Echo.scripted["/breaker-500"] = (500, [], "failed")
    port = serve(upstream, {"checkPeriod": "1ms",
                            "expression": "ResponseCodeRatio(500, 600, 0, 600) > 0.4 "
                                          "&& RequestThreshold() >= 3"})  # fmt: skip
    assert _checked(port)[0] == 200
    assert _checked(port, "/breaker-500")[0] == 500  # 1 of 2: 0.5, but fewer than 3 answers
    assert _checked(port)[0] == 200  # 1 of 3
    assert _checked(port, "/breaker-500")[0] == 500  # 2 of 4: over 0.4 with 4 answers: trips
    assert _checked(port) == (503, "Service Unavailable")


def test_answers_replaced_by_error_pages_are_counted(
    tmp_path: Path, newest: NginxBinary, upstream: int
) -> None:
    """The errors middleware's page is asked in another location, where nginx's log phase
    then runs: the breaker counts the answer there too."""
    Echo.scripted["/breaker-500"] = (500, [], "failed")
    [route], _ = _routes(upstream, {"expression": "ResponseCodeRatio(500, 600, 0, 600) > 0.5"})
    pages = ErrorPages(f"http://127.0.0.1:{upstream}/error-{{status}}", (500,))
    served = [replace(route, error_pages=pages)]
    nginx, port, _ = serve_routes(served, tmp_path / "edge", binary=newest)
    try:
        assert _get(port, "/breaker-500") == (500, "/error-500 -")  # the page, 500 kept
        assert _get(port) == (503, "Service Unavailable")
    finally:
        stop(nginx)


def test_forward_auths_refusals_after_it_are_counted(
    tmp_path: Path, newest: NginxBinary, upstream: int
) -> None:
    """Listed after the breaker, forwardAuth's refusals are answers it watches, as in Traefik
    (the edge passes them on from other locations, where the log phase then runs)."""
    Echo.scripted["/auth/deny"] = (401, [], "denied")
    labels = one_router(upstream, {
        CB + "expression": "ResponseCodeRatio(400, 500, 0, 600) > 0.5",
        "traefik.http.middlewares.fa.forwardAuth.address": f"http://127.0.0.1:{upstream}/auth/deny",
    })  # fmt: skip
    [route] = traefik_claims([ServiceInfo("127.0.0.1", labels)])["127.0.0.1"].routes
    nginx, port, _ = serve_routes([route], tmp_path / "edge", binary=newest)
    try:
        assert _get(port) == (401, "denied")
        assert _get(port) == (503, "Service Unavailable")
    finally:
        stop(nginx)


class _Slow(BaseHTTPRequestHandler):
    """Answers /slow after 250 ms, anything else at once."""

    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(0.25)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_latency_at_quantile_is_hdr_histograms_rank(serve: Serve) -> None:
    with serving(_Slow) as slow:
        port = serve(slow, {"checkPeriod": "1ms",
                            "expression": "LatencyAtQuantileMS(50.0) > 150"})  # fmt: skip
        # The median's rank is round(n / 2): over 150 ms once most answers are.
        for path in ("/", "/slow", "/", "/slow"):  # 1/1, 1/2, 2/3, 2/4 at most 150 ms
            assert _checked(port, path)[0] == 200
        assert _checked(port, "/slow")[0] == 200  # 2 of 5 at most 150 ms, rank 3: trips
        assert _checked(port)[0] == 503


@pytest.mark.parametrize(
    ("expression", "why"),
    [
        ("", "empty"),
        ("NetworkErrorRatio() > 1", "compared with a float"),
        ("LatencyAtQuantileMS(50) > 100", "a float quantile"),
        ("LatencyAtQuantileMS(50.0) > 100.5", "compared with an int"),
        ("0.5 < NetworkErrorRatio()", "compares a metric"),
        ("NetworkErrorRatio() > 0.5 & RequestThreshold() > 1", "is not part of"),
        ("!(NetworkErrorRatio() > 0.5)", "is not part of"),
        ("ErrorRatio() > 0.5", "not one of Traefik's metrics"),
        ("NetworkErrorRatio() > 0.5 && RequestThreshold()", "joins comparisons"),
        ("ResponseCodeRatio(500, 600) > 0.5", "four ints"),
    ],
)
def test_expressions_traefik_refuses_are_refused_by_name(expression: str, why: str) -> None:
    routes, problems = _routes(8000, {"expression": expression})
    assert routes and routes[0].circuit_breaker is None  # served without it, as Traefik's
    [problem] = problems  # shaping middlewares that cannot be applied
    assert problem.startswith(CB + "expression: middleware cb: circuitBreaker.expression")
    assert why in problem


def test_guards_listed_before_it_are_reported() -> None:
    labels = one_router(8000, {"traefik.http.middlewares.a.ipAllowList.sourceRange": "10.0.0.0/8",
                               CB + "expression": "NetworkErrorRatio() > 0.5"})  # fmt: skip
    claims = traefik_claims([ServiceInfo("app", labels)])["app"]
    [problem] = claims.problems
    assert "before the route's ipAllowList" in problem.message
    assert claims.routes[0].circuit_breaker is not None


def test_an_njs_without_shared_dictionaries_leaves_it_out_by_name() -> None:
    routes, _ = _routes(8000, {"expression": "NetworkErrorRatio() > 0.5"})
    for older in (frozenset({NJS}), frozenset()):  # njs 0.7.9; no njs at all
        kept, [problem] = without_njs(routes, older)
        assert kept[0].circuit_breaker is None and kept[0].service == routes[0].service
        assert "njs 0.8.1 or later" in problem.message and "served without it" in problem.message
    assert without_njs(routes, ALL_FEATURES) == (routes, [])


def test_the_probe_tells_bookworms_njs_from_the_edge_images(newest: NginxBinary) -> None:
    assert PERIODIC in newest.njs_features
    if LOCAL_NGINX.has_njs and LOCAL_NGINX.version < (1, 23, 0):  # Debian bookworm's 0.7.9
        assert PERIODIC not in LOCAL_NGINX.njs_features
