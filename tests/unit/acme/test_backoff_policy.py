"""Issue 14, item 5: every failure kind backs off per certificate, persisted, and a certificate
failing for 30 days is abandoned until its request changes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from acme import messages

from certbotless.acme.errors import AcmeError, CaUnreachable, OrderTimedOut, RateLimited
from certbotless.acme.http01 import ChallengeNotServed
from certbotless.cli import _forced
from certbotless.model import CertificateStatus, CertSpec, Condition, PassReport, PassRequest
from certbotless.passes.reconcile import Reconciler
from certbotless.swarm.status import ABANDON_AFTER, JITTER, after_failure, retry_delay
from tests.support.fakes import SETTINGS, World

HOST = "typo.example.test"
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
QUIET = PassRequest(progress=lambda line: None)


def test_the_waits_grow_from_minutes_to_32_hours_with_some_jitter() -> None:
    minutes = [retry_delay(n) / timedelta(minutes=1) for n in range(1, 12)]
    assert minutes == [5, 10, 20, 40, 60, 120, 240, 480, 960, 1920, 1920]
    assert retry_delay(7, jitter=0.999) <= retry_delay(7) * (1 + JITTER)


@pytest.mark.parametrize(
    "error",
    [
        ChallengeNotServed("the edge does not serve the token"),
        OrderTimedOut("no answer in 90 s"),
        CaUnreachable("connection refused"),
        AcmeError("urn:ietf:params:acme:error:rejectedIdentifier"),
        AcmeError("urn:ietf:params:acme:error:dns: NXDOMAIN"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_a_failing_name_is_ordered_once_over_ten_passes(error: AcmeError) -> None:
    world = World()
    world.add_edge()
    world.label("app", HOST)
    world.issuer.failing[HOST] = error
    for _ in range(10):
        Reconciler(SETTINGS, world.parts()).run_pass(QUIET)  # a new one: as after restarts
    assert world.issuer.ordered == [HOST]
    record = world.statuses.records[HOST]
    assert record.condition is Condition.FAILING and record.failures == 1


def test_a_rate_limit_waits_for_the_cas_retry_after_if_later() -> None:
    later = NOW + timedelta(hours=3)
    problem = messages.Error.from_json(
        {"type": "urn:ietf:params:acme:error:rateLimited", "detail": "too many"}
    )
    limited = RateLimited("newOrder", problem, later)
    assert after_failure(CertificateStatus(HOST), limited, NOW).next_attempt == later


def test_thirty_days_of_failures_abandon_the_name_until_its_labels_change() -> None:
    spec = CertSpec(HOST, (HOST,))
    record = CertificateStatus(HOST, spec.domains)
    record = after_failure(record, OrderTimedOut("timeout"), NOW - ABANDON_AFTER)
    assert record.failing_since == NOW - ABANDON_AFTER and not record.abandoned
    record = after_failure(record, OrderTimedOut("timeout"), NOW)
    assert record.abandoned and record.next_attempt is None
    assert record.waiting(spec, NOW + timedelta(days=365)), "never ordered again by itself"
    assert not record.waiting(CertSpec(HOST, (HOST, f"www.{HOST}")), NOW), "unless it changes"


def test_an_abandoned_name_is_ordered_again_when_forced_by_name() -> None:
    world = World()
    world.add_edge()
    world.label("app", HOST)
    world.statuses.records[HOST] = replace(
        CertificateStatus(HOST, (HOST,)), condition=Condition.FAILING, failures=40,
        abandoned=True, failing_since=NOW - timedelta(days=31), last_failure=NOW,
        message="NXDOMAIN",
    )  # fmt: skip
    held: PassReport = Reconciler(SETTINGS, world.parts()).run_pass(QUIET)
    assert world.issuer.ordered == [] and held.failed == {HOST: "NXDOMAIN"}
    forced = replace(QUIET, force=_forced([HOST]))
    assert Reconciler(SETTINGS, world.parts()).run_pass(forced).issued == (HOST,)
    assert world.statuses.records[HOST].condition is Condition.READY


def test_renew_force_takes_names_or_means_every_certificate() -> None:
    assert (_forced(None), _forced([]), _forced(["a", "b"])) == (False, True, frozenset("ab"))
