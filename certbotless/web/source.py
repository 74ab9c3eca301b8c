"""The status page's real sources: the App's seams for the swarm's side, the daemon for its
passes and for the actions."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Protocol

from certbotless.daemon.pass_history import PassHistory, PassRecord
from certbotless.edge.watch import EdgeServing, EdgeWatch
from certbotless.labels.dialects import discovered, edge_if_any
from certbotless.model import Discovery, LabelProblem, Listed, PastOrder, RevocationReason
from certbotless.passes.reconcile import Reconciler
from certbotless.seams import OrderHistory, ServiceSource
from certbotless.setting_values import OrderShare
from certbotless.settings import Settings

log = logging.getLogger(__name__)


class AppStatusSource:
    """StatusSource: the status records and routes through the App's seams, the passes from
    the daemon's memory, the edge from its watch."""

    def __init__(
        self,
        settings: Settings,
        services: ServiceSource,
        orders: OrderHistory,
        listing: Callable[[], list[Listed]],
        history: PassHistory,
        edge_watch: EdgeWatch | None = None,
        untrusted: Callable[[], list[LabelProblem]] = list,
        recorded: Callable[[], Mapping[str, str]] = dict,
    ) -> None:
        self.settings = settings
        self.services = services
        self._orders = orders
        self._listing = listing
        self.history = history
        self.edge_watch = edge_watch
        # The store's objects certbotless did not make, shown among the problems.
        self._untrusted = untrusted
        self._recorded = recorded  # the claims ledger, so the page settles claims as passes do

    def listing(self) -> list[Listed]:
        return self._listing()

    def discovery(self) -> Discovery:
        seen = self.services.services()
        found = discovered(self.settings, seen, edge_if_any(self.settings, seen),
                           self.services.secret_names(), self._recorded())  # fmt: skip
        return replace(found, problems=found.problems + tuple(self._untrusted()))

    def orders(self) -> list[PastOrder]:
        return self._orders.load()

    def order_share(self) -> OrderShare:
        return self.settings.order_share

    def passes(self) -> list[PassRecord]:
        return self.history.recent()

    def edge(self) -> EdgeServing | None:
        return None if self.edge_watch is None else self.edge_watch.latest


class PassTrigger(Protocol):
    def force_soon(self, names: frozenset[str], reason: str) -> None:
        """A pass as soon as may be that orders `names` whatever their state or back-off."""


class DaemonActions:
    """The page's buttons: renew and retry ask the daemon for a forced pass; revoke runs in a
    thread of its own (it takes the pass lock, then issues anew)."""

    def __init__(self, daemon: PassTrigger, reconciler: Reconciler) -> None:
        self.daemon = daemon
        self.reconciler = reconciler
        self._revoking: set[str] = set()  # one revocation per name at a time
        self._lock = threading.Lock()

    def renew(self, name: str, who: str) -> str:
        self.daemon.force_soon(frozenset({name}), f"renew {name}, asked by {who} on the page")
        return f"{name}: renewal asked for; the page shows the new serial once it is issued"

    def retry(self, name: str, who: str) -> str:
        self.daemon.force_soon(frozenset({name}), f"retry {name}, asked by {who} on the page")
        return f"{name}: retry asked for, without waiting for its back-off"

    def revoke(self, name: str, who: str, serial: str) -> str:
        with self._lock:
            if name in self._revoking:
                return f"{name}: already being revoked; nothing more done"
            self._revoking.add(name)
        threading.Thread(target=self._revoke, args=(name, who, serial), name=f"revoke-{name}",
                         daemon=True).start()  # fmt: skip
        return f"{name}: revocation asked for; a new certificate follows if a label wants it"

    def _revoke(self, name: str, who: str, serial: str) -> None:
        try:
            self.reconciler.revoke(name, RevocationReason.unspecified, serial=serial)
            log.warning("status page: %s revoked %s (serial %s)", who, name, serial)
        except Exception:
            log.exception("status page: revoking %s for %s failed", name, who)
        finally:
            with self._lock:
                self._revoking.discard(name)
