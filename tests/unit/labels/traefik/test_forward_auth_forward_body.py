"""forwardAuth's forwardBody and maxBodySize as labels: read as Traefik reads them (maxBodySize
only with forwardBody, a negative one no limit), served by njs (an edge without it refuses the
router by name), and refused by name beside maxResponseBodySize or buffering's
maxRequestBodyBytes. What the edge does with the body: tests/unit/edge/test_forward_auth_body.py."""

from __future__ import annotations

from dataclasses import replace

import pytest

from certbotless.edge.njs import needs_njs, without_njs
from certbotless.labels.traefik.labels import traefik_claims
from certbotless.model import Route, ServiceInfo
from tests.support.edge_nginx import one_router

M = "traefik.http.middlewares.fa.forwardauth."


def _claims(**options: str) -> tuple[list[Route], list[str]]:
    labels = {f"{M}address": "http://127.0.0.1:81/check"}
    labels |= {f"{M}{key}": value for key, value in options.items()}
    claims = traefik_claims([ServiceInfo("app", one_router(80, labels))])["app"]
    return list(claims.routes), [f"{p.label}: {p.message}" for p in claims.problems]


@pytest.mark.parametrize(("options", "forwards", "limit"), [
    ({"forwardbody": "true"}, True, None),
    ({"forwardbody": "true", "maxbodysize": "42"}, True, 42),
    ({"forwardbody": "true", "maxbodysize": "0"}, True, 0),
    ({"forwardbody": "true", "maxbodysize": "-1"}, True, None),
    ({"forwardbody": "false", "maxbodysize": "42"}, False, None),  # Traefik reads it not
    ({}, False, None),
])  # fmt: skip
def test_forward_body_and_its_limit_are_read_as_traefik(
    options: dict[str, str], forwards: bool, limit: int | None
) -> None:
    [route], problems = _claims(**options)
    assert problems == []
    assert route.auth_options.forwards_body is forwards
    assert route.auth_options.max_request_body == limit
    assert needs_njs(route) is forwards


def test_an_edge_without_njs_refuses_forward_body_by_name() -> None:
    [route], _ = _claims(forwardbody="true")
    kept, [problem] = without_njs([route, replace(route, service="b", auth_url=None)], frozenset())
    assert [r.service for r in kept] == ["b"]
    assert "forwardBody" in problem.label and "njs" in problem.message


@pytest.mark.parametrize("options", [
    {"forwardbody": "true", "maxbodysize": "1kb"},
    {"forwardbody": "true", "maxresponsebodysize": "100"},
])  # fmt: skip
def test_what_the_edge_cannot_do_is_refused_by_name(options: dict[str, str]) -> None:
    routes, [problem] = _claims(**options)
    assert routes == []
    assert "maxBodySize" in problem or "maxResponseBodySize" in problem


@pytest.mark.parametrize("order", ["fa,buf", "buf,fa"])
def test_max_body_size_beside_buffering_is_refused_either_way(order: str) -> None:
    """forwardAuth after buffering: the router is refused (forwardAuth guards access); buffering
    after forwardAuth: the route is served without buffering (a shaping middleware)."""
    labels = {f"{M}address": "http://127.0.0.1:81/check", f"{M}forwardbody": "true",
              f"{M}maxbodysize": "10",
              "traefik.http.middlewares.buf.buffering.maxrequestbodybytes": "100"}  # fmt: skip
    labels = one_router(80, labels)
    labels["traefik.http.routers.r.middlewares"] = order
    claims = traefik_claims([ServiceInfo("app", labels)])["app"]
    assert "maxBodySize beside buffering" in str(claims.problems)
    if order == "buf,fa":
        assert claims.routes == ()
    else:
        [route] = claims.routes
        assert route.max_body_size is None and route.auth_options.max_request_body == 10


@pytest.mark.parametrize("order", ["allow,fa", "fa,allow"])
def test_forward_body_after_what_answers_first_is_refused(order: str) -> None:
    """njs asks the auth server before the router's other checks: a middleware that answers or
    refuses listed before the forwardAuth would run after it, not as Traefik runs it."""
    labels = {f"{M}address": "http://127.0.0.1:81/check", f"{M}forwardbody": "true",
              "traefik.http.middlewares.allow.ipallowlist.sourcerange": "10.0.0.0/8"}  # fmt: skip
    labels = one_router(80, labels)
    labels["traefik.http.routers.r.middlewares"] = order
    claims = traefik_claims([ServiceInfo("app", labels)])["app"]
    if order == "allow,fa":
        assert claims.routes == ()
        assert "forwardBody after ipAllowList" in str(claims.problems)
    else:
        [route] = claims.routes
        assert route.allow_from == ("10.0.0.0/8",) and route.auth_options.forwards_body
