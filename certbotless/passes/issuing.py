"""The issue step: order what the plan says and store each certificate as it arrives."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from certbotless.acme.errors import Abandoned, AcmeError, BackingOff, CaUnreachable
from certbotless.model import Deferred, PastOrder, Plan, StoredCert
from certbotless.passes.budget import KEPT_FOR
from certbotless.passes.planning import Planned, replaced_certificates
from certbotless.seams import CertificateStore, Issuer, Progress, Solver
from certbotless.swarm.api import SWARM_ERRORS
from certbotless.swarm.status import PassOutcome
from certbotless.swarm.store import NotStored

log = logging.getLogger(__name__)


@dataclass
class Issuance:
    issued: list[str] = field(default_factory=list)
    failed: dict[str, AcmeError] = field(default_factory=dict)
    saved: dict[str, StoredCert] = field(default_factory=dict)
    ca_unreachable: str | None = None
    # name → the issuer it came from, and why the issuers before it were passed over
    issued_by: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)

    def outcome(
        self, refused: Mapping[str, str], roll: str, deferred: Mapping[str, Deferred]
    ) -> PassOutcome:
        """The pass's outcome as the status records need it, with the roll's."""
        return PassOutcome(self.issued, self.failed, refused, roll, deferred, self.issued_by)


def issue_planned(
    plan: Plan,
    issuer: Issuer,
    solver: Solver,
    store: CertificateStore,
    progress: Progress,
    keep: bool = True,
) -> Issuance:
    """Order what the plan says, storing each certificate as it arrives (unless `keep` is off,
    for a dry run)."""
    result = Issuance()
    for spec in plan.to_issue:
        progress(f"{spec.name}: {plan.reasons[spec.name]}")
    replaces = {name: plan.current[name] for name in replaced_certificates(plan)}
    outcomes = issuer.issue_many(plan.to_issue, progress, solver, replaces)
    for spec, outcome in outcomes:
        if isinstance(outcome, Abandoned):
            progress(str(outcome))  # not a failure: the next start orders it
            continue
        if isinstance(outcome, AcmeError):
            log.error("%s", outcome)
            result.failed[spec.name] = outcome
            if isinstance(outcome, CaUnreachable):
                result.ca_unreachable = str(outcome)
            continue
        if outcome.skipped:
            progress(f"{spec.name}: issued by {outcome.issuer}; passed over "
                     + "; ".join(outcome.skipped))  # fmt: skip
        result.issued_by[spec.name] = (outcome.issuer, outcome.skipped)
        if not keep:
            result.issued.append(spec.name)
            progress(f"{spec.name}: dry run: the CA issued it (not stored, not rolled)")
            continue
        try:
            saved = store.save(outcome)
        except SWARM_ERRORS as error:
            log.error("%s: the CA issued it, but storing it failed: %s", spec.name, error)
            result.failed[spec.name] = NotStored(
                f"{spec.name}: the CA issued it, but the swarm did not store it: {error}"
            )
            continue
        result.issued.append(spec.name)
        progress(
            f"{spec.name}: stored {saved.config_name} serial {saved.serial}, "
            f"expires {saved.not_after:%Y-%m-%d %H:%M} UTC"
        )
        result.saved[spec.name] = saved
    return result


def ca_unreachable(issuance: Issuance, issuer: Issuer, ordered: bool) -> str | None:
    """Why the CA could not be reached, if it could not. A pass that ordered nothing asks it
    anyway, so that an outage is noticed before renewals are due."""
    if issuance.ca_unreachable is None and not ordered:
        return issuer.unreachable()
    return issuance.ca_unreachable


def recorded_orders(
    history: Iterable[PastOrder], planned: Planned, issuance: Issuance, now: datetime
) -> list[PastOrder]:
    """The history with this pass's orders (every one placed: a name backing off was not), each
    with its claimant, and without those older than every window."""
    placed = [
        PastOrder(now, tuple(sorted(spec.domains)), spec.name in issuance.issued,
                  spec.name in planned.replaces, planned.claimants.get(spec.name, ""))
        for spec in planned.plan.to_issue
        if spec.name in issuance.issued
        or (spec.name in issuance.failed and not isinstance(issuance.failed[spec.name], BackingOff))
    ]  # fmt: skip
    return [order for order in [*history, *placed] if order.at > now - KEPT_FOR]
