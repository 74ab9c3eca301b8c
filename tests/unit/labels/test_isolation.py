"""Isolation between services (issue 14, item 4; issue 25): a certificate name, a host and a
host+path belong to the service that claimed them first; another service joins them only when
the owner's certbotless.share names it, is refused otherwise with a problem naming the owner, and
never changes what the owner gets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certbotless.edge.render import render_nginx_conf
from certbotless.edge.validation import validate_nginx_conf
from certbotless.labels.settle import discover
from certbotless.model import Discovery, KeyType, ServiceInfo
from certbotless.swarm.api import Swarm
from tests.support.factories import CERTS_DIR, RESPONDER, stored_cert

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SHOP = {"certbotless.domains": "shop.example.com", "certbotless.port": "80",
        "certbotless.name": "shop"}  # fmt: skip


def service(
    name: str, labels: dict[str, str], stack: str = "", minute: int | None = 0
) -> ServiceInfo:
    created = None if minute is None else T0 + timedelta(minutes=minute)
    return ServiceInfo(name, labels, ("net",), ("edge",), stack=stack, created_at=created)


def test_another_stack_cannot_join_a_certificate_and_change_it() -> None:
    owner = service("shop_web", SHOP, "shop", minute=0)
    stranger = service("evil_app", {**SHOP, "certbotless.domains": "shop.example.com,evil.test",
                                    "certbotless.key_type": "rsa2048",
                                    "certbotless.path": "/x"}, "evil", minute=1)  # fmt: skip
    found = discover([stranger, owner])
    (spec,) = found.specs
    assert (spec.name, spec.domains, spec.key_type) == ("shop", ("shop.example.com",),
                                                        KeyType.EC256)  # fmt: skip
    (problem,) = found.problems
    assert (problem.service, problem.label) == ("evil_app", "certbotless.name")
    assert "certificate shop belongs to shop_web, which claimed it first" in problem.message
    assert [r.service for r in found.routes] == ["shop_web"]


def test_another_stack_shares_a_certificate_only_when_its_owner_says_so() -> None:
    blog = service("blog_app", {**SHOP, "certbotless.path": "/blog"}, "blog", minute=1)
    found = discover([service("shop_web", SHOP, "shop", minute=0), blog])
    assert [(p.service, p.label) for p in found.problems] == [("blog_app", "certbotless.name")]
    assert {r.service for r in found.routes} == {"shop_web"}
    shared = {**SHOP, "certbotless.share": "blog_app"}
    found = discover([service("shop_web", shared, "shop", minute=0), blog])
    assert found.problems == ()
    assert [(s.name, s.domains) for s in found.specs] == [("shop", ("shop.example.com",))]
    assert {r.service for r in found.routes} == {"shop_web", "blog_app"}


def test_one_stack_shares_a_certificate_only_when_its_options_agree() -> None:
    found = discover([
        service("shop_web", {**SHOP, "certbotless.share": "www,api"}, "shop", minute=0),
        service("shop_www", {**SHOP, "certbotless.domains": "www.shop.example.com"}, "shop", 1),
        service("shop_api", {**SHOP, "certbotless.domains": "api.shop.example.com",
                             "certbotless.profile": "shortlived"}, "shop", 2),
    ])  # fmt: skip
    (spec,) = found.specs
    assert spec.domains == ("shop.example.com", "www.shop.example.com")
    (problem,) = found.problems
    assert (problem.service, problem.label) == ("shop_api", "certbotless.profile")
    assert "certificate shop is shop_web's, with certbotless.key_type ec256" in problem.message
    assert {r.service for r in found.routes} == {"shop_web", "shop_www"}


def test_a_certificate_cannot_name_a_host_another_stack_claimed_first() -> None:
    found = discover([
        service("shop_web", SHOP, "shop", minute=0),
        service("evil_app", {"certbotless.domains": "shop.example.com", "certbotless.port": "80",
                             "certbotless.path": "/evil"}, "evil", minute=1),
        service("evil_certs", {"certbotless.certificate.mine": "shop.example.com"}, "evil", 2),
    ])  # fmt: skip
    assert [s.name for s in found.specs] == ["shop"]
    problems = {p.service: p for p in found.problems}
    assert "shop.example.com belongs to shop_web" in problems["evil_app"].message
    assert problems["evil_certs"].label == "certbotless.certificate.mine"
    assert [r.service for r in found.routes] == ["shop_web"]


def test_another_stack_cannot_drop_or_add_hsts_on_a_host() -> None:
    hsts = {**SHOP, "certbotless.hsts": "true"}
    found = discover([
        service("shop_web", hsts, "shop", minute=0),
        service("evil_plain", {**SHOP, "certbotless.path": "/plain",
                               "certbotless.redirect": "false"}, "evil", minute=1),
        service("blog_web", {**SHOP, "certbotless.domains": "blog.example.com",
                             "certbotless.name": "blog"}, "blog", minute=2),
        service("evil_hsts", {**SHOP, "certbotless.domains": "blog.example.com",
                              "certbotless.name": "blog", "certbotless.path": "/h",
                              "certbotless.hsts": "true"}, "evil", minute=3),
    ])  # fmt: skip
    problems = {(p.service, p.label): p.message for p in found.problems}
    assert set(problems) == {("evil_plain", "certbotless.name"),
                             ("evil_hsts", "certbotless.name")}  # fmt: skip
    assert "belongs to shop_web" in problems["evil_plain", "certbotless.name"]
    assert {r.service for r in found.routes} == {"shop_web", "blog_web"}
    assert next(r for r in found.routes if r.service == "shop_web").hsts


def test_the_first_claimed_ip_address_stays_served() -> None:
    ip = {"certbotless.port": "80", "certbotless.profile": "shortlived"}
    found = discover([
        service("first", {**ip, "certbotless.domains": "192.0.2.50"}, "a", minute=0),
        service("lower", {**ip, "certbotless.domains": "192.0.2.1"}, "b", minute=1),
    ])  # fmt: skip
    assert [r.hosts for r in found.routes] == [("192.0.2.50",)]
    assert [p.service for p in found.problems] == ["lower"]


# Property-based: whatever a newer service of its own stack says in its labels, it gets routes
# nginx accepts or label problems of its own, and every other service gets what it got before.

VICTIMS = (
    service("edge_nginx", {"certbotless.edge": "true"}, "edge", minute=0),
    service(
        "shop_web",
        {**SHOP, "certbotless.hsts": "true", "certbotless.share": "www"},
        "shop",
        minute=1,
    ),
    service(
        "shop_www",
        {**SHOP, "certbotless.domains": "www.shop.example.com", "certbotless.path": "/www"},
        "shop",
        minute=2,
    ),
    service(
        "nlp_api",
        {
            "certbotless.domains": "api.example.com",
            "certbotless.port": "8000",
            "certbotless.path": "/en",
            "certbotless.redirect": "false",
            "certbotless.key_type": "rsa2048",
            "certbotless.share": "auth",
        },
        "nlp",
        minute=3,
    ),
    service(
        "nlp_auth",
        {
            "certbotless.domains": "api.example.com",
            "certbotless.port": "80",
            "certbotless.auth_url": "http://auth:8000/check",
            "certbotless.key_type": "rsa2048",
            "certbotless.certificate.docs": "docs.example.com",
        },
        "nlp",
        4,
    ),
    service(
        "ip_site",
        {
            "certbotless.domains": "192.0.2.10",
            "certbotless.port": "80",
            "certbotless.profile": "shortlived",
        },
        "ip",
        minute=5,
    ),
    service(
        "loose", {"certbotless.domains": "loose.example.com", "certbotless.port": "80"}, minute=6
    ),  # in no stack
)
HOSTS = ["shop.example.com", "www.shop.example.com", "api.example.com", "docs.example.com",
         "loose.example.com", "192.0.2.10", "192.0.2.1", "new.example.com", "*.example.com",
         "a" * 64 + ".example.com", "x.example.com:80", ""]  # fmt: skip
VALUES = {
    "certbotless.domains": st.lists(st.sampled_from(HOSTS), min_size=1, max_size=3).map(",".join),
    "certbotless.port": st.sampled_from(["80", "8000", "0", "70000", "8²", ""]),
    "certbotless.path": st.sampled_from(
        ["/", "/en", "/www", "/x", "/.well-known/acme-challenge", "/a b", "x"]
    ),
    "certbotless.name": st.sampled_from(["shop", "docs", "api.example.com", "mine", "Bad!"]),
    "certbotless.key_type": st.sampled_from([k.value for k in KeyType] + ["dsa"]),
    "certbotless.profile": st.sampled_from(["shortlived", "classic", ""]),
    "certbotless.hsts": st.sampled_from(["true", "false", "maybe"]),
    "certbotless.redirect": st.sampled_from(["true", "false", "no"]),
    "certbotless.edge": st.sampled_from(["true", "false"]),
    "certbotless.max_body_size": st.sampled_from(["20m", "0", "1 g"]),
    "certbotless.timeout": st.sampled_from(["300s", "2d", "5m"]),
    "certbotless.auth_url": st.sampled_from(["http://auth:8000/check", "http://a/{x}", "x"]),
    "certbotless.errors": st.sampled_from(["http://e/{status}.html", "http://e/x"]),
    "certbotless.errors_status": st.sampled_from(["400-599", "404", "200"]),
    "certbotless.certificate.docs": st.sampled_from(HOSTS),
    "certbotless.certificate.shop": st.sampled_from(HOSTS),
    "certbotless.certificate.own": st.sampled_from(HOSTS),
}
ANY_TEXT = st.text(max_size=40)
LABELS = st.dictionaries(
    st.sampled_from(sorted(VALUES)), st.just(""), max_size=len(VALUES)
).flatmap(lambda keys: st.fixed_dictionaries({k: st.one_of(VALUES[k], ANY_TEXT) for k in keys}))
HOSTILE = st.builds(
    lambda labels, stack, minute: service("zz_hostile", labels, stack, minute),
    LABELS,
    st.sampled_from(["", "hostile"]),
    st.sampled_from([None, 60]),  # never older than a victim (unknown age sorts last)
)
PROPERTY = settings(max_examples=60, deadline=timedelta(seconds=5),
                    suppress_health_check=[HealthCheck.too_slow])  # fmt: skip


def others(found: Discovery, hostile: str) -> tuple[object, ...]:
    return (
        [r for r in found.routes if r.service != hostile],
        sorted(str(p) for p in found.problems if p.service != hostile),
    )


BEFORE = discover(VICTIMS, edge="edge_nginx")


@PROPERTY
@given(HOSTILE)
def test_a_newer_service_of_another_stack_changes_nothing_of_the_others(
    hostile: ServiceInfo,
) -> None:
    found = discover([*VICTIMS, hostile], edge="edge_nginx")
    assert others(found, hostile.name) == others(BEFORE, hostile.name)
    # Every certificate the others had is there unchanged; any new one is the hostile one's.
    assert set(BEFORE.specs) <= set(found.specs)
    alone = {s.name for s in discover([hostile]).specs}
    assert {s.name for s in found.specs} - {s.name for s in BEFORE.specs} <= alone


@PROPERTY
@given(HOSTILE)
def test_any_labels_give_routes_nginx_accepts_or_problems_of_their_own(
    hostile: ServiceInfo,
) -> None:
    found = discover([*VICTIMS, hostile], edge="edge_nginx")
    certs = {s.name: stored_cert(name=s.name, domains=s.domains) for s in found.specs}
    text = render_nginx_conf(found.routes, certs, RESPONDER, CERTS_DIR)
    validate_nginx_conf(text)  # raises NginxConfigError when nginx -t fails


class _Api:
    """The two calls Swarm.services makes, answered as the Engine API does."""

    def networks(self) -> list[dict[str, str]]:
        return [{"Id": "n1", "Name": "certbotless-edge"}]

    def services(self) -> list[dict[str, object]]:
        labels = {"com.docker.stack.namespace": "shop", "certbotless.port": "80"}
        networks = {"Networks": [{"Target": "n1"}]}
        spec = {"Name": "shop_web", "Labels": labels, "TaskTemplate": networks}
        return [{"Spec": spec, "CreatedAt": "2026-01-02T03:04:05.123456789Z"},
                {"Spec": {"Name": "loose"}}]  # fmt: skip


def test_services_carry_their_stack_and_creation_time() -> None:
    shop, loose = Swarm(api=cast(Any, _Api())).services()
    assert (shop.stack, shop.created_at, shop.network_names) == (
        "shop", datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC), ("certbotless-edge",),
    )  # fmt: skip
    assert (loose.stack, loose.created_at) == ("", None)
