"""`certbotless lint` on every Traefik stack the seeds' articles contain, as written
(tests/unit/seed_stacks/, each file saying where it comes from), with what certbotless makes of
it asserted: the routes it would serve, the certificates it would order, and each problem."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from certbotless import cli
from certbotless.labels.compose import parse_stack_argument
from certbotless.labels.lint import LintReport, lint
from certbotless.settings import Settings
from tests.support.paths import REPO

SEEDS = Path(__file__).parent / "seed_stacks"
NO_PORT = "has no service with a port"
ON_CONTAINERS = "move it under deploy: labels:"
NOT_ENABLED = "has no traefik.enable=true"


@dataclass(frozen=True)
class Outcome:
    """`exposed`: Traefik's exposedByDefault in the seed's own Traefik (v1 and v2 default to
    true); `routes`: (service, host + path); `problems`: (service, label, words)."""

    exposed: bool
    routes: tuple[tuple[str, str], ...] = ()
    certificates: tuple[str, ...] = ()
    problems: tuple[tuple[str, str, str], ...] = ()


R = "traefik.http.routers."
OUTCOMES = {
    # Seed 000: Traefik with --providers.docker.exposedByDefault=false; the service stack puts
    # its labels on the containers (Traefik's docker provider reads them there, certbotless and
    # Traefik's swarm mode do not).
    "seed000-traefik-stack.yml": Outcome(exposed=False),
    "seed000-service-stack.yml": Outcome(
        exposed=False,
        problems=tuple(
            ("seed000-service-stack_nginx", label, ON_CONTAINERS)
            for label in (
                "traefik.enable",
                f"{R}app.rule",
                f"{R}app.tls",
                "traefik.http.services.app.loadbalancer.server.port",
            )
        ),
    ),
    # Seed 001 (Traefik 2.3/2.4, exposedByDefault left at true).
    "seed001-traefik-only.yml": Outcome(exposed=True),
    "seed001-local.yml": Outcome(
        exposed=True,
        problems=tuple(
            (f"seed001-local_{name}", f"{R}{name}.rule", ON_CONTAINERS)
            for name in ("corporate", "en_core_web_lg", "en_core_web_sm")
        ),
    ),
    "seed001-swarm.yml": Outcome(
        exposed=True,
        routes=(("seed001-swarm_en_core_web_lg", "api.nlpcloud.io/en_core_web_lg"),),
        certificates=("api.nlpcloud.io",),
        # The article's corporate service sets no port: Traefik's swarm mode refuses it too.
        # Its services share one host, which its first claimant (lg, first by name) holds: the
        # others join only when that one's certbotless.share names them.
        problems=(
            ("seed001-swarm_corporate", f"{R}corporate.rule", NO_PORT),
            (
                "seed001-swarm_en_core_web_sm",
                f"{R}en_core_web_sm.rule",
                "belongs to seed001-swarm_en_core_web_lg",
            ),
        ),
    ),
    "seed001-forward-auth.yml": Outcome(
        exposed=True,
        routes=(("seed001-forward-auth_api_auth", "api.nlpcloud.io/auth"),),
        certificates=("api.nlpcloud.io",),
        problems=(
            ("seed001-forward-auth_corporate", f"{R}corporate.rule", NO_PORT),
            (
                "seed001-forward-auth_en_core_web_sm",
                f"{R}en_core_web_sm.rule",
                "belongs to seed001-forward-auth_api_auth",
            ),
        ),
    ),
    "seed001-error-pages.yml": Outcome(
        exposed=True,
        problems=(
            ("seed001-error-pages_corporate", f"{R}corporate.rule", NO_PORT),
            ("seed001-error-pages_errors_service", f"{R}corporate.rule", NO_PORT),
        ),
    ),
    "seed001-upload-limit.yml": Outcome(
        exposed=True,
        # The article applies the middleware to a router `backoffice` it never defines.
        problems=(
            ("seed001-upload-limit_corporate", f"{R}backoffice.rule", "has no rule"),
            ("seed001-upload-limit_corporate", f"{R}corporate.rule", NO_PORT),
        ),
    ),
    "seed001-dashboard.yml": Outcome(
        exposed=True,
        problems=(
            ("seed001-dashboard_traefik", f"{R}dashboard.service", "status page, which is off"),
        ),
    ),
    # Seed 002: Traefik 1.7's own labels (v1 frontend rule and port).
    "seed002-proxy.yml": Outcome(
        exposed=True,
        routes=(("seed002-proxy_proxy", "proxy.athome.ga/"),),
        certificates=("proxy.athome.ga",),
    ),
}


def _linted(argument: str, exposed: bool) -> LintReport:
    settings = Settings(traefik_exposed_by_default=exposed)
    return lint([parse_stack_argument(argument)], settings, {}, docker=None)


def _routes(report: LintReport) -> list[tuple[str, str]]:
    return sorted(
        (service.name, host + route.path)
        for service in report.services
        for route in service.routes
        for host in route.hosts
    )


@pytest.mark.parametrize("file", sorted(OUTCOMES))
def test_each_seed_stack_lints_to_what_certbotless_would_serve(file: str) -> None:
    outcome = OUTCOMES[file]
    report = _linted(str(SEEDS / file), outcome.exposed)
    assert _routes(report) == sorted(outcome.routes)
    assert sorted(spec.name for spec in report.specs) == sorted(outcome.certificates)
    found = sorted((p.service, p.label, p.message) for p in report.problems)
    assert len(found) == len(outcome.problems), found
    for (service, label, message), (want_service, want_label, words) in zip(
        found, sorted(outcome.problems), strict=True
    ):
        assert (service, label) == (want_service, want_label)
        assert words in message, message
    assert report.ok == (not outcome.problems)


def test_the_seed_003_django_stack_is_served_as_written() -> None:
    """Its Traefik service and its nginx service (`web`) are two excerpts of one stack.yml."""
    files = f"{SEEDS / 'seed003-traefik.yml'},{SEEDS / 'seed003-web.yml'}"
    report = _linted(f"my-stack={files}", exposed=False)
    assert report.ok, [str(p) for p in report.problems]
    (route,) = [route for service in report.services for route in service.routes]
    assert (route.service, route.hosts, route.port, route.redirect_to_https) == (
        "my-stack_web", ("mysite.com",), 80, True,
    )  # fmt: skip
    assert [spec.name for spec in report.specs] == ["mysite.com"]


def test_under_certbotless_defaults_seed_001_asks_for_traefik_enable() -> None:
    """certbotless reads Traefik's labels as exposedByDefault=false unless told otherwise: the
    seed's services without traefik.enable are named, not served."""
    report = _linted(str(SEEDS / "seed001-swarm.yml"), exposed=False)
    assert _routes(report) == []
    assert sorted(p.service for p in report.problems) == [
        "seed001-swarm_corporate", "seed001-swarm_en_core_web_lg", "seed001-swarm_en_core_web_sm",
    ]  # fmt: skip
    assert all(NOT_ENABLED in p.message for p in report.problems)


def test_the_command_exits_1_on_a_seed_stack_with_problems_and_0_on_a_clean_one(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CERTBOTLESS_TRAEFIK_EXPOSED_BY_DEFAULT", "true")
    assert cli.main(["lint", "--no-docker-cli", str(SEEDS / "seed002-proxy.yml")]) == 0
    assert "route proxy.athome.ga/ → port 8080" in capsys.readouterr().out
    assert cli.main(["lint", "--no-docker-cli", str(SEEDS / "seed001-dashboard.yml")]) == 1
    assert "api@internal" in capsys.readouterr().out


def test_lint_shows_each_routes_access_guards(capsys: pytest.CaptureFixture[str]) -> None:
    stacks = REPO / "stacks"
    files = [str(stacks / "native-access.yml"), str(stacks / "seed-traefik.yml")]
    # The error pages' service has no router: Traefik gives it one by its default rule, which
    # is not set here, and lint says so (its only problem).
    assert cli.main(["lint", "--no-docker-cli", *files]) == 1
    out = capsys.readouterr().out
    (problem,) = [line for line in out.splitlines() if "PROBLEM" in line]
    assert "router seed-traefik-errors has no rule" in problem
    assert "native.example.test/ → port 8000; HTTP redirected to HTTPS; basic auth (users of " \
        "secret native-access_htpasswd_82e847d5)" in out  # fmt: skip
    assert "tdash.example.test/internal → port 8000; HTTP redirected to HTTPS; only from " \
        "192.0.2.0/24" in out  # fmt: skip
    assert (
        "tdash.example.test/ → port 8000; HTTP redirected to HTTPS; basic auth (1 user(s))" in out
    )
