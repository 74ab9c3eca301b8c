"""The edge's route to the status page: `certbotless.status_page` on the sidecar's service, and
Traefik's `api@internal`."""

from __future__ import annotations

from datetime import UTC, datetime

from certbotless.edge.render import render_nginx_conf
from certbotless.labels.dialects import discovered
from certbotless.model import CertSpec, ServiceInfo
from certbotless.settings import Settings, StatusPage
from tests.support.factories import CERTS_DIR, RESPONDER, certs_for

OWN = "edge_certbotless"
PAGE = StatusPage(("0.0.0.0", 8403), allow_from=("10.0.0.0/8",),
                  forward_auth="http://auth:9091/api/verify")  # fmt: skip
WITH_PAGE = Settings(own_service=OWN, status_page=PAGE)
HASH = "$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/"


def service(name: str, labels: dict[str, str]) -> ServiceInfo:
    return ServiceInfo(name, labels, ("net",), ("edge",), stack="edge",
                       created_at=datetime(2026, 1, 1, tzinfo=UTC))  # fmt: skip


def test_the_label_on_the_sidecar_routes_a_host_to_the_status_listener() -> None:
    sidecar = service(OWN, {"certbotless.status_page": "Status.Example.com"})
    found = discovered(WITH_PAGE, [sidecar], None)
    assert found.problems == ()
    (route,) = found.routes
    assert (route.service, route.hosts, route.port) == (OWN, ("status.example.com",), 8403)
    assert route.allow_from == ("10.0.0.0/8",)  # the page's protections, at the edge too
    assert route.auth_url == "http://auth:9091/api/verify"
    assert found.specs == (CertSpec("status.example.com", ("status.example.com",)),)
    files = render_nginx_conf(found.routes, certs_for("status.example.com"), RESPONDER, CERTS_DIR)
    conf = "".join(files.values())
    assert f"{OWN}:8403" in conf and "allow 10.0.0.0/8;" in conf and "auth_request" in conf


def test_the_label_without_a_status_page_is_a_problem_and_routes_nothing() -> None:
    sidecar = service(OWN, {"certbotless.status_page": "status.example.com"})
    found = discovered(Settings(own_service=OWN), [sidecar], None)
    assert found.routes == () and found.specs == ()
    (problem,) = found.problems
    assert "CERTBOTLESS_STATUS_LISTEN" in problem.message


def test_the_label_elsewhere_or_with_a_bad_host_routes_nothing() -> None:
    stranger = service("shop_web", {"certbotless.status_page": "status.example.com"})
    assert discovered(WITH_PAGE, [stranger], None).routes == ()
    sidecar = service(OWN, {"certbotless.status_page": "*.example.com"})
    found = discovered(WITH_PAGE, [sidecar], None)
    assert found.routes == () and "wildcard" in found.problems[0].message


def test_traefiks_dashboard_router_goes_to_the_status_page_with_its_middlewares() -> None:
    labels = {
        "traefik.enable": "true",
        "traefik.http.routers.dashboard.rule": "Host(`dashboard.example.com`)",
        "traefik.http.routers.dashboard.service": "api@internal",
        "traefik.http.middlewares.auth.basicauth.users": f"admin:{HASH}",
        "traefik.http.routers.dashboard.middlewares": "auth",
    }
    sidecar = service(OWN, {})
    found = discovered(WITH_PAGE, [sidecar, service("edge_traefik_labels", labels)], None)
    assert found.problems == ()
    (route,) = found.routes
    assert (route.service, route.port, route.hosts) == (OWN, 8403, ("dashboard.example.com",))
    assert route.basic_auth is not None and route.basic_auth.users == (f"admin:{HASH}",)
    assert route.allow_from == ("10.0.0.0/8",)
    other = {**labels, "traefik.http.routers.dashboard.service": "ping@internal"}
    found = discovered(WITH_PAGE, [sidecar, service("edge_traefik_labels", other)], None)
    assert found.routes == () and "ping has no counterpart" in found.problems[0].message


def test_a_dashboard_router_cannot_loosen_the_pages_own_protections() -> None:
    labels = {
        "traefik.enable": "true",
        "traefik.http.routers.open.rule": "Host(`open.example.com`)",
        "traefik.http.routers.open.service": "api@internal",
        "traefik.http.routers.open.middlewares": "anyone,ownauth",
        "traefik.http.middlewares.anyone.ipallowlist.sourcerange": "0.0.0.0/0",
        "traefik.http.middlewares.ownauth.forwardauth.address": "http://lenient:80/",
    }
    found = discovered(WITH_PAGE, [service(OWN, {}), service("tenant_app", labels)], None)
    (route,) = found.routes
    assert route.allow_from == ("10.0.0.0/8",)
    assert route.auth_url == "http://auth:9091/api/verify"
