"""Traefik's router rules as Traefik routes them, answered by a real nginx running the rendered
configuration on loopback: router priority within a host, a header sent twice, percent-encoded
reserved characters in the path."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import pytest

from certbotless.edge.nginx_version import local_nginx_version
from certbotless.labels.traefik.labels import traefik_claims
from certbotless.model import LabelProblem, ServiceInfo
from certbotless.setting_values import RuleTemplate
from tests.support.edge_nginx import (
    ECHO_PORT_HEADER,
    HOST,
    echo_upstream,
    request,
    serve_routes,
    stop,
)

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None, reason="needs nginx")
R = "traefik.http.routers."
# Routers by name → rule (and extra keys): each router its own upstream, which the answer's
# X-Echo-Port names.
Routers = Mapping[str, Mapping[str, str]]
Serve = Callable[[Routers], tuple[int, dict[str, str], tuple[LabelProblem, ...]]]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """Each router on a service of its own (reached at 127.0.0.1, its own echo upstream);
    returns nginx's port, which router each upstream port is, and the label problems."""
    started: list[subprocess.Popen[bytes]] = []
    echoes = ExitStack()

    def start(routers: Routers) -> tuple[int, dict[str, str], tuple[LabelProblem, ...]]:
        services, served_by = [], {}
        for name, keys in routers.items():
            port = echoes.enter_context(echo_upstream())
            served_by[str(port)] = name
            labels = {f"{R}{name}.{key}": value for key, value in keys.items()}
            labels |= {
                "traefik.enable": "true",
                f"{R}{name}.entrypoints": "web",
                f"traefik.http.services.{name}.loadbalancer.server.port": str(port),
            }
            services.append(ServiceInfo(name, labels))
        claims = traefik_claims(services)
        routes = [replace(r, service="127.0.0.1") for c in claims.values() for r in c.routes]
        problems = tuple(p for found in claims.values() for p in found.problems)
        nginx, port, _ = serve_routes(routes, tmp_path / str(len(started)))
        started.append(nginx)
        return port, served_by, problems

    with echoes:
        yield start
        for nginx in started:
            stop(nginx)


def _routed(
    port: int, served_by: dict[str, str], path: str, headers: tuple[tuple[str, str], ...] = ()
) -> str:
    """The router that served the request, or its status when none did."""
    status, _, answer = request(port, path, headers=headers)
    return served_by.get(answer.get(ECHO_PORT_HEADER, ""), str(status))


def test_a_header_matcher_matches_any_item_of_a_header_sent_as_a_list(serve: Serve) -> None:
    rule = f"Host(`{HOST}`) && Header(`X-Forwarded-Proto`, `https`)"
    port, served_by, problems = serve({"secure": {"rule": rule}})
    assert problems == ()
    assert _routed(port, served_by, "/", (("X-Forwarded-Proto", "https"),)) == "secure"
    # nginx from 1.23 joins lines this way; Traefik matches either line.
    assert _routed(port, served_by, "/", (("X-Forwarded-Proto", "http, https"),)) == "secure"
    assert _routed(port, served_by, "/", (("X-Forwarded-Proto", "http"),)) == "404"
    assert _routed(port, served_by, "/", (("X-Forwarded-Proto", "xhttps"),)) == "404"
    assert _routed(port, served_by, "/") == "404"


def test_a_header_sent_twice_matches_on_either_line(serve: Serve) -> None:
    rule = f"Host(`{HOST}`) && Header(`X-Forwarded-Proto`, `https`)"
    port, served_by, _ = serve({"secure": {"rule": rule}})
    twice = (("X-Forwarded-Proto", "http"), ("X-Forwarded-Proto", "https"))
    if local_nginx_version() >= (1, 23, 0):
        assert _routed(port, served_by, "/", twice) == "secure"
    else:  # older nginx sees the first line only: narrower than Traefik, never wider
        assert _routed(port, served_by, "/", twice) == "404"
    assert _routed(port, served_by, "/", twice[::-1]) == "secure"


def test_priority_decides_between_nested_prefixes_as_in_traefik(serve: Serve) -> None:
    """Traefik's own case (pkg/muxer/http/mux_test.go): /mypath at priority 10 loses to /my at
    priority 20, which matches it too; the first is never reached, as in Traefik."""
    port, served_by, problems = serve({
        "mypath": {"rule": f"Host(`{HOST}`) && PathPrefix(`/mypath`)", "priority": "10"},
        "my": {"rule": f"Host(`{HOST}`) && PathPrefix(`/my`)", "priority": "20"},
    })  # fmt: skip
    assert _routed(port, served_by, "/mypath") == "my"
    assert _routed(port, served_by, "/my") == "my"
    assert problems == ()


def test_the_default_priority_is_the_rules_length(serve: Serve) -> None:
    # The longer rule comes first in Traefik, though nginx would prefer the longer path.
    wide = f"Host(`{HOST}`) || Host(`www.{HOST}`) || Host(`old.{HOST}`)"
    narrow = f"Host(`{HOST}`) && PathPrefix(`/api`)"
    assert len(wide) > len(narrow)
    port, served_by, problems = serve({"wide": {"rule": wide}, "narrow": {"rule": narrow}})
    assert _routed(port, served_by, "/api/x") == "wide"
    assert problems == ()
    # With a priority above the wide one's, the narrow router is routed, as in Traefik.
    port, served_by, problems = serve({"wide": {"rule": wide},
                                       "narrow": {"rule": narrow, "priority": "100"}})  # fmt: skip
    assert (_routed(port, served_by, "/api/x"), _routed(port, served_by, "/x")) == (
        "narrow", "wide",
    )  # fmt: skip
    assert problems == ()


def test_requests_failing_a_routers_conditions_go_on_to_the_next_router_as_in_traefik(
    serve: Serve,
) -> None:
    """Traefik sends GET /api to the host's router when the POST-only router does not match."""
    port, served_by, problems = serve({
        "posts": {"rule": f"Host(`{HOST}`) && PathPrefix(`/api`) && Method(`POST`)"},
        "site": {"rule": f"Host(`{HOST}`)"},
    })  # fmt: skip
    assert _routed(port, served_by, "/api") == "site"
    assert _routed(port, served_by, "/other") == "site"
    assert problems == ()


def test_nested_routers_in_nginxs_order_are_all_routed(serve: Serve) -> None:
    port, served_by, problems = serve({
        "site": {"rule": f"Host(`{HOST}`)"},
        "api": {"rule": f"Host(`{HOST}`) && PathPrefix(`/api`)"},
        "health": {"rule": f"Host(`{HOST}`) && Path(`/api/health`)", "priority": "99"},
    })  # fmt: skip
    assert problems == ()
    assert [_routed(port, served_by, p) for p in ("/", "/api/x", "/api/health")] == [
        "site", "api", "health",
    ]  # fmt: skip


def test_a_priority_that_is_no_number_is_refused(serve: Serve) -> None:
    _, _, problems = serve({"a": {"rule": f"Host(`{HOST}`)", "priority": "high"}})
    (problem,) = problems
    assert (problem.label, problem.value) == (f"{R}a.priority", "high")
    assert "must be a whole number" in problem.message


def test_encoded_reserved_characters_stay_encoded_when_choosing_the_route(serve: Serve) -> None:
    """Traefik keeps `%2F` (upper case) encoded when it matches paths: `/foo%2Fbar` is not under
    PathPrefix(`/foo/bar`), though nginx's locations see it decoded."""
    port, served_by, problems = serve({
        "bar": {"rule": f"Host(`{HOST}`) && PathPrefix(`/foo/bar`)"},
        "exact": {"rule": f"Host(`{HOST}`) && Path(`/a:b`)"},
    })  # fmt: skip
    assert problems == ()
    assert _routed(port, served_by, "/foo/bar/x") == "bar"
    assert _routed(port, served_by, "/foo%2Fbar") == "404"
    assert _routed(port, served_by, "/foo%2Fbar/x?y=%2F") == "404"
    # Lower case and unreserved characters are decoded by Traefik too.
    assert _routed(port, served_by, "/foo%2fbar/x") == "bar"
    assert _routed(port, served_by, "/f%6Fo/bar/x%2F") == "bar"
    assert _routed(port, served_by, "/foo/bar/x?y=%2F") == "bar"
    assert _routed(port, served_by, "/a%3Ab") == "404"
    assert _routed(port, served_by, "/a%3ab") == "exact"


DEFAULT_RULE = RuleTemplate("Host(`{{ normalize .Name }}.example.com`)")


@pytest.mark.parametrize(
    "labels",
    [
        {"traefik.http.services.s.loadbalancer.server.port": "PORT"},  # no router at all
        {f"{R}r.middlewares": "", f"{R}r.tls": "true",  # routers without a rule
         "traefik.http.services.s.loadbalancer.server.port": "PORT"},
    ],
)  # fmt: skip
def test_services_without_a_rule_get_traefiks_default_rule(
    labels: dict[str, str], tmp_path: Path
) -> None:
    with echo_upstream() as port:
        _served_by_default_rule(labels, port, tmp_path)


def _served_by_default_rule(labels: dict[str, str], port: int, tmp_path: Path) -> None:
    labels = {k: v.replace("PORT", str(port)) for k, v in labels.items()}
    service = ServiceInfo("shop_web", {**labels, "traefik.enable": "true"})
    unset = traefik_claims([service])["shop_web"]
    assert unset.routes == ()
    (problem,) = unset.problems
    assert "CERTBOTLESS_TRAEFIK_DEFAULT_RULE does not set" in problem.message
    claims = traefik_claims([service], default_rule=DEFAULT_RULE)["shop_web"]
    assert claims.problems == ()
    assert [route.hosts for route in claims.routes] == [("shop-web.example.com",)]
    routes = [
        replace(route, service="127.0.0.1", redirect_to_https=False) for route in claims.routes
    ]
    nginx, nginx_port, _ = serve_routes(routes, tmp_path / "nginx")
    try:
        status, _, answer = request(nginx_port, "/x", host="shop-web.example.com")
        assert (status, answer[ECHO_PORT_HEADER]) == (200, str(port))
    finally:
        stop(nginx)


def test_exposed_by_default_services_with_a_port_rely_on_the_default_rule() -> None:
    port_only = ServiceInfo("api", {"traefik.http.services.a.loadbalancer.server.port": "80"})
    (problem,) = traefik_claims([port_only], exposed_by_default=True)["api"].problems
    assert "router api has no rule" in problem.message
    found = traefik_claims([port_only], exposed_by_default=True, default_rule=DEFAULT_RULE)
    assert found["api"].routes[0].hosts == ("api.example.com",)
    # Two services and no router: Traefik makes none ("too many services"), and neither do we.
    two = ServiceInfo(
        "two",
        {
            "traefik.http.services.a.loadbalancer.server.port": "80",
            "traefik.http.services.b.loadbalancer.server.port": "81",
        },
    )
    assert traefik_claims([two], exposed_by_default=True, default_rule=DEFAULT_RULE)["two"] == (
        traefik_claims([two], exposed_by_default=True)["two"]
    )  # fmt: skip
