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

from certbotless.alerts import Alerter, alerts_for
from certbotless.metrics import observe_pass
from certbotless.model import PassReport
from certbotless.reconcile import Reconciler
from certbotless.swarm import Swarm

log = logging.getLogger(__name__)

EVENT_DEBOUNCE = timedelta(seconds=2)
# Let's Encrypt allows 5 failed validations per name per hour.
RETRY_AFTER_FAILURE = timedelta(minutes=15)
SCHEDULE_JITTER_SECONDS = 300
_PASS_JOB = "reconcile-soon"


class Daemon:
    def __init__(
        self,
        reconciler: Reconciler,
        swarm: Swarm,
        schedule: str,
        alerter: Alerter | None = None,
    ) -> None:
        self.reconciler = reconciler
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
        self._stopping = threading.Event()

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self.trigger(reason="start", delay=timedelta(0))
        threading.Thread(target=self._watch_events, name="docker-events", daemon=True).start()
        self.scheduler.start()

    def trigger(self, reason: str, delay: timedelta = EVENT_DEBOUNCE) -> None:
        """Debounced: one pending pass, moved to `delay` from now unless one is due sooner.

        Two instances may exist: one running and one waiting for the pass lock, so a change
        seen during a pass is always followed by another pass.
        """
        log.debug("pass requested: %s", reason)
        when = datetime.now(UTC) + delay
        pending = self.scheduler.get_job(_PASS_JOB)
        if pending is not None and pending.next_run_time is not None:
            when = min(when, pending.next_run_time)
        self.scheduler.add_job(
            self._pass,
            id=_PASS_JOB,
            replace_existing=True,
            next_run_time=when,
            max_instances=2,
            misfire_grace_time=None,
        )

    def _pass(self) -> None:
        started = time.monotonic()
        now = datetime.now(UTC)
        try:
            report = self.reconciler.run_pass()
        except Exception as error:
            log.exception("reconcile pass failed")
            self.trigger("retry after a failed pass", RETRY_AFTER_FAILURE)
            report = PassReport(rollout_error=f"the reconcile pass failed: {error}")
        else:
            if not report.ok:
                self.trigger("retry failed certificates", RETRY_AFTER_FAILURE)
            # Failed certificates are retried above; this is for the next one to come due.
            if report.next_renewal is not None and report.next_renewal > now:
                self.trigger("a certificate is due", report.next_renewal - now)
        observe_pass(report, time.monotonic() - started)
        if self.alerter is not None:
            self.alerter.update(
                alerts_for(report, report.certificates, now, now + RETRY_AFTER_FAILURE)
            )
        log.info(
            "pass done in %.1f s: issued %d, failed %d, label problems %d, rolled %s",
            time.monotonic() - started,
            len(report.issued),
            len(report.failed),
            len(report.problems),
            report.rolled,
        )

    def _watch_events(self) -> None:
        since = time.time()
        while not self._stopping.is_set():
            try:
                for event in self.swarm.service_events(since):
                    since = event.get("time", since)
                    name = event.get("Actor", {}).get("Attributes", {}).get("name", "?")
                    self.trigger(reason=f"service {name} {event.get('Action')}")
            except Exception as error:
                log.warning("docker events stream broke (%s); reconnecting", error)
                self._stopping.wait(2)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: finishing the current pass, then stopping", signum)
        self._stopping.set()
        self.scheduler.shutdown(wait=False)
