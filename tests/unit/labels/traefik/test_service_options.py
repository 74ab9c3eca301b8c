"""A Traefik service's options as the edge reads them (labels/traefik/service_options.py): the
sticky cookie as Traefik 3 makes it (its default name, Go's attributes), the strategies, and
what is refused with words."""

from __future__ import annotations

import hashlib

import pytest

from certbotless.labels.traefik.service_options import upstream_options
from certbotless.model import ServiceInfo
from certbotless.upstream_options import StickyCookie, Strategy
from tests.support.traefik_cases import discover_case

S = "traefik.http.services.s.loadbalancer."


def _router(options: dict[str, str]) -> ServiceInfo:
    return ServiceInfo("app", {
        "traefik.enable": "true", "traefik.http.routers.r.rule": "Host(`a.test`)",
        f"{S}server.port": "80", **{S + key: value for key, value in options.items()},
    })  # fmt: skip


def _sticky(options: dict[str, str]) -> StickyCookie | None:
    return upstream_options(_router(options), "s")[0].sticky


def test_the_default_cookie_name_is_traefiks_for_the_swarm_provider() -> None:
    digest = hashlib.sha1(b"_TRAEFIK_BACKEND_s@swarm").hexdigest()
    assert _sticky({"sticky.cookie": "true"}) == StickyCookie(f"_{digest[:5]}")


@pytest.mark.parametrize(
    ("options", "cookie"),
    [
        ({"sticky": "true"}, None),  # a Sticky without Cookie: Traefik sets none
        ({"sticky": "false", "sticky.cookie.name": "fui"}, None),  # label_test.go's Service1
        ({"sticky.cookie": "false"}, None),
        ({"Sticky.Cookie.Name": "my session"}, StickyCookie("my_session")),  # sanitizeName
        ({"sticky.cookie.sameSite": "STRICT", "sticky.cookie.name": "lb"},
         StickyCookie("lb", same_site="Strict")),
        ({"sticky.cookie.sameSite": "other", "sticky.cookie.name": "lb"}, StickyCookie("lb")),
        ({"sticky.cookie.maxAge": "-1", "sticky.cookie.name": "lb"},
         StickyCookie("lb", max_age=-1)),
        ({"sticky.cookie.path": "", "sticky.cookie.name": "lb"}, StickyCookie("lb", path="")),
        ({"sticky.cookie.domain": ".a.test", "sticky.cookie.name": "lb"},
         StickyCookie("lb", domain="a.test")),
    ],
)  # fmt: skip
def test_sticky_cookies_as_traefik_decodes_them(
    options: dict[str, str], cookie: StickyCookie | None
) -> None:
    assert _sticky(options) == cookie


def test_go_writes_a_cookies_attributes_in_its_order() -> None:
    cookie = StickyCookie("lb", "/foobar", "a.test", True, True, "Lax", 42)
    assert (
        cookie.attributes()
        == "; Path=/foobar; Domain=a.test; Max-Age=42; HttpOnly; Secure; SameSite=Lax"
    )
    assert StickyCookie("lb", max_age=-5).attributes() == "; Path=/; Max-Age=0"


@pytest.mark.parametrize(
    ("given", "strategy"),
    [
        ("", Strategy.ROUND_ROBIN),
        ("wrr", Strategy.ROUND_ROBIN),
        ("p2c", Strategy.POWER_OF_TWO_CHOICES),
    ],
)
def test_strategies(given: str, strategy: Strategy) -> None:
    options = {"strategy": given} if given else {}
    assert upstream_options(_router(options), "s")[0].strategy is strategy


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"strategy": "P2C"}, "accepted: wrr (in turn, the default) and p2c"),  # Traefik: 404
        ({"strategy": "hrw"}, "use p2c or wrr"),
        ({"strategy": "leasttime"}, "least_time"),
        ({"sticky.cookie.name": "a|b"}, "rename the cookie"),
        ({"sticky.cookie.maxAge": "soon"}, "a number of seconds"),
        ({"sticky.cookie.path": "/a;b"}, "not a cookie path"),
    ],
)
def test_what_the_edge_cannot_do_leaves_the_router_unrouted(
    options: dict[str, str], words: str
) -> None:
    routes, problems = discover_case([_router(options)])
    assert routes == []
    assert any(words in problem.message and "not routed" in problem.message for problem in problems)


def test_a_flush_interval_that_is_no_duration_is_said_and_not_applied() -> None:
    options, problems = upstream_options(_router({"responseForwarding.flushInterval": "x"}), "s")
    assert not options.flush_at_once
    assert [p.label for p in problems] == [f"{S}responseForwarding.flushInterval"]
    for interval in ("1s", "100ms", "-1", "0", "1.5s"):
        got, said = upstream_options(_router({"responseForwarding.flushInterval": interval}), "s")
        assert got.flush_at_once and said == []


def test_an_unknown_sticky_option_is_said() -> None:
    labels = {"sticky.cookie.name": "lb", "sticky.cookie.partitioned": "true"}
    options, problems = upstream_options(_router(labels), "s")
    assert options.sticky == StickyCookie("lb")
    assert [p.label for p in problems] == [f"{S}sticky.cookie.partitioned"]
