"""Property: whatever a host's Traefik routers (paths, exact or prefix, methods, a header,
distinct priorities), the real nginx serving the rendered configuration answers every request
with the router Traefik's muxer would choose: the highest priority whose rule matches, else
404 (pkg/muxer/http/mux.go)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certbotless.model import Route
from tests.support.edge_nginx import (
    ECHO_PORT_HEADER,
    HOST,
    echo_servers,
    request,
    serve_routes,
    stop,
)

PATHS = ["/", "/a", "/ab", "/a/b", "/b"]
METHODS = ["GET", "POST"]
ASKED = ["/", "/a", "/ab", "/a/b", "/abc", "/b", "/b/c", "/c"]


@dataclass(frozen=True)
class Router:
    path: str
    exact: bool
    method: str | None
    header: bool  # asks for `X-Canary: 1`
    priority: int

    def matches(self, path: str, method: str, canary: bool) -> bool:
        on_path = path == self.path if self.exact else path.startswith(self.path)
        return on_path and self.method in (None, method) and (canary or not self.header)


routers = st.lists(
    st.builds(Router, st.sampled_from(PATHS), st.booleans(),
              st.sampled_from([None, *METHODS]), st.booleans(), st.integers(1, 1000)),
    min_size=1, max_size=5, unique_by=lambda r: r.priority,
)  # fmt: skip


@pytest.fixture(scope="module")
def ports() -> Iterator[list[int]]:
    with echo_servers(5) as found:
        yield found


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(chosen=routers)
def test_nginx_chooses_the_router_traefik_chooses(
    chosen: list[Router], ports: list[int], tmp_path_factory: pytest.TempPathFactory
) -> None:
    routes = [
        Route("127.0.0.1", (HOST,), port, path=r.path, exact_path=r.exact, redirect_to_https=False,
              methods=(r.method,) if r.method else (),
              match_headers=(("x-canary", "1"),) if r.header else (), priority=r.priority)
        for r, port in zip(chosen, ports, strict=False)
    ]  # fmt: skip
    nginx, port, _ = serve_routes(routes, tmp_path_factory.mktemp("dispatch") / "edge")
    try:
        for path in ASKED:
            for method in METHODS:
                for canary in (False, True):
                    first = next((p for r, p in sorted(zip(chosen, ports, strict=False),
                                                       key=lambda pair: -pair[0].priority)
                                  if r.matches(path, method, canary)), None)  # fmt: skip
                    headers = [("X-Canary", "1")] if canary else []
                    status, _, answer = request(port, path, method, headers)
                    served = int(answer[ECHO_PORT_HEADER]) if ECHO_PORT_HEADER in answer else None
                    assert (served, status) == (first, 200 if first else 404), (
                        path,
                        method,
                        canary,
                    )
    finally:
        stop(nginx)
