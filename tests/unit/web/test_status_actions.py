"""The status page's buttons reach the daemon: renew and retry force the next pass to order the
name whatever its back-off, once; every pass lands in the history the page reads."""

from __future__ import annotations

from collections.abc import Callable

from certbotless.daemon.pass_history import PassHistory
from certbotless.daemon.scheduler import Daemon
from certbotless.model import PassReport, PassRequest
from certbotless.web.source import DaemonActions


class Reconciler:
    stopping = None

    def __init__(self) -> None:
        self.requests: list[PassRequest] = []

    def run_pass(
        self, request: PassRequest | None = None, defer_roll: Callable[[float], bool] | None = None
    ) -> PassReport:
        assert request is not None
        self.requests.append(request)
        return PassReport(issued=tuple(request.forced(frozenset({"shop", "api"}))))


def test_renew_and_retry_force_the_next_pass_once() -> None:
    reconciler = Reconciler()
    history = PassHistory()
    daemon = Daemon(reconciler, None, "0 */6 * * *", history=history)  # type: ignore[arg-type]
    asked: list[str] = []
    daemon.trigger = lambda reason, delay=None: asked.append(reason)  # type: ignore[method-assign]
    actions = DaemonActions(daemon, reconciler)  # type: ignore[arg-type]
    assert "shop" in actions.renew("shop", "ops")
    actions.retry("api", "ops")
    assert asked == ["renew shop, asked by ops on the page", "retry api, asked by ops on the page"]
    daemon._run_pass()
    daemon._run_pass()
    assert [r.force for r in reconciler.requests] == [frozenset({"shop", "api"}), False]
    # newest first: the second pass ordered nothing
    assert [sorted(r.report.issued) for r in history.recent()] == [[], ["api", "shop"]]


class BrokenOnce(Reconciler):
    def run_pass(
        self, request: PassRequest | None = None, defer_roll: Callable[[float], bool] | None = None
    ) -> PassReport:
        report = super().run_pass(request, defer_roll)
        if len(self.requests) == 1:
            raise ConnectionError("the Docker API proxy went away")
        return report


def test_a_renewal_asked_for_survives_a_pass_that_broke_off() -> None:
    reconciler = BrokenOnce()
    daemon = Daemon(reconciler, None, "0 */6 * * *")  # type: ignore[arg-type]
    daemon.trigger = lambda reason, delay=None: None  # type: ignore[method-assign]
    DaemonActions(daemon, reconciler).renew("shop", "ops")  # type: ignore[arg-type]
    daemon._run_pass()  # broke off
    daemon._run_pass()
    assert [r.force for r in reconciler.requests] == [frozenset({"shop"})] * 2
