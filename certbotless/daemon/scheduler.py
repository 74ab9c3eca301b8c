"""The daemon's triggers: a cron schedule, Docker service events, and a first pass at start."""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from types import FrameType

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from certbotless.daemon.alerts import Alerter, alerts_for, pass_failed_alert
from certbotless.daemon.metrics import observe_pass
from certbotless.daemon.pass_history import PassHistory, PassRecord
from certbotless.model import PassReport, PassRequest
from certbotless.passes.reconcile import PassAbandoned, Reconciler
from certbotless.swarm.api import Swarm
from certbotless.swarm.store import NAME_PREFIX

log = logging.getLogger(__name__)

# Within the stack's stop_grace_period (stacks/edge.yml): orders are abandoned at the next step,
# so a pass ends long before this unless a roll is being waited on.
STOP_WAIT_SECONDS = 75
# Orders (90 s each, 8 at a time) and a roll (120 s) fit many times over; longer means stuck.
STUCK_PASS_SECONDS = 30 * 60

# Docker events: a pass once the swarm has been quiet this long, but no later than the cap after
# the first event of a burst. A burst that goes on during a pass (a `docker stack deploy` of many
# services) defers that pass's roll to the next pass, so the burst costs one roll; for at most
# ROLL_DEFERRAL_CAP in a row, so that a swarm that never stops changing still gets its rolls.
EVENT_QUIET = timedelta(seconds=0.15)
EVENT_CAP = timedelta(seconds=10)
ROLL_DEFERRAL_CAP = timedelta(seconds=30)
# A deploy of several services at once can stall for seconds between creates while the node
# starts the first ones' containers: quiet that no event rule can tell from the deploy's end.
# So while two or more services created in the last ROLL_DEFERRAL_CAP have no running task yet,
# the roll waits too (rechecked every STARTING_RECHECK): rolling for apps that cannot answer
# gains nothing, and the whole deploy then costs one roll. A single new service never waits.
STARTING_RECHECK = timedelta(seconds=0.5)
# Let's Encrypt allows 5 failed validations per name per hour.
RETRY_AFTER_FAILURE = timedelta(minutes=15)
SCHEDULE_JITTER_SECONDS = 300
_PASS_JOB = "reconcile-soon"
_EVENTS_JOB = "reconcile-after-events"
# Services certbotless itself creates and removes for a moment: no reason for a pass.
_OWN_JOB_PREFIX = NAME_PREFIX + "nginx-check-"


def debounced(now: datetime, burst_started: datetime) -> datetime:
    """When a pass runs for a burst of events: after the quiet time, at the latest at the cap."""
    return min(now + EVENT_QUIET, burst_started + EVENT_CAP)


def should_defer_roll(now: datetime, deferred_since: datetime | None) -> bool:
    """Whether a roll may wait for the next pass, given since when rolls have waited."""
    return deferred_since is None or now - deferred_since < ROLL_DEFERRAL_CAP


def _log_pass(report: PassReport, seconds: float) -> None:
    log.info(
        "pass done in %.1f s: issued %d, failed %d, label problems %d, rolled %s",
        seconds,
        len(report.issued),
        len(report.failed),
        len(report.problems),
        report.rolled,
    )


def recent_creates(created: dict[str, float], now: float) -> list[str]:
    """The IDs of services created within ROLL_DEFERRAL_CAP of `now` (time.monotonic()); older
    ones are forgotten."""
    horizon = now - ROLL_DEFERRAL_CAP.total_seconds()
    for service_id in [i for i, at in created.items() if at < horizon]:
        del created[service_id]
    return list(created)


class ForcedNames:
    """Names the next pass orders whatever their state (the status page's renew and retry)."""

    def __init__(self) -> None:
        self._names: set[str] = set()
        self._lock = threading.Lock()

    def add(self, names: frozenset[str]) -> None:
        with self._lock:
            self._names |= names

    def take(self) -> frozenset[str]:
        with self._lock:
            taken, self._names = frozenset(self._names), set()
        return taken


class Daemon:
    def __init__(
        self,
        reconciler: Reconciler,
        swarm: Swarm,
        schedule: str,
        alerter: Alerter | None = None,
        history: PassHistory | None = None,
    ) -> None:
        self.reconciler = reconciler
        self.history = history or PassHistory()
        self._forced = ForcedNames()
        self.swarm = swarm
        self.alerter = alerter
        self.scheduler = BlockingScheduler(timezone=UTC)
        self.scheduler.add_job(
            self._pass,
            CronTrigger.from_crontab(schedule, timezone=UTC),
            id="reconcile-scheduled",
            jitter=SCHEDULE_JITTER_SECONDS,
            max_instances=1,
            coalesce=True,
        )
        self._stopping = reconciler.stopping
        self._burst_started: datetime | None = None
        self._burst_lock = threading.Lock()
        self._last_change = 0.0  # time.monotonic() of the last service event
        self._created: dict[str, float] = {}  # service ID → time.monotonic() of its creation
        self._roll_deferred_since: datetime | None = None
        # When each pass under way started: a stop waits for them, a stuck one is unhealthy.
        self._started: list[float] = []
        self._idle = threading.Condition()
        self._events = threading.Thread(target=self._watch_events, name="docker-events",
                                        daemon=True)  # fmt: skip

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self.trigger(reason="start", delay=timedelta(0))
        self._events.start()
        self.scheduler.start()
        # Stopped: let the pass under way end (its orders are abandoned), then say what is left.
        with self._idle:
            self._idle.wait_for(lambda: not self._started, timeout=STOP_WAIT_SECONDS)
        if self.alerter is not None:
            self.alerter.flush(timeout=10)
        log.info("stopped")

    def health(self) -> str | None:
        """What Swarm's health check hears: why this daemon cannot do its job, or None."""
        if self._stopping.is_set():
            return "stopping"
        if self._events.ident is not None and not self._events.is_alive():
            return "the Docker events watcher is not running"
        with self._idle:
            running_for = time.monotonic() - min(self._started, default=time.monotonic())
        if running_for > STUCK_PASS_SECONDS:
            return f"a pass has been running for {running_for / 60:.0f} min"
        return None

    def trigger(self, reason: str, delay: timedelta = timedelta(0)) -> None:
        """A pass `delay` from now, unless one is due sooner.

        Two instances may exist: one running and one waiting for the pass lock, so a change
        seen during a pass is always followed by another pass.
        """
        log.debug("pass requested: %s", reason)
        when = datetime.now(UTC) + delay
        pending = self.scheduler.get_job(_PASS_JOB)
        if pending is not None and pending.next_run_time is not None:
            when = min(when, pending.next_run_time)
        self._schedule(_PASS_JOB, when)

    def force_soon(self, names: frozenset[str], reason: str) -> None:
        self._forced.add(names)
        self.trigger(reason)

    def changed(self, reason: str, created: str | None = None, removed: str | None = None) -> None:
        """A service changed (`created` or `removed`: its ID): a pass once the burst of changes
        is over (trailing, capped)."""
        log.debug("pass requested: %s", reason)
        now = datetime.now(UTC)
        with self._burst_lock:
            self._last_change = time.monotonic()
            if created:
                self._created[created] = self._last_change
            self._created.pop(removed or "", None)
            if self._burst_started is None:
                self._burst_started = now
            when = debounced(now, self._burst_started)
        self._schedule(_EVENTS_JOB, when)

    def _schedule(self, job_id: str, when: datetime) -> None:
        self.scheduler.add_job(
            self._pass,
            id=job_id,
            replace_existing=True,
            next_run_time=when,
            max_instances=2,
            misfire_grace_time=None,
        )

    def _pass(self) -> None:
        with self._burst_lock:
            self._burst_started = None  # changes from now on are a new burst
        started = time.monotonic()
        with self._idle:
            self._started.append(started)
        try:
            self._run_pass()
        finally:
            with self._idle:
                self._started.remove(started)
                self._idle.notify_all()

    def _run_pass(self) -> None:
        started = time.monotonic()
        now = datetime.now(UTC)
        forced = self._forced.take()
        try:
            report = self.reconciler.run_pass(
                PassRequest(force=forced or False, progress=log.info), defer_roll=self._defer_roll
            )
        except PassAbandoned:
            self._forced.add(forced)  # a pass that broke off did not order them
            return
        except Exception as error:
            log.exception("reconcile pass failed")
            self._forced.add(forced)  # a pass that broke off did not order them
            self.trigger("retry after a failed pass", RETRY_AFTER_FAILURE)
            if self.alerter is not None:
                # A pass that broke off found out nothing: the other problems stay as they were.
                self.alerter.update([pass_failed_alert(error)], complete=False)
            return
        # A failed certificate is retried when its status record says; a failed roll on its
        # own timer, whatever certificates wait.
        if report.next_attempt is not None:
            self.trigger("a failed certificate's next attempt",
                         max(report.next_attempt - now, timedelta(0)))  # fmt: skip
        if report.rollout_error is not None:
            self.trigger("retry the failed roll", RETRY_AFTER_FAILURE)
        retry_at = report.next_attempt or now + RETRY_AFTER_FAILURE
        # Failed certificates are retried above; this is for the next one to come due.
        if report.next_renewal is not None and report.next_renewal > now:
            self.trigger("a certificate is due", report.next_renewal - now)
        observe_pass(report, time.monotonic() - started)
        self.history.add(PassRecord(datetime.now(UTC), time.monotonic() - started, report))
        if self.alerter is not None:
            self.alerter.update(alerts_for(report, report.certificates, now, retry_at))
        _log_pass(report, time.monotonic() - started)

    def _defer_roll(self, pass_began: float) -> bool:
        """Asked by a pass before it rolls: yes when a service changed after the pass began,
        for at most ROLL_DEFERRAL_CAP in a row. Every change schedules a pass, which starts
        after this one (a pass waiting for the lock is such a pass: it discovers once it has
        the lock), so the certificates are rolled by that one."""
        now = datetime.now(UTC)
        with self._burst_lock:
            changed_since = self._last_change > pass_began
            created = recent_creates(self._created, time.monotonic())
        if not should_defer_roll(now, self._roll_deferred_since):
            self._roll_deferred_since = None
            return False
        if not changed_since and len(created) >= 2:
            starting = self.swarm.without_running_task(created)
            if len(starting) >= 2:
                waiting = f"{len(starting)} services just created are still starting"
                log.info("%s: the roll waits for them", waiting)
                self.trigger(waiting, STARTING_RECHECK)
                changed_since = True
        if changed_since:
            self._roll_deferred_since = self._roll_deferred_since or now
        else:
            self._roll_deferred_since = None
        return changed_since

    def _watch_events(self) -> None:
        since = time.time()
        while not self._stopping.is_set():
            try:
                for event in self.swarm.service_events(since):
                    since = event.get("time", since)
                    actor = event.get("Actor", {})
                    name = actor.get("Attributes", {}).get("name", "?")
                    action = event.get("Action")
                    if not name.startswith(_OWN_JOB_PREFIX):
                        self.changed(
                            reason=f"service {name} {action}",
                            created=actor.get("ID") if action == "create" else None,
                            removed=actor.get("ID") if action == "remove" else None,
                        )
            except Exception as error:
                log.warning("docker events stream broke (%s); reconnecting", error)
                self._stopping.wait(2)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: abandoning orders not finalized yet, then stopping", signum)
        self._stopping.set()
        self.scheduler.shutdown(wait=False)
