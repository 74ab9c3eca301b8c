"""Small builders for model values used across unit tests, and the edge scenarios that both the
unit tests and the nginx-version integration test render."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from certbotless.edge.nginx_version import DEFAULT_NGINX_VERSION, NginxVersion
from certbotless.edge.render import NginxFiles, files_listing, render_nginx_conf
from certbotless.labels.values import certificate_name_for
from certbotless.model import ErrorPages, KeyType, Route, ServiceInfo, StoredCert

CERTS_DIR = "/etc/nginx/certs"
RESPONDER = "certbotless:8402"
T0 = datetime(2026, 1, 1, tzinfo=UTC)  # services' creation times count from here


def stored_cert(
    name: str = "app.example.test",
    domains: tuple[str, ...] = ("app.example.test",),
    issued: datetime = datetime(2026, 1, 1, tzinfo=UTC),
    lifetime: timedelta = timedelta(days=90),
    version: str = "1",
    key_type: KeyType = KeyType.EC256,
) -> StoredCert:
    return StoredCert(
        name=name,
        domains=domains,
        serial="ab" + version,
        not_before=issued,
        not_after=issued + lifetime,
        key_type=key_type,
        config_name=f"cbl-{name}-{version}",
        config_id="cfg" + version,
        secret_name=f"cbl-{name}-{version}",
        secret_id="sec" + version,
    )


def certs_for(*hosts: str) -> dict[str, StoredCert]:
    """One current certificate per host, named after it as discovery names it."""
    return {
        certificate_name_for(host): stored_cert(name=certificate_name_for(host), domains=(host,))
        for host in hosts
    }


@dataclass(frozen=True)
class EdgeScenario:
    routes: tuple[Route, ...]
    certs: Mapping[str, StoredCert]

    def files(self, nginx_version: NginxVersion = DEFAULT_NGINX_VERSION) -> NginxFiles:
        return render_nginx_conf(
            self.routes, self.certs, RESPONDER, CERTS_DIR, nginx_version=nginx_version
        )

    def render(self, nginx_version: NginxVersion = DEFAULT_NGINX_VERSION) -> str:
        """Every file, as `certbotless render` prints them."""
        return files_listing(self.files(nginx_version))


# The demo: an app with its certificate, two paths on a host still waiting for one, and a host
# that keeps plain HTTP.
DEMO = EdgeScenario(
    (
        Route("demo_app", ("app.example.test",), 8000),
        Route("api_sm", ("api.example.test",), 80, path="/en_core_web_sm"),
        Route("api_lg", ("api.example.test",), 80, path="/en_core_web_lg"),
        Route("plain", ("plain.example.test",), 80, redirect_to_https=False),
    ),
    certs_for("app.example.test", "plain.example.test"),
)

# Seed 001 on certbotless: a corporate static site with custom error pages and HSTS, a back
# office taking 20 MB uploads, two model APIs behind forward auth, all under one host; and
# seed 000's Flask API behind /service1 on another host, with gunicorn's long timeout.
NLP = "nlp.example.test"
SEEDS = EdgeScenario(
    (
        Route(
            "nlp_corporate",
            (NLP,),
            80,
            hsts=True,
            error_pages=ErrorPages(
                "http://nlp_errors:80/{status}.html", tuple(c for c in range(400, 600) if c != 499)
            ),
        ),
        Route("nlp_backoffice", (NLP,), 8000, path="/backoffice", max_body_size="20m"),
        Route(
            "nlp_sm", (NLP,), 8000, path="/en_core_web_sm", auth_url="http://nlp_auth:8000/check"
        ),
        Route(
            "nlp_lg", (NLP,), 8000, path="/en_core_web_lg", auth_url="http://nlp_auth:8000/check"
        ),
        Route("nlp_auth", (NLP,), 8000, path="/auth"),
        Route("flask_api", ("api.example.test",), 5000, path="/service1", timeout="300s"),
    ),
    certs_for(NLP, "api.example.test"),
)

# One host, three policies: an app behind HTTPS-only forward auth (over https://, so SNI
# matters), an admin area with HSTS asked for, and a legacy path that must stay plain HTTP.
MIXED = "mixed.example.test"
MIXED_ROUTES = (
    Route("mixed_app", (MIXED,), 8000, auth_url="https://mixed_auth:8443/check"),
    Route("mixed_admin", (MIXED,), 8000, path="/admin", hsts=True),
    Route("mixed_legacy", (MIXED,), 8000, path="/legacy", redirect_to_https=False),
)
MIXED_REDIRECT = EdgeScenario(MIXED_ROUTES, certs_for(MIXED))
MIXED_REDIRECT_BEFORE_CERTIFICATE = EdgeScenario(MIXED_ROUTES, {})

# An edge reached by its IP address (a CA profile that issues for addresses) beside a named host.
IP_ADDRESS = EdgeScenario(
    (
        Route("by_address", ("192.0.2.10",), 8000),
        Route("demo_app", ("app.example.test",), 8000),
    ),
    certs_for("192.0.2.10", "app.example.test"),
)

SCENARIOS = {
    "demo": DEMO,
    "seeds": SEEDS,
    "mixed-redirect": MIXED_REDIRECT,
    "mixed-redirect-before-certificate": MIXED_REDIRECT_BEFORE_CERTIFICATE,
    "ip-address": IP_ADDRESS,
}


def labelled(
    name: str,
    labels: dict[str, str],
    networks: tuple[str, ...] = (),
    stack: str = "",
    created: int | None = None,
) -> ServiceInfo:
    """A service; `created` is its creation time in minutes after a fixed moment."""
    return ServiceInfo(
        name=name,
        labels=labels,
        network_ids=networks,
        network_names=networks,
        stack=stack,
        created_at=None if created is None else T0 + timedelta(minutes=created),
    )
