"""DNS-01 with the operator's credentials only for the services and zones the operator allows
(issue 25, item 11; CERTBOTLESS_DNS01_ALLOWED). On main any service's label had certbotless
publish TXT records in any zone its credentials reach."""

from __future__ import annotations

from dataclasses import replace

import pytest

from certbotless.labels.dialects import discovered
from certbotless.model import Discovery, ServiceInfo
from certbotless.setting_values import dns01_grants
from certbotless.settings import Settings, SettingsError

EDGE = ServiceInfo("edge_nginx", {"certbotless.edge": "true"}, ("net",), ("certbotless-edge",))


def app(name: str, domains: str, challenge: str = "dns-01") -> ServiceInfo:
    labels = {"certbotless.domains": domains, "certbotless.port": "8000"}
    if challenge:
        labels["certbotless.challenge"] = challenge
    return ServiceInfo(name, labels, ("net",), ("certbotless-edge",), id=f"id-{name}")


def found(allowed: str | None, *services: ServiceInfo) -> Discovery:
    settings = Settings(own_service="edge_certbotless")
    if allowed is not None:
        settings = replace(settings, dns01_allowed=dns01_grants(allowed, "DNS01_ALLOWED"))
    return discovered(settings, [EDGE, *services], "edge_nginx")


def test_unset_no_service_may_use_dns01_and_the_problem_names_the_setting() -> None:
    result = found(
        None, app("shop_web", "*.shop.example.com"), app("blog_web", "blog.example.org", "")
    )
    assert [spec.name for spec in result.specs] == ["blog.example.org"]  # HTTP-01 goes on
    assert [route.service for route in result.routes] == [
        "blog_web"
    ]  # the refused one is not routed
    (problem,) = result.problems
    assert problem.service == "shop_web" and problem.label == "certbotless.domains"
    assert "CERTBOTLESS_DNS01_ALLOWED" in problem.message and "unset" in problem.message
    assert "shop_web=shop.example.com" in problem.message  # what to ask the operator for


def test_each_service_only_in_the_zones_allowed_to_it() -> None:
    allowed = "shop_*=shop.example.com;ops_*=example.org,example.net"
    result = found(
        allowed,
        app("shop_web", "*.shop.example.com"),
        app("shop_api", "api.shop.example.com"),  # challenge=dns-01 without a wildcard: counted
        app("evil_app", "*.pay.shop.example.com"),  # in shop's zone, but not a shop service
        app("ops_grafana", "*.example.net"),
        app("shop_admin", "*.example.org"),  # a zone allowed to others
    )
    assert sorted(s.name for s in result.specs) == [
        "api.shop.example.com", "wildcard.example.net", "wildcard.shop.example.com",
    ]  # fmt: skip
    assert sorted(p.service for p in result.problems) == ["evil_app", "shop_admin"]
    assert all("not among its zones" in p.message for p in result.problems)


def test_star_allows_every_service_and_zone() -> None:
    result = found("*=*", app("anyone", "*.example.com"), app("other", "a.example.net"))
    assert len(result.specs) == 2 and result.problems == ()


def test_the_setting_is_read_and_checked() -> None:
    env = {"CERTBOTLESS_DNS01_ALLOWED": " shop_*=Shop.Example.com. , example.org ; *=lab.test"}
    grants = Settings.from_env(env).dns01_allowed
    assert [(g.services, g.zones) for g in grants] == [
        ("shop_*", ("shop.example.com", "example.org")), ("*", ("lab.test",)),
    ]  # fmt: skip
    assert Settings.from_env({}).dns01_allowed == ()
    with pytest.raises(SettingsError, match="SERVICES=ZONE"):
        Settings.from_env({"CERTBOTLESS_DNS01_ALLOWED": "shop_*"})


def test_a_pattern_of_one_stack_does_not_reach_a_stack_whose_name_extends_it() -> None:
    """`docker stack deploy -c x.yml shop_evil` names its service `x` shop_evil_x, which a shell
    pattern `shop_*` would match: the grant's wildcards stop at `_`."""
    result = found(
        "shop_*=shop.example.com;sh?p_api=api.example.com",
        app("shop_web", "*.shop.example.com"),
        app("shop_evil_x", "*.pay.shop.example.com"),
        app("shop_api", "*.api.example.com"),
    )
    assert sorted(s.name for s in result.specs) == ["wildcard.api.example.com",
                                                     "wildcard.shop.example.com"]  # fmt: skip
    assert [p.service for p in result.problems] == ["shop_evil_x"]
