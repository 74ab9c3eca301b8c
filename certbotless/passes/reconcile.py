"""One pass: observe → plan → issue → deploy → collect. The only module that sequences stages;
each stage is a function of its own module, and all I/O goes through the seams (seams.py)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from certbotless.labels.settle import find_edge_service
from certbotless.model import PassReport, PassRequest, Plan, Removal, RevocationReason, StoredCert
from certbotless.passes.budget import claimants, within_budget
from certbotless.passes.deploying import Deployed, deploy_edge, labelled_only, serves_none
from certbotless.passes.garbage import collect_garbage
from certbotless.passes.issuing import Issuance, ca_unreachable, issue_planned, recorded_orders
from certbotless.passes.observe import Observation, ProblemLog, observe, wanted_names
from certbotless.passes.planning import (
    Planned,
    earliest_renewal,
    from_any_ca,
    hold_back,
    plan_certificates,
    replaced_certificates,
)
from certbotless.seams import Issuer, PassParts
from certbotless.settings import Settings
from certbotless.swarm.status import collect_statuses, next_attempt
from certbotless.swarm.store import latest_per_name

log = logging.getLogger(__name__)


class PassAbandoned(Exception):
    """certbotless is stopping; the pass did not start."""


class Reconciler:
    def __init__(
        self, settings: Settings, parts: PassParts, stopping: threading.Event | None = None
    ) -> None:
        self.settings = settings
        self.parts = parts
        # Set on SIGTERM: no new pass, no new order, no roll (the next start rolls).
        self.stopping = stopping or threading.Event()
        self._issuer: Issuer | None = None
        self._problems = ProblemLog()

    @property
    def issuer(self) -> Issuer:
        if self._issuer is None:
            self._issuer = self.parts.issuer()
        return self._issuer

    def run_pass(
        self,
        request: PassRequest | None = None,
        defer_roll: Callable[[float], bool] = lambda began: False,
    ) -> PassReport:
        """One pass (by default the daemon's: progress logged). `defer_roll`, asked before
        rolling with the `time.monotonic()` at which this pass began (had the lock): whether
        another pass follows at once (services changed since), which then rolls this pass's
        certificates with its own, in one roll."""
        request = request or PassRequest(progress=log.info)
        with self.parts.lock.hold():
            began = time.monotonic()
            if self.stopping.is_set():
                raise PassAbandoned("certbotless is stopping")
            seen = observe(self.settings, self.parts, request.extra_specs)
            self._problems.log(seen.found.problems)
            now = datetime.now(UTC)
            planned = self._plan(seen, request.forced(frozenset(seen.wanted)), now)
            plan, renewals = planned.plan, planned.renewals
            edge = self._edge(seen, request.rolls or bool(plan.to_issue))  # or to self-check
            issuance, restored = self._issue(plan, edge, seen, request)
            orders = list(seen.orders)
            if not request.dry_run:
                orders = recorded_orders(seen.orders, planned, issuance, now)
                self.parts.orders.save(orders)
                self.parts.claims.save(seen.found.claims)  # claims first seen now are theirs
            current = {**seen.current, **issuance.saved}
            deployed = self._deploy(edge, seen, current, request, began, defer_roll)
            outcome = issuance.outcome(deployed.refused, deployed.outcome, planned.deferred)
            statuses = collect_statuses(seen.statuses, seen.wanted.values(), current, renewals,
                                        outcome, now)  # fmt: skip
            if not request.dry_run:
                self.parts.statuses.save(statuses)
            removed: list[Removal] = []
            if deployed.done:
                stored = [*seen.stored, *issuance.saved.values()]
                removed = self._garbage(stored, set(seen.wanted), dry_run=False)
            failed = {name: str(error) for name, error in issuance.failed.items()}
            if not request.dry_run:  # in the status records' words, names held back included
                waiting = (*failed, *planned.held, *planned.deferred)
                failed = {name: statuses[name].message for name in waiting}
            in_use = {name: cert for name, cert in current.items() if name in seen.wanted}
            return PassReport(
                issued=tuple(issuance.issued),
                failed=failed,
                problems=seen.found.problems + seen.untrusted + deployed.problems,
                rolled=deployed.rolled or restored.rolled,
                rollout_error=deployed.error,
                removed=tuple(removed),
                ca_unreachable=ca_unreachable(issuance, self.issuer, bool(plan.to_issue)),
                certificates=tuple(in_use.values()),
                next_renewal=earliest_renewal(in_use, renewals, issuance.issued, failed),
                next_attempt=next_attempt(statuses.values()),
                statuses=tuple(statuses.values()),
                roll_seconds=deployed.seconds,
                orders=tuple(orders),
            )

    def _plan(self, seen: Observation, forced: frozenset[str], now: datetime) -> Planned:
        issuer = self.issuer
        renewals = issuer.renewal_times(  # each asked of the CA that issued it
            cert for name, cert in seen.current.items()
            if name in seen.wanted and from_any_ca(cert, issuer.directories(seen.wanted[name]))
        )  # fmt: skip
        renew_at = {name: renewal.renew_at for name, renewal in renewals.items()}
        plan = plan_certificates(seen.wanted.values(), seen.current, now, forced, renew_at,
                                 issuer.directory_url, issuer.directories)  # fmt: skip
        plan, held = hold_back(plan, seen.statuses, now, forced)
        replaces = replaced_certificates(plan)
        owners = claimants(plan.to_issue, seen.found.claims, seen.services)
        plan, deferred = within_budget(plan, seen.orders, replaces, now,
                                       self.settings.order_share, owners)  # fmt: skip
        return Planned(plan, renewals, held, deferred, replaces, owners)

    def _edge(self, seen: Observation, needed: bool) -> str | None:
        if not needed:
            return None
        if seen.edge is not None:
            return seen.edge
        return find_edge_service(seen.services, self.settings.own_service)  # raises: how to mark it

    def _issue(self, plan: Plan, edge: str | None, seen: Observation,
               request: PassRequest) -> tuple[Issuance, Deployed]:  # fmt: skip
        """The orders, after a roll of an edge that serves no stored certificate (a `docker stack
        deploy` put its spec back: its roll to the bootstrap config may end before orders do)."""
        restored = Deployed()
        if plan.to_issue and edge and serves_none(self.parts.edge, edge, seen.current):
            restored = self._deploy(edge, seen, dict(seen.current), request, 0.0, lambda b: False)
            if restored.rolled:
                request.progress(f"{edge} served none of the stored certificates: rolled first")
        solver = self.parts.solver_for(edge, request.progress)
        issuance = issue_planned(plan, self.issuer, solver, self.parts.store, request.progress,
                                 keep=not request.dry_run)  # fmt: skip
        return issuance, restored

    def _deploy(self, edge: str | None, seen: Observation, current: dict[str, StoredCert],
                request: PassRequest, began: float,
                defer_roll: Callable[[float], bool]) -> Deployed:  # fmt: skip
        if not request.rolls or edge is None:
            return Deployed()
        if self.stopping.is_set():
            request.progress(f"stopping: {edge} is rolled at the next start")
            return Deployed()
        if not serves_none(self.parts.edge, edge, seen.current) and defer_roll(began):
            request.progress(f"more services changed during this pass: the next pass rolls {edge}")
            return Deployed()
        served = labelled_only(current, seen.found.specs, seen.wanted, request.progress)
        # Every labelled name, issued or not (an own nginx.conf includes a placeholder for it).
        labelled = [spec.name for spec in seen.found.specs]
        return deploy_edge(self.parts.edge, self.parts.store, edge, seen.found.routes, served,
                           labelled, request.progress)  # fmt: skip

    def revoke(
        self, name: str, reason: RevocationReason, progress: Callable[[str], None] = log.info,
        serial: str = "",
    ) -> PassReport:  # fmt: skip
        """Revoke the version of `name` in use (only if it is still `serial`, when given), then
        issue and roll a new one if a label still wants the name (without one, nginx keeps
        serving the revoked certificate)."""
        with self.parts.lock.hold():
            cert = latest_per_name(self.parts.store.inventory(), datetime.now(UTC)).get(name)
            if cert is None:
                raise LookupError(
                    f"no stored certificate is named {name!r}; see `certbotless list`"
                )
            if serial and cert.serial != serial:  # a second click must not revoke the new one
                raise LookupError(f"{name}: serial {serial} is no longer in use; nothing revoked")
            self.issuer.revoke(self.parts.store.chain_pem(cert), reason, cert.directory_url)
            progress(f"{name}: revoked serial {cert.serial} ({reason.name})")
            wanted = wanted_names(self.settings, self.parts)
        if name not in wanted:
            progress(f"{name}: no label wants it any more, so no new certificate")
            return PassReport()
        return self.run_pass(PassRequest(force=frozenset({name}), progress=progress))

    def collect_garbage(self, dry_run: bool) -> list[Removal]:
        """What gc removes (or, with `dry_run`, would remove), under the pass lock."""
        with self.parts.lock.hold():
            return self._garbage(self.parts.store.inventory(),
                                 wanted_names(self.settings, self.parts), dry_run)  # fmt: skip

    def _garbage(self, stored: list[StoredCert], wanted: set[str], dry_run: bool) -> list[Removal]:
        return collect_garbage(self.parts.store, self.parts.edge.referenced_object_ids(), stored,
                               wanted, self.settings, dry_run)  # fmt: skip
