"""The whole pass through the fakes of every seam: no Docker, no CA."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from certbotless.acme.dns01 import DnsZoneNotFound
from certbotless.acme.errors import ValidationFailed
from certbotless.model import (
    Condition,
    FailureReason,
    PassReport,
    PassRequest,
    RevocationReason,
    ServiceInfo,
)
from certbotless.passes.reconcile import Reconciler
from certbotless.swarm.status import retry_delay
from tests.support.fakes import SETTINGS, World

HOST = "app.example.test"


@pytest.fixture
def world() -> World:
    world = World()
    world.add_edge()
    world.label("app", HOST)
    return world


QUIET = PassRequest(progress=lambda line: None)


def run(world: World, request: PassRequest = QUIET) -> PassReport:
    return Reconciler(SETTINGS, world.parts()).run_pass(request)


def test_a_new_certificate_is_ordered_stored_rolled_and_ready(world: World) -> None:
    report = run(world)
    assert report.issued == (HOST,) and report.rolled and report.ok
    assert world.edge.mounted == {world.store.versions[0].config_id}
    record = world.statuses.records[HOST]
    assert record.condition is Condition.READY and record.serial == world.store.versions[0].serial
    # Nothing to do the next time.
    again = run(world)
    assert (again.issued, again.rolled, world.issuer.ordered) == ((), False, [HOST])


def test_a_renewal_replaces_the_version_it_supersedes(world: World) -> None:
    run(world)
    first = world.store.versions[0]
    world.store.versions[0] = first.__class__(**{**first.__dict__, "ari_id": "aki.serial1"})
    world.age(days=61)  # past 2/3 of its 90 days
    report = run(world)
    assert report.issued == (HOST,) and report.rolled
    assert world.issuer.replaced == {HOST: "aki.serial1"}
    assert world.statuses.records[HOST].serial == world.store.versions[-1].serial


def test_a_ca_failure_is_recorded_and_backed_off_then_retried(world: World) -> None:
    world.issuer.failing[HOST] = ValidationFailed("the CA saw a 404 for the token")
    failed = run(world)
    record = world.statuses.records[HOST]
    assert failed.failed == {HOST: "the CA saw a 404 for the token"} and not failed.rolled
    assert (record.condition, record.reason, record.failures) == (
        Condition.FAILING, FailureReason.VALIDATION_FAILED, 1,
    )  # fmt: skip
    assert record.next_attempt is not None and failed.next_attempt == record.next_attempt
    # Backing off: not ordered again, and still reported with the CA's words.
    held = run(world)
    assert world.issuer.ordered == [HOST]
    assert held.failed == {HOST: "the CA saw a 404 for the token"}
    assert world.statuses.records[HOST].failures == 1
    # Once the next attempt is due, it is ordered again, and a success clears the record.
    del world.issuer.failing[HOST]
    world.statuses.records[HOST] = record.__class__(
        **{**record.__dict__, "next_attempt": record.next_attempt - timedelta(hours=2)}
    )
    retried = run(world)
    assert retried.issued == (HOST,) and world.issuer.ordered == [HOST, HOST]
    cleared = world.statuses.records[HOST]
    assert (cleared.condition, cleared.failures, cleared.next_attempt) == (Condition.READY, 0, None)


def test_a_roll_that_swarm_rolls_back_refuses_the_version_and_backs_off(world: World) -> None:
    world.edge.roll_back_next = True
    report = run(world)
    new = world.store.versions[0]
    assert report.rollout_error and "rolled the update back" in report.rollout_error
    assert world.store.refused == [new.config_id]
    record = world.statuses.records[HOST]
    assert (record.condition, record.reason, record.refused) == (
        Condition.FAILING, FailureReason.ROLLED_BACK, (new.serial,),
    )  # fmt: skip
    # The refused version is not current any more, and the name waits before a new order.
    run(world)
    assert world.issuer.ordered == [HOST]


def test_a_dry_run_orders_but_stores_rolls_and_records_nothing(world: World) -> None:
    report = run(world, PassRequest(dry_run=True, progress=lambda line: None))
    assert report.issued == (HOST,) and not report.rolled
    assert world.issuer.ordered == [HOST]
    assert (world.store.versions, world.edge.rolls, world.statuses.saves) == ([], 0, 0)


def test_the_status_records_survive_a_new_reconciler(world: World) -> None:
    """What a restart sees: the records come from the StatusStore, not from memory."""
    world.issuer.failing[HOST] = ValidationFailed("404")
    run(world)
    world.issuer.ordered.clear()
    run(world)  # a fresh Reconciler, as after a restart
    assert world.issuer.ordered == []
    assert world.statuses.records[HOST].failures == 1


def test_a_changed_request_is_not_held_back_by_the_old_ones_failures(world: World) -> None:
    world.issuer.failing[HOST] = ValidationFailed("404")
    run(world)
    del world.issuer.failing[HOST]
    world.services.listed[-1] = ServiceInfo(
        "app", {"certbotless.domains": f"{HOST},www.{HOST}", "certbotless.port": "8000",
                "certbotless.name": HOST}, ("net",), ("certbotless-edge",),
    )  # fmt: skip
    report = run(world)
    assert report.issued == (HOST,) and world.issuer.ordered == [HOST, HOST]
    record = world.statuses.records[HOST]
    assert (record.condition, record.failures, record.domains) == (
        Condition.READY, 0, (HOST, f"www.{HOST}"),
    )  # fmt: skip


def test_rolls_swarm_keeps_refusing_back_off_further_each_time(world: World) -> None:
    """Issue 14, item 2: a refused roll is a failed attempt like any other, so its back-off
    grows (before, each issuance reset the count, and the name was ordered every 5 minutes)."""
    passes, minutes_apart = 10, 5
    for _ in range(passes):
        world.edge.roll_back_next = True
        run(world)
        world.wait(timedelta(minutes=minutes_apart))
    record = world.statuses.records[HOST]
    orders = len(world.issuer.ordered)
    # Each failure waits retry_delay(failures), stretched by up to its jitter; count what fits
    # into the passes' span either way.
    spacing = timedelta(minutes=minutes_apart)

    def fitting(jitter: float) -> int:
        count, at = 0, timedelta(0)
        while at < passes * spacing:
            count += 1
            at += -(-retry_delay(count, jitter) // spacing) * spacing  # the first pass after it
        return count

    assert fitting(0.999) <= orders <= fitting(0.0) and orders < passes / 2, orders
    assert record.failures == orders
    assert record.reason is FailureReason.ROLLED_BACK and len(record.refused) == orders
    assert record.next_attempt is not None and record.last_failure is not None
    waited = record.next_attempt - record.last_failure
    assert retry_delay(orders) <= waited <= retry_delay(orders, 0.999)
    assert world.edge.rolls == 0 and "rolled the update back" in record.last_roll


def test_gc_after_refused_rolls_keeps_the_only_usable_version(world: World) -> None:
    """Issue 14, item 2: refused versions do not count toward KEEP_VERSIONS, so gc keeps the
    newest usable version even when no spec names it (here after `docker stack deploy` replaced
    the edge's spec), and the next pass mounts it again instead of ordering anew."""
    run(world)
    (usable,) = world.store.versions
    world.age(days=61)  # due for renewal
    for _ in range(2):
        world.edge.roll_back_next = True
        run(world)
        world.wait(timedelta(hours=1))
    assert len(world.store.refused) == 2
    world.edge.references = world.edge.previous_references = frozenset()
    world.edge.mounted = frozenset()
    keep_one = replace(SETTINGS, gc_keep_versions=1)
    removed = Reconciler(keep_one, world.parts()).collect_garbage(dry_run=False)
    assert {r.target.object_id for r in removed} == {
        i for c in world.store.versions if c.refused for i in (c.config_id, c.secret_id)
    }
    assert [c.config_id for c in world.store.inventory()] == [usable.config_id]
    world.issuer.failing[HOST] = ValidationFailed("the CA is down for this test")
    report = Reconciler(keep_one, world.parts()).run_pass(QUIET)
    assert report.rolled and world.edge.mounted == {usable.config_id}
    assert [c.serial for c in report.certificates] == [usable.serial]


def test_a_shorter_lived_renewal_is_current_and_not_ordered_again(world: World) -> None:
    """Issue 14, item 1: the version in use is the newest issued, not the longest-lived. A
    renewal with a shorter lifetime (another profile or CA) is rolled once and stays."""
    run(world)
    world.age(days=61)  # the 90-day version is due
    world.store.lifetime = timedelta(days=6)  # e.g. the `shortlived` profile
    for _ in range(5):
        run(world)
    short = world.store.versions[1]
    assert world.issuer.ordered == [HOST, HOST] and world.edge.rolls == 2
    assert world.edge.mounted == {short.config_id}
    assert world.statuses.records[HOST].serial == short.serial


def test_a_roll_waits_for_more_changes_unless_the_edge_serves_none_of_the_certificates(
    world: World,
) -> None:
    run(world)
    world.label("other", "other.example.test")
    busy = Reconciler(SETTINGS, world.parts())
    deferred = busy.run_pass(QUIET, defer_roll=lambda began: True)
    assert deferred.issued == ("other.example.test",) and not deferred.rolled
    # `docker stack deploy` of the edge put back a spec that mounts none of them.
    world.edge.references, world.edge.mounted = frozenset(), frozenset()
    urgent = busy.run_pass(QUIET, defer_roll=lambda began: True)
    assert urgent.rolled and world.edge.references


def test_an_edge_reset_to_its_stack_spec_gets_the_stored_certificates_back_before_any_order(
    world: World,
) -> None:
    run(world)
    served = world.edge.mounted
    world.label("other", "other.example.test")
    world.edge.references, world.edge.mounted = frozenset(), frozenset()
    mounted_while_ordering: list[frozenset[str]] = []
    order = world.issuer.issue_many

    def watched(*args: Any, **kwargs: Any) -> Any:
        mounted_while_ordering.append(world.edge.mounted)
        return order(*args, **kwargs)

    world.issuer.issue_many = watched  # type: ignore[method-assign]
    report = run(world)
    assert mounted_while_ordering == [served]  # the stored one back before the order
    assert report.issued == ("other.example.test",) and world.edge.rolls == 3
    assert len(world.edge.mounted) == 2


def test_a_dns01_failure_is_a_dns_problem_backed_off_like_any_other(world: World) -> None:
    error = DnsZoneNotFound(
        "app.example.test: no DNS zone found for _acme-challenge.app.example.test. (only the "
        "root zone holds it)"
    )
    world.issuer.failing[HOST] = error
    failed = run(world)
    record = world.statuses.records[HOST]
    assert (record.condition, record.reason, record.failures) == (
        Condition.FAILING, FailureReason.DNS_PROBLEM, 1,
    )  # fmt: skip
    assert record.message == str(error) and record.next_attempt == failed.next_attempt
    run(world)
    assert world.issuer.ordered == [HOST]  # backing off: not ordered again yet


def test_a_revocation_for_a_serial_no_longer_in_use_revokes_nothing(world: World) -> None:
    """A second click on the page's Revoke names the serial it saw, which the first replaced."""
    run(world)
    seen = world.store.versions[0].serial
    reconciler = Reconciler(SETTINGS, world.parts())
    reconciler.revoke(HOST, RevocationReason.unspecified, lambda line: None, serial=seen)
    assert len(world.issuer.revoked) == 1 and world.store.versions[-1].serial != seen
    with pytest.raises(LookupError, match="no longer in use"):
        reconciler.revoke(HOST, RevocationReason.unspecified, lambda line: None, serial=seen)
    assert len(world.issuer.revoked) == 1
