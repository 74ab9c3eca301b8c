"""Claims are facts the sidecar records (issue 25, items 1-3, and 6 and 7 as they follow): a
certificate name, a host, a host and path and a middleware name are their first claimant's,
recorded with its Swarm ID; a service's own stack label decides nothing, and others join only
when the owner's certbotless.share names them."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from certbotless.labels.claims import Ledger, may_join
from certbotless.labels.dialects import discovered
from certbotless.labels.settle import discover
from certbotless.labels.traefik.labels import traefik_claims
from certbotless.model import Discovery, ServiceInfo
from certbotless.settings import Settings, StatusPage

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SHOP = {"certbotless.domains": "shop.example.com", "certbotless.port": "80",
        "certbotless.name": "shop", "certbotless.hsts": "true"}  # fmt: skip


def service(name: str, labels: dict[str, str], stack: str = "", minute: int = 0) -> ServiceInfo:
    return ServiceInfo(name, labels, ("net",), ("edge",), stack=stack,
                       created_at=T0 + timedelta(minutes=minute), id=f"id-{name}")  # fmt: skip


def owners(found: Discovery) -> dict[str, list[str]]:
    by_host: dict[str, list[str]] = {}
    for route in found.routes:
        for host in route.hosts:
            by_host.setdefault(host, []).append(f"{route.service}{route.path}")
    return by_host


# Item 1: a service labelled with shop's stack namespace.
HOSTILE = service("intruder", {
    **SHOP, "certbotless.domains": "shop.example.com,unreachable.example.net",
    "certbotless.path": "/pay", "certbotless.redirect": "false",
    "certbotless.hsts": "false"}, stack="shop", minute=5)  # fmt: skip


def test_a_service_claiming_the_owners_stack_joins_nothing() -> None:
    shop = service("shop_web", SHOP, stack="shop")
    found = discover([shop, HOSTILE])
    (spec,) = found.specs
    assert spec.domains == ("shop.example.com",)  # no name added: renewals keep working
    assert owners(found) == {"shop.example.com": ["shop_web/"]}  # not routed on shop's host
    (route,) = found.routes
    assert route.hsts  # and shop's HSTS stays
    (problem,) = found.problems
    assert (problem.service, problem.label) == ("intruder", "certbotless.name")
    assert "certificate shop belongs to shop_web" in problem.message


def test_the_owner_lets_in_the_services_its_share_label_names() -> None:
    shop = service("shop_web", {**SHOP, "certbotless.share": "pay"}, stack="shop")
    pay = service("shop_pay", {**SHOP, "certbotless.path": "/pay"}, stack="shop", minute=5)
    found = discover([shop, pay])
    assert found.problems == ()
    assert owners(found) == {"shop.example.com": ["shop_web/", "shop_pay/pay"]}
    # Another service that says it is of stack shop, or that names shop_web in its own share
    # label (the joiner's labels count for nothing), is not let in.
    bold = service("evil_pay", {"certbotless.share": "shop_web"}, stack="shop")
    assert not may_join(bold, shop) and may_join(shop, bold)


def test_where_the_operator_trusts_stacks_one_stacks_services_share_as_in_traefik() -> None:
    """CERTBOTLESS_TRUST_STACK_NAMESPACE (every service from `docker stack deploy`, which sets
    the namespace): one stack's services share a host with no share label, as Traefik's do;
    another stack's still does not."""
    shop = replace(service("shop_web", SHOP, stack="shop"), trusted_stack="shop")
    pay = replace(service("shop_pay", {**SHOP, "certbotless.path": "/pay"}, stack="shop",
                          minute=5), trusted_stack="shop")  # fmt: skip
    other = replace(service("blog_pay", {**SHOP, "certbotless.path": "/blog"}, stack="blog",
                            minute=6), trusted_stack="blog")  # fmt: skip
    found = discover([shop, pay, other])
    assert owners(found) == {"shop.example.com": ["shop_web/", "shop_pay/pay"]}
    assert [p.service for p in found.problems] == ["blog_pay"]
    # Untrusted (the default), the same stack label lets nothing in.
    assert not may_join(service("shop_pay", {}, stack="shop"), service("shop_web", {}, "shop"))


# Item 2: a service created before shop's, relabelled later.


def test_a_service_older_than_the_owner_relabelled_later_takes_nothing() -> None:
    older = service("old", {"certbotless.domains": "old.example.com", "certbotless.port": "80"})
    shop = service("shop_web", SHOP, stack="shop", minute=5)
    first = discover([older, shop])
    assert first.claims["host:shop.example.com"] == "id-shop_web"
    assert first.claims["certificate:shop"] == "id-shop_web"
    relabelled = service("old", {**SHOP, "certbotless.hsts": "false"})
    found = discover([relabelled, shop], ledger=Ledger(first.claims))
    assert owners(found) == {"shop.example.com": ["shop_web/"]}
    assert [(s.name, s.domains) for s in found.specs] == [("shop", ("shop.example.com",))]
    assert {p.service for p in found.problems} == {"old"}
    kept = {k: v for k, v in first.claims.items() if "shop" in k}
    assert {k: v for k, v in found.claims.items() if "shop" in k} == kept  # as first recorded
    # Without the record (the base's rule, by creation time) the older service took it all.
    unrecorded = discover([relabelled, shop])
    assert owners(unrecorded) == {"shop.example.com": ["old/"]}


def test_a_claim_passes_on_when_its_owner_stops_claiming_it() -> None:
    shop = service("shop_web", SHOP, stack="shop", minute=5)
    other = service("other", {**SHOP, "certbotless.hsts": "false"}, minute=9)
    recorded = discover([shop, other]).claims
    found = discover([other], ledger=Ledger(recorded))
    assert owners(found) == {"shop.example.com": ["other/"]}
    assert found.claims["host:shop.example.com"] == "id-other"


# Item 3: a borrowed middleware name defined by an older service of another stack.

ROUTER = "traefik.http.routers.app."
SSO = "traefik.http.middlewares.sso."


def test_a_borrowed_middleware_is_only_the_definition_its_owner_shares() -> None:
    older = service(
        "team_b_web",
        {"traefik.enable": "true", f"{SSO}headers.customrequestheaders.X-Team": "b"},
        "team_b",
    )
    auth = service("auth_sso", {"traefik.enable": "true",
                                f"{SSO}forwardauth.address": "http://auth:9091/verify",
                                "certbotless.share": "*"}, "auth", minute=3)  # fmt: skip
    app = service("team_a_app", {"traefik.enable": "true",
                                 f"{ROUTER}rule": "Host(`app.example.com`)",
                                 f"{ROUTER}middlewares": "sso@docker",
                                 "traefik.http.services.app.loadbalancer.server.port": "80"},
                  "team_a", minute=5)  # fmt: skip
    services = [older, auth, app]
    ledger = Ledger({})
    found = discover(services, native=False, foreign=traefik_claims(services, ledger=ledger),
                     ledger=ledger)  # fmt: skip
    assert found.routes == ()  # never served without its forward auth
    (problem,) = found.problems
    assert problem.service == "team_a_app" and "team_b_web" in problem.message
    assert found.claims["middleware:sso"] == "id-team_b_web"
    # Once the older definition is gone, the name passes to the one that shares it.
    ledger = Ledger(found.claims)
    found = discover([auth, app], native=False,
                     foreign=traefik_claims([auth, app], ledger=ledger), ledger=ledger)  # fmt: skip
    (route,) = found.routes
    assert route.auth_url == "http://auth:9091/verify"
    # And a newer service defining it (sharing with everyone) does not take it back.
    ledger = Ledger(found.claims)
    found = discover([auth, app, older], native=False,
                     foreign=traefik_claims([auth, app, older], ledger=ledger),
                     ledger=ledger)  # fmt: skip
    assert [r.auth_url for r in found.routes] == ["http://auth:9091/verify"]


def test_a_name_under_anothers_wildcard_is_the_wildcards_owners() -> None:
    wildcard = {"certbotless.domains": "*.apps.example.com", "certbotless.port": "80",
                "certbotless.challenge": "dns-01"}  # fmt: skip
    team_a = service("a_web", wildcard, "a")
    team_b = service("b_billing", {"certbotless.domains": "billing.apps.example.com",
                                   "certbotless.port": "80"}, "b", minute=5)  # fmt: skip
    found = discover([team_a, team_b])
    assert owners(found) == {"*.apps.example.com": ["a_web/"]}
    assert [p.service for p in found.problems] == ["b_billing"]


def test_a_router_to_the_status_page_on_anothers_host_is_refused_with_its_certificate() -> None:
    """Item 7: the refusal follows the service whose labels asked (tenant_x), not the route's
    upstream (certbotless's own service), so the status page does not appear on shop's host."""
    page = Settings(
        own_service="edge_certbotless",
        status_page=StatusPage(("0.0.0.0", 8403), allow_from=("10.0.0.0/8",)),
    )
    tenant = service("tenant_x", {"traefik.enable": "true", f"{ROUTER}service": "api@internal",
                                  f"{ROUTER}rule": "Host(`shop.example.com`) && PathPrefix(`/s`)",
                                  f"{ROUTER}tls": "true"}, "tenant", minute=5)  # fmt: skip
    own = service("edge_certbotless", {}, "edge")
    found = discovered(page, [own, service("shop_web", SHOP, "shop"), tenant], None)
    assert owners(found) == {"shop.example.com": ["shop_web/"]}
    assert [p.service for p in found.problems] == ["tenant_x"]


# Property: whatever a second stack's labels say (its stack label, its age, its share label
# included), stack A's routes, certificates and protections are unchanged.

TEAM_A = (
    service("a_web", {**SHOP, "certbotless.share": "api"}, "a", minute=10),
    service("a_api", {**SHOP, "certbotless.path": "/api", "certbotless.hsts": "false",
                      "certbotless.allow_from": "10.0.0.0/8"}, "a", minute=11),
    service("a_auth", {"traefik.enable": "true", f"{SSO}forwardauth.address": "http://a:1/",
                       "certbotless.share": "admin"}, "a", minute=12),
    service("a_admin", {"traefik.enable": "true", f"{ROUTER}rule": "Host(`admin.example.com`)",
                        f"{ROUTER}middlewares": "sso@docker", f"{ROUTER}tls": "true",
                        "traefik.http.services.app.loadbalancer.server.port": "80"},
            "a", minute=13),
)  # fmt: skip
HOSTS = ["shop.example.com", "admin.example.com", "b.example.com", "unreachable.example.net",
         "*.example.com"]  # fmt: skip
NATIVE = {
    "certbotless.domains": st.lists(st.sampled_from(HOSTS), min_size=1, max_size=2).map(",".join),
    "certbotless.port": st.just("80"),
    "certbotless.name": st.sampled_from(["shop", "admin.example.com", "b"]),
    "certbotless.path": st.sampled_from(["/", "/api", "/pay"]),
    "certbotless.hsts": st.sampled_from(["true", "false"]),
    "certbotless.redirect": st.sampled_from(["true", "false"]),
    "certbotless.share": st.sampled_from(["a_web", "*", "web,api"]),
    "certbotless.certificate.shop": st.sampled_from(HOSTS),
}
TRAEFIK = {
    "traefik.enable": st.just("true"),
    f"{SSO}headers.customrequestheaders.X-B": st.just("b"),
    f"{SSO}forwardauth.address": st.just("http://b:1/"),
    "traefik.http.routers.b.rule": st.sampled_from([f"Host(`{h}`)" for h in HOSTS[:3]]),
    "traefik.http.routers.b.middlewares": st.just("sso@docker"),
    "traefik.http.services.b.loadbalancer.server.port": st.just("80"),
    "certbotless.share": st.sampled_from(["a_admin", "*"]),
}


def _labels(values: dict[str, st.SearchStrategy[str]]) -> st.SearchStrategy[dict[str, str]]:
    return st.dictionaries(st.sampled_from(sorted(values)), st.just(""), max_size=len(values)
                           ).flatmap(lambda keys: st.fixed_dictionaries(
                               {k: values[k] for k in keys}))  # fmt: skip


TEAM_B = st.builds(
    lambda labels, stack, minute: service("b_svc", labels, stack, minute),
    st.one_of(_labels(NATIVE), _labels(TRAEFIK)),
    st.sampled_from(["", "a", "b"]),
    st.sampled_from([0, 20]),  # older than every service of A, or newer
)


def settled(services: list[ServiceInfo], recorded: dict[str, str]) -> Discovery:
    ledger = Ledger(recorded)
    return discover(services, foreign=traefik_claims(services, ledger=ledger), ledger=ledger)


def team_a_view(found: Discovery) -> tuple[object, ...]:
    routes = sorted(repr(r) for r in found.routes if r.service.startswith("a_"))
    return routes, sorted(repr(s) for s in found.specs if s.name in ("shop", "admin.example.com"))


BEFORE = settled(list(TEAM_A), {})


@settings(max_examples=80, deadline=timedelta(seconds=5),
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(TEAM_B)
def test_whatever_stack_b_says_stack_as_routes_certificates_and_protections_stay(
    team_b: ServiceInfo,
) -> None:
    # A's claims were recorded before B's service came (or was relabelled).
    found = settled([*TEAM_A, team_b], dict(BEFORE.claims))
    assert team_a_view(found) == team_a_view(BEFORE)
    assert not any(p.service.startswith("a_") for p in found.problems)


@settings(max_examples=40, deadline=timedelta(seconds=5),
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(TEAM_B)
def test_before_anything_is_recorded_a_newer_stack_b_changes_nothing_of_a(
    team_b: ServiceInfo,
) -> None:
    # Unrecorded, an older service's claims come first (the first pass after the upgrade).
    assume(team_b.created_at == T0 + timedelta(minutes=20))
    found = settled([*TEAM_A, team_b], {})
    assert team_a_view(found) == team_a_view(BEFORE)
