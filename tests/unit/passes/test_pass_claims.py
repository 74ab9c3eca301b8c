"""The claims ledger across passes (issue 25, item 2): each pass reads the claims recorded
before it and records what it settled, so a service created before the owner and relabelled
later takes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from certbotless.model import PassReport, PassRequest, ServiceInfo
from certbotless.passes.reconcile import Reconciler
from tests.support.fakes import SETTINGS, World

T0 = datetime(2026, 1, 1, tzinfo=UTC)
QUIET = PassRequest(progress=lambda line: None)


def app(name: str, host: str, minute: int) -> ServiceInfo:
    labels = {"certbotless.domains": host, "certbotless.port": "8000"}
    return ServiceInfo(name, labels, ("net",), ("certbotless-edge",),
                       created_at=T0 + timedelta(minutes=minute), id=f"id-{name}")  # fmt: skip


def run(world: World, request: PassRequest = QUIET) -> PassReport:
    return Reconciler(SETTINGS, world.parts()).run_pass(request)


def test_the_first_recorded_claim_survives_an_older_service_relabelled_later() -> None:
    world = World()
    world.add_edge()
    world.services.listed += [
        app("old", "old.example.test", 0),
        app("shop", "shop.example.test", 5),
    ]
    run(world)
    assert world.claims.claims["host:shop.example.test"] == "id-shop"
    world.services.listed[-2] = app("old", "shop.example.test", 0)  # relabelled, still older
    report = run(world)
    assert {p.service for p in report.problems} == {"old"}
    assert world.claims.claims["host:shop.example.test"] == "id-shop"
    assert "host:old.example.test" not in world.claims.claims  # no longer claimed: passed on


def test_a_dry_run_records_nothing() -> None:
    world = World()
    world.add_edge()
    world.services.listed.append(app("shop", "shop.example.test", 5))
    run(world, PassRequest(progress=lambda line: None, dry_run=True))
    assert world.claims.claims == {}
