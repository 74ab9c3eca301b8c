"""The status record of every certificate: how a pass's outcome changes it, and where it is kept.

Carrier (chosen by `bench/status_carrier.py`, figures in ARCHITECTURE.md): one label per
certificate on the `cbl-status` config, beside the alerter's memory. A pass reads the records
with one inspect and writes them, when one changed, with one update, whatever their number.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from certbotless.acme.ari import lifetime_renewal_time
from certbotless.acme.dns01 import DnsProblem
from certbotless.acme.errors import (
    AcmeError,
    BackingOff,
    BadRequest,
    CaUnreachable,
    RateLimited,
    ValidationFailed,
)
from certbotless.acme.http01 import ChallengeNotServed
from certbotless.model import (
    CertificateStatus,
    CertSpec,
    Condition,
    Deferred,
    DnsRecord,
    FailureReason,
    ObjectRole,
    PastOrder,
    RenewalTime,
    StoredCert,
)
from certbotless.swarm.api import APIError, Json, Swarm
from certbotless.swarm.schema import (
    NewerRecords,
    NewerSchema,
    RecordKind,
    current_schema_text,
    readable_schema,
)
from certbotless.swarm.status_json import newer_status, status_from_json, status_to_json
from certbotless.swarm.store import KIND, MANAGED, NotStored

STATUS_CONFIG = "cbl-status"
STATUS_PREFIX = "certbotless.status."
ALERT_PREFIX = "certbotless.alert."
ORDERS_LABEL = "certbotless.orders"
DNS_RECORDS_LABEL = "certbotless.dns-records"
# Under a ledger's own label (orders, DNS-01 records), its schema: `certbotless.orders.schema`.
# A release that did not know it drops it when it writes the ledger, which is then schema 1.
LEDGER_SCHEMA = ".schema"
# Where renewal failures were kept before the status records: cleared on the first save.
LEGACY_FAILURE_PREFIX = "certbotless.failure."
_WRITE_ATTEMPTS = 5
_STATUS_DATA = b"certbotless status: see the labels\n"

# After consecutive failures of a certificate, whatever the kind: 5, 10, 20, 40 minutes (within
# Let's Encrypt's 5 failed validations per name per hour), then cert-manager's 1 h · 2^(n-5), at
# most 32 h; each with up to 10% jitter, so that many certificates failing together (a CA outage)
# do not come back together.
FIRST_RETRY = timedelta(minutes=5)
HOURLY_AFTER = 4  # failures retried within the first hour
LONGEST_RETRY = timedelta(hours=32)
JITTER = 0.1
# A certificate failing this long is abandoned: no more orders until its request changes.
ABANDON_AFTER = timedelta(days=30)


def retry_delay(failures: int, jitter: float = 0.0) -> timedelta:
    """The wait after `failures` consecutive failures; `jitter` in [0, 1) stretches it by up to
    JITTER."""
    if failures <= HOURLY_AFTER:
        base = FIRST_RETRY * (1 << max(failures - 1, 0))
    else:
        base = min(timedelta(hours=1) * (1 << min(failures - HOURLY_AFTER - 1, 10)), LONGEST_RETRY)
    return base * (1 + JITTER * jitter)


def failure_reason(error: AcmeError) -> FailureReason:
    """The machine-readable reason for an ordering failure."""
    for kind, reason in (
        (BackingOff, FailureReason.BACKING_OFF),
        (RateLimited, FailureReason.RATE_LIMITED),
        (CaUnreachable, FailureReason.CA_UNREACHABLE),
        (ChallengeNotServed, FailureReason.CHALLENGE_NOT_SERVED),
        (DnsProblem, FailureReason.DNS_PROBLEM),
        (ValidationFailed, FailureReason.VALIDATION_FAILED),
        (BadRequest, FailureReason.BAD_REQUEST),
        (NotStored, FailureReason.NOT_STORED),
    ):
        if isinstance(error, kind):
            return reason
    return FailureReason.ORDER_FAILED


def after_failure(
    previous: CertificateStatus, error: AcmeError, now: datetime
) -> CertificateStatus:
    """One more failed attempt. A name that was not tried (backing off) keeps its record."""
    if isinstance(error, BackingOff) and previous.condition is Condition.FAILING:
        return previous
    retry_at = error.retry_at if isinstance(error, RateLimited) else None
    return failed(previous, failure_reason(error), str(error), now, retry_at)


def failed(
    previous: CertificateStatus,
    reason: FailureReason,
    message: str,
    now: datetime,
    not_before: datetime | None = None,
) -> CertificateStatus:
    """The record after one more consecutive failure: backed off (never before `not_before`, a
    CA's Retry-After), or abandoned once it has failed for ABANDON_AFTER."""
    failures = previous.failures + 1
    since = previous.failing_since if previous.condition is Condition.FAILING else None
    since = since or now
    abandoned = now - since >= ABANDON_AFTER
    next_attempt = None
    if not abandoned:
        next_attempt = now + retry_delay(failures, random.random())
        next_attempt = max(next_attempt, not_before or next_attempt)
    return replace(
        previous,
        condition=Condition.FAILING,
        reason=reason,
        message=message,
        failures=failures,
        last_failure=now,
        failing_since=since,
        next_attempt=next_attempt,
        abandoned=abandoned,
        updated=now,
    )


def after_issuance(
    previous: CertificateStatus, now: datetime, issued_by: tuple[str, tuple[str, ...]] = ("", ())
) -> CertificateStatus:
    """Issued now: by `issued_by`'s issuer, the issuers before it passed over for its reasons."""
    return replace(
        previous,
        issuer=issued_by[0],
        skipped=issued_by[1],
        condition=Condition.READY,
        reason=None,
        message="",
        failures=0,
        failing_since=None,
        next_attempt=None,
        abandoned=False,
        updated=now,
    )


def over_budget(
    previous: CertificateStatus, deferred: Deferred, now: datetime
) -> CertificateStatus:
    """Not ordered: it would exceed one of the CA's limits. Not a failure (the count stays); it
    is shown, alerted and tried again once the order fits."""
    return replace(
        previous,
        condition=Condition.FAILING,
        reason=FailureReason.OVER_BUDGET,
        message=f"deferred: {deferred.reason}; it fits from {deferred.until:%Y-%m-%d %H:%M} UTC",
        last_failure=previous.last_failure or now,
        next_attempt=deferred.until,
        updated=now,
    )


def after_rollback(
    previous: CertificateStatus, serial: str, reason: str, now: datetime
) -> CertificateStatus:
    """Swarm rolled back the roll that mounted `serial`: a failure like any other, backed off."""
    record = failed(previous, FailureReason.ROLLED_BACK, reason, now)
    return replace(record, refused=(*previous.refused, serial)[-8:])


def described(
    previous: CertificateStatus | None,
    spec: CertSpec,
    current: StoredCert | None,
    renewal: RenewalTime | None,
) -> CertificateStatus:
    """The record brought up to date with what is wanted and what is stored. A changed request
    starts afresh: its failures were another request's."""
    record = previous or CertificateStatus(spec.name)
    if previous is not None and previous.domains and not previous.same_request(spec):
        record = CertificateStatus(spec.name, refused=previous.refused)
    condition = record.condition
    if condition is not Condition.FAILING:
        condition = Condition.ISSUING if current is None else Condition.READY
    if current is not None and renewal is None:
        renewal = RenewalTime(
            lifetime_renewal_time(current.not_before, current.not_after), current.not_after,
            "lifetime",
        )  # fmt: skip
    same_version = current is not None and current.serial == record.serial
    return replace(
        record,
        domains=spec.domains,
        key_type=spec.key_type,
        profile=spec.profile,
        pinned=spec.issuer,
        wanted=True,
        # The issuer is known for the version it was recorded with (a pass that issued it).
        issuer=record.issuer if same_version else "",
        skipped=record.skipped if same_version else (),
        serial="" if current is None else current.serial,
        not_after=None if current is None else current.not_after,
        condition=condition,
        renew_at=None if renewal is None else renewal.renew_at,
        renew_source="" if renewal is None else renewal.source,
    )


@dataclass(frozen=True)
class PassOutcome:
    """What a pass did, as the status records need it."""

    issued: Collection[str] = ()
    failed: Mapping[str, AcmeError] = field(default_factory=dict)
    refused: Mapping[str, str] = field(default_factory=dict)  # name → serial rolled back
    roll: str = ""  # "" (no roll), "ok", or the roll's error
    deferred: Mapping[str, Deferred] = field(default_factory=dict)  # over the CA's limits
    # name → the issuer that issued it, and why those before it were passed over
    issued_by: Mapping[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)


def collect_statuses(
    previous: Mapping[str, CertificateStatus],
    wanted: Iterable[CertSpec],
    current: Mapping[str, StoredCert],
    renewals: Mapping[str, RenewalTime],
    outcome: PassOutcome,
    now: datetime,
) -> dict[str, CertificateStatus]:
    """The collect step: every wanted certificate's record after this pass (a name no longer
    wanted drops its record)."""
    records = {}
    for spec in wanted:
        record = described(
            previous.get(spec.name), spec, current.get(spec.name), renewals.get(spec.name)
        )
        if spec.name in outcome.refused:
            # Issued but refused is one failed attempt: the failures before it still count,
            # so that rolls Swarm keeps refusing back off further each time.
            record = after_rollback(record, outcome.refused[spec.name], outcome.roll, now)
        elif spec.name in outcome.issued:
            record = after_issuance(record, now, outcome.issued_by.get(spec.name, ("", ())))
        elif spec.name in outcome.failed:
            record = after_failure(record, outcome.failed[spec.name], now)
        elif spec.name in outcome.deferred:
            record = over_budget(record, outcome.deferred[spec.name], now)
        if outcome.roll and (spec.name in outcome.issued or spec.name in outcome.refused):
            record = replace(record, last_roll=f"{outcome.roll} ({now:%Y-%m-%d %H:%M} UTC)")
        records[spec.name] = record
    return records


def next_attempt(records: Iterable[CertificateStatus]) -> datetime | None:
    """The earliest retry of a failed certificate."""
    return min(
        (r.next_attempt for r in records
         if r.condition is Condition.FAILING and r.next_attempt is not None),
        default=None,
    )  # fmt: skip


class StatusConfig:
    """The `cbl-status` config: its labels are notes, grouped by prefix. The daemon's pass and
    its alert worker both write, so each write reads afresh and one that came second retries."""

    def __init__(self, swarm: Swarm) -> None:
        self.swarm = swarm
        self._lock = threading.Lock()

    def notes(self, prefix: str) -> dict[str, str]:
        """The labels under `prefix`, without the prefix."""
        config = self._config()
        labels = {} if config is None else config["Spec"].get("Labels") or {}
        return {k[len(prefix) :]: v for k, v in labels.items() if k.startswith(prefix)}

    def write_notes(
        self,
        prefix: str,
        notes: Mapping[str, str],
        held: Callable[[dict[str, str]], Mapping[str, str]] | None = None,
    ) -> None:
        """Make `notes` the labels under `prefix`, leaving the others; writes only on a change.
        `held` is given the notes stored under `prefix` as read for this write, and returns
        those to keep as they are (a newer certbotless wrote them), or raises to write none."""
        with self._lock:
            for attempt in range(1, _WRITE_ATTEMPTS + 1):
                config = self._config()
                labels = {} if config is None else dict(config["Spec"].get("Labels") or {})
                wanted = {k: v for k, v in labels.items() if not k.startswith(prefix)}
                stored = {k[len(prefix) :]: v for k, v in labels.items() if k.startswith(prefix)}
                kept = {**notes, **(held(stored) if held is not None else {})}
                wanted.update({prefix + key: value for key, value in sorted(kept.items())})
                wanted.update({MANAGED: "true", KIND: ObjectRole.STATUS})
                if wanted == labels:
                    return
                try:
                    if config is None:
                        self.swarm.create_config(STATUS_CONFIG, _STATUS_DATA, wanted)
                    else:
                        # Against the version read: a write in between fails, and is redone.
                        self.swarm.update_config_labels(config["ID"], wanted, read=config)
                    return
                except APIError as error:
                    # Another writer came first (an update out of sequence, or the config
                    # created meanwhile): read again and redo.
                    raced = "out of sequence" in str(error) or error.status_code == 409
                    if not raced or attempt == _WRITE_ATTEMPTS:
                        raise

    def _config(self) -> Json | None:
        return next(
            (c for c in self.swarm.configs(f"{KIND}={ObjectRole.STATUS}")
             if c["Spec"]["Name"] == STATUS_CONFIG),
            None,
        )  # fmt: skip


class SwarmStatusStore:
    """StatusStore: a label per certificate name on the status config. A record a newer
    certbotless wrote is not read, and kept as it is by every save (`swarm.schema`)."""

    def __init__(self, config: StatusConfig) -> None:
        self.config = config
        self.newer = NewerRecords()

    def load(self) -> dict[str, CertificateStatus]:
        records = {}
        for name, text in self.config.notes(STATUS_PREFIX).items():
            try:
                record = status_from_json(name, text)
            except NewerSchema as newer:
                self.newer.tell(newer)
                continue
            if record is not None:
                records[name] = record
        return records

    def save(self, records: Mapping[str, CertificateStatus]) -> None:
        notes = {name: status_to_json(record) for name, record in records.items()}

        def newer_ones(stored: dict[str, str]) -> dict[str, str]:
            kept = {}
            for name, text in stored.items():
                newer = newer_status(name, text)
                if newer is not None:
                    self.newer.tell(newer)
                    kept[name] = text
            return kept

        self.config.write_notes(STATUS_PREFIX, notes, newer_ones)


def ledger_text(kind: RecordKind, label: str, notes: Mapping[str, str]) -> str | None:
    """The text of a ledger kept in one label (its schema beside it, `LEDGER_SCHEMA`): None when
    there is none, or none this release reads. Raises NewerSchema."""
    what = f"the {kind} (label {label} of config {STATUS_CONFIG})"
    if readable_schema(kind, what, notes.get(LEDGER_SCHEMA)) is None:
        return None
    return notes.get("")


def ledger_notes(kind: RecordKind, text: str) -> dict[str, str]:
    """What a ledger's label and its schema's are written as."""
    return {"": text, LEDGER_SCHEMA: current_schema_text(kind)}


def leave_newer_ledger(kind: RecordKind, label: str) -> Callable[[dict[str, str]], dict[str, str]]:
    """`StatusConfig.write_notes`'s `held` for a ledger: raises NewerSchema over a newer one."""

    def held(stored: dict[str, str]) -> dict[str, str]:
        ledger_text(kind, label, stored)
        return {}

    return held


def past_orders_to_json(history: Iterable[PastOrder]) -> str:
    return json.dumps(
        [[o.at.isoformat(), list(o.names), o.issued, o.renewal, o.claimant] for o in history],
        separators=(",", ":"),
    )


def past_orders_from_json(text: str) -> list[PastOrder]:
    """An unreadable history counts as empty (the CA's own limits still hold). Orders recorded
    before claimants were (four fields) are the operator's."""
    try:
        return [
            PastOrder(datetime.fromisoformat(at), tuple(names), bool(issued), bool(renewal),
                      str(claimant[0]) if claimant else "")
            for at, names, issued, renewal, *claimant in json.loads(text)
        ]  # fmt: skip
    except (ValueError, TypeError):
        return []


class SwarmOrderHistory:
    """OrderHistory: one label on the status config, the last week's orders as JSON. One a
    newer certbotless wrote reads as empty (the CA's own limits still hold) and is kept."""

    def __init__(self, config: StatusConfig) -> None:
        self.config = config
        self.newer = NewerRecords()

    def load(self) -> list[PastOrder]:
        try:
            text = ledger_text(RecordKind.ORDERS, ORDERS_LABEL, self.config.notes(ORDERS_LABEL))
        except NewerSchema as newer:
            self.newer.tell(newer)
            return []
        return past_orders_from_json(text or "[]")

    def save(self, orders: Sequence[PastOrder]) -> None:
        kind = RecordKind.ORDERS
        notes = ledger_notes(kind, past_orders_to_json(orders))
        try:
            self.config.write_notes(ORDERS_LABEL, notes, leave_newer_ledger(kind, ORDERS_LABEL))
        except NewerSchema as newer:
            self.newer.tell(newer)


class NewerDnsLedger(DnsProblem):
    """The DNS-01 ledger was written by a newer certbotless: no record may be published that it
    cannot note there (a crash would leave it published)."""


class SwarmDnsRecordLedger:
    """DnsRecordLedger: one label on the status config, the DNS-01 records not withdrawn yet.
    One a newer certbotless wrote reads as empty and is kept; noting a record there raises
    NewerDnsLedger, so that DNS-01 publishes nothing (HTTP-01 is not concerned)."""

    def __init__(self, config: StatusConfig) -> None:
        self.config = config
        self.newer = NewerRecords()

    def load(self) -> list[DnsRecord]:
        kind = RecordKind.DNS_RECORDS
        try:
            text = ledger_text(kind, DNS_RECORDS_LABEL, self.config.notes(DNS_RECORDS_LABEL))
        except NewerSchema as newer:
            self.newer.tell(newer)
            return []
        try:
            return [DnsRecord.from_json(entry) for entry in json.loads(text or "[]")]
        except (ValueError, KeyError, TypeError):
            return []  # not a ledger certbotless wrote: nothing it can act on

    def save(self, records: Sequence[DnsRecord]) -> None:
        kind = RecordKind.DNS_RECORDS
        entries = json.dumps([record.to_json() for record in records], sort_keys=True)
        try:
            self.config.write_notes(DNS_RECORDS_LABEL,
                                    ledger_notes(kind, entries) if records else {},
                                    leave_newer_ledger(kind, DNS_RECORDS_LABEL))  # fmt: skip
        except NewerSchema as newer:
            self.newer.tell(newer)
            if records:
                raise NewerDnsLedger(f"DNS-01 cannot note its TXT records: {newer}") from None


class SwarmAlertMemory:
    """What the alerter noted (its own encoding), so that a restart re-sends nothing."""

    def __init__(self, config: StatusConfig) -> None:
        self.config = config

    def load_alert_memory(self) -> dict[str, str]:
        return self.config.notes(ALERT_PREFIX)

    def save_alert_memory(self, entries: Mapping[str, str]) -> None:
        self.config.write_notes(ALERT_PREFIX, entries)
