"""Issue 14, item 6: orders that would exceed Let's Encrypt's rate limits wait, with a status."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from certbotless.model import CertSpec, Condition, FailureReason, PassRequest, PastOrder, Plan
from certbotless.passes.budget import registered_domain, within_budget
from certbotless.passes.reconcile import Reconciler
from certbotless.settings import LETSENCRYPT_PRODUCTION, LETSENCRYPT_STAGING
from tests.support.fakes import SETTINGS, World

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
QUIET = PassRequest(progress=lambda line: None)


def plan_for(*specs: CertSpec, directory: str = LETSENCRYPT_PRODUCTION) -> Plan:
    return Plan(specs, {spec.name: "new" for spec in specs}, {}, directory)


def issued(at: datetime, *names: str, renewal: bool = False) -> PastOrder:
    return PastOrder(at, tuple(sorted(names)), True, renewal)


def test_registered_domains_come_from_the_public_suffix_list() -> None:
    assert registered_domain("a.b.example.co.uk") == "example.co.uk"
    assert registered_domain("www.example.com") == "example.com"
    assert registered_domain("alice.github.io") == "alice.github.io"  # a private suffix
    assert registered_domain("192.0.2.7") == "192.0.2.7"


def test_the_51st_certificate_for_a_registered_domain_in_a_week_waits() -> None:
    specs = [CertSpec(f"s{i}.example.com", (f"s{i}.example.com",)) for i in range(60)]
    plan, deferred = within_budget(plan_for(*specs), [], {}, NOW)
    assert len(plan.to_issue) == 50 and sorted(deferred) == sorted(s.name for s in specs[50:])
    why = deferred["s55.example.com"]
    assert "50 certificates for example.com in the last 7 days" in why.reason
    assert why.until == NOW + timedelta(days=7)
    # Other registered domains are not held up by example.com's budget.
    other = CertSpec("shop.example.org", ("shop.example.org",))
    assert within_budget(plan_for(*specs, other), [], {}, NOW)[0].to_issue[-1] == other


def test_orders_older_than_the_window_do_not_count_and_renewals_are_exempt() -> None:
    week_old = [issued(NOW - timedelta(days=7, minutes=1), f"o{i}.example.com") for i in range(50)]
    spec = CertSpec("new.example.com", ("new.example.com",))
    assert within_budget(plan_for(spec), week_old, {}, NOW)[1] == {}
    recent = [issued(NOW - timedelta(days=1), f"r{i}.example.com") for i in range(50)]
    assert "new.example.com" in within_budget(plan_for(spec), recent, {}, NOW)[1]
    renewing = within_budget(plan_for(spec), recent, {"new.example.com": "aki.serial"}, NOW)
    assert renewing[1] == {}, "a renewal naming what it replaces is exempt"
    exempt = [replace(order, renewal=True) for order in recent]
    assert within_budget(plan_for(spec), exempt, {}, NOW)[1] == {}, "and is not counted"


def test_a_sixth_duplicate_in_a_week_and_the_301st_order_in_three_hours_wait() -> None:
    names = ("a.example.net", "b.example.net")
    spec = CertSpec("pair", names)
    dupes = [issued(NOW - timedelta(days=i), *names) for i in range(5)]
    why = within_budget(plan_for(spec), dupes, {}, NOW)[1]["pair"]
    assert "5 certificates for exactly these names" in why.reason
    assert why.until == NOW - timedelta(days=4) + timedelta(days=7)
    busy = [PastOrder(NOW - timedelta(minutes=i % 170), (f"x{i}.example.io",), False)
            for i in range(300)]  # fmt: skip
    why = within_budget(plan_for(spec), busy, {}, NOW)[1]["pair"]
    assert "300 new orders by this account in the last 3 h" in why.reason


def test_other_cas_than_lets_encrypt_production_get_no_budget_of_ours() -> None:
    specs = [CertSpec(f"s{i}.example.com", (f"s{i}.example.com",)) for i in range(60)]
    for directory in (LETSENCRYPT_STAGING, "https://pebble.test/dir"):
        plan, deferred = within_budget(plan_for(*specs, directory=directory), [], {}, NOW)
        assert len(plan.to_issue) == 60 and deferred == {}


def test_a_deferred_order_is_a_clear_status_not_a_failure_and_waits_across_passes() -> None:
    world = World()
    world.issuer.directory_url = LETSENCRYPT_PRODUCTION
    world.add_edge()
    for i in range(52):
        world.label(f"app{i}", f"app{i}.example.com")
    first = Reconciler(SETTINGS, world.parts()).run_pass(QUIET)
    assert len(first.issued) == 50 and len(first.failed) == 2
    late = next(iter(first.failed))
    record = world.statuses.records[late]
    assert (record.condition, record.reason, record.failures) == (
        Condition.FAILING, FailureReason.OVER_BUDGET, 0,
    )  # fmt: skip
    assert "50 certificates for example.com" in record.message and record.next_attempt
    assert len(world.orders.orders) == 50, "the history keeps the orders placed"
    Reconciler(SETTINGS, world.parts()).run_pass(QUIET)  # as after a restart
    assert len(world.issuer.ordered) == 50
