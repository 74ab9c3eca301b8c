"""Traefik's `loadbalancer.server.url` (and `preservePath`), proxied to only where the operator's
CERTBOTLESS_TRAEFIK_SERVER_URLS allows it; and the middlewares an h2c service cannot have."""

from __future__ import annotations

from pathlib import Path

import pytest

from certbotless.labels.dialects import discovered
from certbotless.labels.traefik.labels import traefik_claims
from certbotless.model import DialectClaims, ServiceInfo
from certbotless.setting_values import server_url_prefixes
from certbotless.settings import Settings
from tests.support.edge_nginx import HOST, Echo, echo_upstream, request, serve_routes, stop

R = "traefik.http.routers."
S = "traefik.http.services."
SETTING = "CERTBOTLESS_TRAEFIK_SERVER_URLS"


def claims(labels: dict[str, str], allowed: str = "") -> DialectClaims:
    service = ServiceInfo("web", {"traefik.enable": "true", f"{R}r.rule": f"Host(`{HOST}`)",
                                  f"{R}r.entrypoints": "web", **labels})  # fmt: skip
    prefixes = server_url_prefixes(allowed, "TRAEFIK_SERVER_URLS")
    return traefik_claims([service], server_urls=prefixes)["web"]


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://10.0.0.5:8080", "http://10.0.0.6"),  # another host
        ("http://legacy.internal:8081", "http://legacy.internal:8080"),  # another port
        ("https://legacy.internal", "http://legacy.internal"),  # another scheme
        ("http://legacy.internal/admin", "http://legacy.internal/api"),  # another path
        ("http://legacy.internal/apix", "http://legacy.internal/api"),  # not under /api/
        ("http://legacy.internal.evil.example", "http://*.internal"),
        ("http://metadata.internal", ""),  # none allowed
    ],
)
def test_a_server_url_the_setting_does_not_allow_is_refused_by_its_name(
    url: str, allowed: str
) -> None:
    found = claims({f"{S}s.loadbalancer.server.url": url}, allowed)
    assert found.routes == ()
    (problem,) = found.problems
    assert problem.label == f"{S}s.loadbalancer.server.url" and SETTING in problem.message


def test_an_allowed_server_url_is_the_routes_upstream() -> None:
    settings = Settings.from_env({SETTING: "http://*.internal:8080, h2c://grpc.internal"})
    labels = {"traefik.enable": "true", f"{R}r.rule": f"Host(`{HOST}`)",
              f"{S}s.loadbalancer.server.url": "http://Legacy.internal:8080/ignored"}  # fmt: skip
    (route,) = discovered(settings, [ServiceInfo("web", labels, ("n",), ("edge",))], None).routes
    assert (route.server_authority, route.port, route.upstream_scheme) == (
        "Legacy.internal:8080", 8080, "http")  # fmt: skip
    assert route.add_prefix == ""  # without preservePath, Traefik drops the URL's path
    h2c = {**labels, f"{S}s.loadbalancer.server.url": "h2c://grpc.internal"}
    (route,) = discovered(settings, [ServiceInfo("web", h2c, ("n",), ("edge",))], None).routes
    assert (route.server_authority, route.port, route.upstream_scheme) == (
        "grpc.internal", 80, "h2c")  # fmt: skip


def test_preserve_path_puts_the_urls_path_before_the_requests_escapes_kept(
    tmp_path: Path,
) -> None:
    with echo_upstream() as echo:
        labels = {f"{S}s.loadbalancer.server.url": f"http://127.0.0.1:{echo}/base/",
                  f"{S}s.loadbalancer.server.preservePath": "true",
                  f"{S}s.loadbalancer.passHostHeader": "false"}  # fmt: skip
        found = claims(labels, "http://127.0.0.1")
        assert found.problems == ()
        nginx, port, _ = serve_routes(found.routes, tmp_path / "edge")
        try:
            assert request(port, "/a%2Fb?q=1")[:2] == (200, "/base/a%2Fb?q=1 -")
            assert Echo.seen[-1][1]["host"] == f"127.0.0.1:{echo}"  # the URL's, as written
            assert request(port, "/")[:2] == (200, "/base/ -")
        finally:
            stop(nginx)


@pytest.mark.parametrize(
    ("beside", "refused"),
    [
        ({f"{S}s.loadbalancer.server.url": "h2c://127.0.0.1:9000/base"}, "h2c"),
        ({"traefik.http.middlewares.m.replacePath.path": "/x", f"{R}r.middlewares": "m"},
         "replacePath"),
    ],
)  # fmt: skip
def test_preserve_path_where_it_cannot_be_kept_exactly_is_refused(
    beside: dict[str, str], refused: str
) -> None:
    labels = {f"{S}s.loadbalancer.server.url": "http://127.0.0.1:9000/base",
              f"{S}s.loadbalancer.server.preservePath": "true", **beside}  # fmt: skip
    found = claims(labels, "http://127.0.0.1,h2c://127.0.0.1")
    assert found.routes == ()
    (problem,) = found.problems
    assert problem.label == f"{S}s.loadbalancer.server.preservePath" and refused in problem.message


@pytest.mark.parametrize(
    ("kind", "option"),
    [("addPrefix", "prefix=/api"), ("replacePath", "path=/x"), ("stripPrefix", "prefixes=/api"),
     ("stripPrefixRegex", "regex=^/[a-z]+")],
)  # fmt: skip
def test_an_h2c_service_is_served_without_the_path_middlewares_grpc_pass_cannot_apply(
    kind: str, option: str
) -> None:
    key, _, value = option.partition("=")
    labels = {f"{S}s.loadbalancer.server.port": "9000", f"{S}s.loadbalancer.server.scheme": "h2c",
              f"traefik.http.middlewares.m.{kind}.{key}": value,
              f"{R}r.middlewares": "m"}  # fmt: skip
    found = claims(labels)
    (route,) = found.routes
    assert (route.add_prefix, route.replace_path) == ("", None)
    assert route.rewrite_phase.strip_prefix_regex is None
    (problem,) = found.problems
    assert problem.label == f"traefik.http.middlewares.m.{kind}.{key}"
    assert kind in problem.message and "h2c" in problem.message
    # replacePathRegex rewrites $uri, which grpc_pass sends as proxy_pass does: applied.
    regex = {**labels, "traefik.http.middlewares.m.replacePathRegex.regex": "^/api/(.*)",
             "traefik.http.middlewares.m.replacePathRegex.replacement": "/$1"}  # fmt: skip
    del regex[f"traefik.http.middlewares.m.{kind}.{key}"]
    (route,) = claims(regex).routes
    assert route.replace_path is not None and claims(regex).problems == ()
