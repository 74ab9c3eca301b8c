"""The daemon's pure decisions: event debouncing, alert wording, `list` status."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from certbotless.daemon.alerts import Alert, alerts_for, pass_failed_alert, stable_words
from certbotless.daemon.scheduler import (
    EVENT_CAP,
    EVENT_QUIET,
    ROLL_DEFERRAL_CAP,
    Daemon,
    debounced,
    recent_creates,
    should_defer_roll,
)
from certbotless.model import Listed, PassReport, RenewalFailure
from certbotless.ops.views import listed_status
from tests.support.factories import stored_cert

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_a_burst_of_events_is_one_pass_after_the_quiet_time_but_never_past_the_cap() -> None:
    assert debounced(NOW, NOW) == NOW + EVENT_QUIET
    # Each event pushes the pass back…
    later = NOW + EVENT_QUIET / 2
    assert debounced(later, NOW) == later + EVENT_QUIET
    # …but a stack deploy that keeps changing things still gets its pass at the cap.
    much_later = NOW + EVENT_CAP - EVENT_QUIET / 2
    assert debounced(much_later, NOW) == NOW + EVENT_CAP


def test_a_roll_waits_for_the_next_pass_while_a_burst_goes_on_but_never_past_the_cap() -> None:
    assert should_defer_roll(NOW, None)
    assert should_defer_roll(NOW + ROLL_DEFERRAL_CAP - timedelta(seconds=1), NOW)
    assert not should_defer_roll(NOW + ROLL_DEFERRAL_CAP, NOW)


def test_services_created_long_ago_are_forgotten() -> None:
    created = {"old": 100.0, "new": 100.0 + ROLL_DEFERRAL_CAP.total_seconds()}
    assert recent_creates(created, 101.0 + ROLL_DEFERRAL_CAP.total_seconds()) == ["new"]
    assert created == {"new": 100.0 + ROLL_DEFERRAL_CAP.total_seconds()}


class StartingSwarm:
    """The one question the roll deferral asks the swarm, with a fixed answer."""

    def __init__(self, starting: set[str]) -> None:
        self.starting = starting

    def without_running_task(self, service_ids: list[str]) -> set[str]:
        return self.starting & set(service_ids)


class Stub:
    stopping = None


def daemon_with(starting: set[str]) -> Daemon:
    return Daemon(Stub(), StartingSwarm(starting), "0 */6 * * *")  # type: ignore[arg-type]


def test_a_roll_waits_while_several_services_just_created_are_still_starting() -> None:
    daemon = daemon_with({"a", "b"})
    for service_id in ("a", "b", "c"):
        daemon.changed("created", created=service_id)
    pass_began = daemon._last_change + 1  # no change during the pass itself
    assert daemon._defer_roll(pass_began)
    daemon.swarm = StartingSwarm({"b"})  # type: ignore[assignment]
    assert not daemon._defer_roll(pass_began)


def test_a_single_new_service_never_delays_the_roll() -> None:
    daemon = daemon_with({"a"})
    daemon.changed("created", created="a")
    assert not daemon._defer_roll(daemon._last_change + 1)
    daemon.changed("removed", removed="a")
    assert daemon._created == {}


def test_renewal_alerts_are_the_same_news_while_only_tokens_and_times_change() -> None:
    first = ("a: validation failed: a: Invalid response from http://a/.well-known/acme-challenge/"
             "Xy9_tokenAAAAAAAAAAAAAAAAAA: 404 (next attempt after 10:05:00 UTC)")  # fmt: skip
    second = first.replace("Xy9_token", "Qq1_other").replace("10:05:00", "10:15:00")
    assert stable_words(first) == stable_words(second)
    assert stable_words(first) != stable_words(first.replace("404", "500"))
    alerts = [
        alerts_for(PassReport(failed={"a": text}), [], NOW, NOW)[0] for text in (first, second)
    ]
    assert alerts[0].identity == alerts[1].identity
    assert alerts[0].text != alerts[1].text, "what is sent still carries the latest words"


def test_a_pass_that_broke_off_is_its_own_alert() -> None:
    alert = pass_failed_alert(ConnectionError("docker.sock: connection refused"))
    assert isinstance(alert, Alert)
    assert (alert.key, alert.kind) == ("pass_failed", "pass_failed")
    assert "ConnectionError: docker.sock: connection refused" in alert.detail


def test_list_status_says_what_needs_attention_first() -> None:
    fresh = stored_cert(issued=NOW - timedelta(days=1))
    due = stored_cert(issued=NOW - timedelta(days=61))
    dying = stored_cert(issued=NOW - timedelta(days=80))
    dead = stored_cert(issued=NOW - timedelta(days=91))
    failure = RenewalFailure(NOW, "the CA's rate limit was hit")
    row = Listed("app.example.test", fresh, True, True, None)
    assert listed_status(row, NOW) == "ok"
    assert listed_status(replace(row, cert=due), NOW) == "renewing"
    assert listed_status(replace(row, cert=due, failure=failure), NOW) == "failed"
    assert listed_status(replace(row, cert=dying, failure=failure), NOW) == "expiring"
    assert listed_status(replace(row, cert=dead), NOW) == "expired"
    assert listed_status(replace(row, wanted=False), NOW) == "unwanted"
    assert listed_status(Listed("new.example.test", None, None, True, failure), NOW) == "failed"


def test_a_version_from_a_fallback_issuer_is_said_by_alert_list_and_json() -> None:
    """Issue 27 item 7: a certificate served from an issuer after the first says which and
    why, until a renewal comes from the first issuer again."""
    from certbotless.model import CertificateStatus, Condition
    from certbotless.ops.views import issuer_text, listed_json, status_text

    cert = stored_cert("shop", ("shop.example.test",), issued=NOW - timedelta(days=1))
    why = "letsencrypt: rate limited (too many certificates)"
    record = CertificateStatus("shop", ("shop.example.test",), serial=cert.serial,
                               condition=Condition.READY, issuer="zerossl",
                               skipped=(why,))  # fmt: skip
    alerts = alerts_for(PassReport(statuses=(record,)), [cert], NOW, NOW)
    assert [(a.kind, a.title) for a in alerts] == [
        ("issuer_fallback", "certificate shop came from fallback issuer zerossl")]  # fmt: skip
    assert why in alerts[0].detail
    row = Listed("shop", cert, True, True, None, record)
    assert issuer_text(row) == "zerossl*"
    assert status_text(row, NOW) == f"ok (from issuer zerossl, passed over: {why})"
    shown = listed_json(row, NOW)
    assert (shown["issuer"], shown["pinned_issuer"], shown["passed_over"]) == (
        "zerossl", None, [why])  # fmt: skip
    first = replace(record, issuer="letsencrypt", skipped=())
    assert alerts_for(PassReport(statuses=(first,)), [cert], NOW, NOW) == []
    assert issuer_text(replace(row, status=first)) == "letsencrypt"
