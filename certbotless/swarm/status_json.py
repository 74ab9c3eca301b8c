"""A certificate's status record as it is stored in the swarm: JSON, one label per name on the
status config (swarm/status.py), with its schema (swarm/schema.py) inside."""

from __future__ import annotations

import json
from datetime import datetime

from certbotless.model import CertificateStatus, Condition, FailureReason, KeyType
from certbotless.swarm.schema import (
    CURRENT_SCHEMA,
    NewerSchema,
    RecordKind,
    readable_schema,
    schema_of,
)

SCHEMA_FIELD = "schema"


def status_to_json(record: CertificateStatus) -> str:
    """The record as stored in the swarm (a label of `cbl-status`), bounded."""

    def when(value: datetime | None) -> str | None:
        return None if value is None else value.isoformat()

    return json.dumps(
        {
            SCHEMA_FIELD: CURRENT_SCHEMA[RecordKind.STATUS],
            "domains": list(record.domains),
            "key_type": record.key_type.value,
            "profile": record.profile,
            "wanted": record.wanted,
            "serial": record.serial,
            "not_after": when(record.not_after),
            "condition": record.condition.value,
            "reason": None if record.reason is None else record.reason.value,
            "message": record.message[:1000],
            "failures": record.failures,
            "last_failure": when(record.last_failure),
            "failing_since": when(record.failing_since),
            "abandoned": record.abandoned,
            "next_attempt": when(record.next_attempt),
            "refused": list(record.refused[-8:]),
            "renew_at": when(record.renew_at),
            "renew_source": record.renew_source,
            "last_roll": record.last_roll[:500],
            "updated": when(record.updated),
            "issuer": record.issuer,
            "skipped": [reason[:300] for reason in record.skipped[:8]],
            "pinned": record.pinned,
        },
        separators=(",", ":"),
    )


def status_from_json(name: str, text: str) -> CertificateStatus | None:
    """A stored record of this schema or an older one (schema 1, the only one so far, is read as
    it is); None for one this version cannot read (it is then rebuilt from the swarm). Raises
    NewerSchema for a record a newer certbotless wrote."""

    def when(value: object) -> datetime | None:
        return None if value is None else datetime.fromisoformat(str(value))

    try:
        value = json.loads(text)
        if readable_schema(RecordKind.STATUS, f"status record {name}",
                           value.get(SCHEMA_FIELD)) is None:  # fmt: skip
            return None
        reason = value.get("reason")
        return CertificateStatus(
            name=name,
            domains=tuple(value.get("domains", ())),
            key_type=KeyType(value.get("key_type", KeyType.EC256.value)),
            profile=value.get("profile"),
            wanted=bool(value.get("wanted", True)),
            serial=str(value.get("serial", "")),
            not_after=when(value.get("not_after")),
            condition=Condition(value.get("condition", Condition.ISSUING.value)),
            reason=None if reason is None else FailureReason(reason),
            message=str(value.get("message", "")),
            failures=int(value.get("failures", 0)),
            last_failure=when(value.get("last_failure")),
            failing_since=when(value.get("failing_since")),
            abandoned=bool(value.get("abandoned", False)),
            next_attempt=when(value.get("next_attempt")),
            refused=tuple(value.get("refused", ())),
            renew_at=when(value.get("renew_at")),
            renew_source=str(value.get("renew_source", "")),
            last_roll=str(value.get("last_roll", "")),
            updated=when(value.get("updated")),
            issuer=str(value.get("issuer", "")),
            skipped=tuple(str(reason) for reason in value.get("skipped", ())),
            pinned=value.get("pinned"),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def newer_status(name: str, text: str) -> NewerSchema | None:
    """Whether a stored record was written by a newer certbotless (then it is kept as it is)."""
    try:
        value = json.loads(text)
        found = schema_of(value.get(SCHEMA_FIELD)) if isinstance(value, dict) else None
    except ValueError:
        return None
    if found is None or found <= CURRENT_SCHEMA[RecordKind.STATUS]:
        return None
    return NewerSchema(RecordKind.STATUS, f"status record {name}", found)
