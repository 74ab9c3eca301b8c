"""The schema versions of what certbotless keeps in the swarm, and the one rule for reading them.

Every kind of record says which form it was written in. Records written before they said so
(by checkouts before 0.2.0) are schema 1, the form they share with this release's schema 1.

The rule, the same for every kind: a record of this release's schema or an older one is read (an
older one brought to the current form in memory) and written back in the current schema on the
next write. A record of a newer schema was written by a newer certbotless, whose form this one
cannot know: it is not read, never written over nor deleted, and reported once, so that a
rollback to this release damages nothing a newer one wrote.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from enum import StrEnum

log = logging.getLogger(__name__)


class RecordKind(StrEnum):
    STATUS = "status record"  # a label per certificate on `cbl-status` (JSON, `schema` inside)
    ORDERS = "order history"  # `certbotless.orders` (and `certbotless.orders.schema`)
    DNS_RECORDS = "DNS-01 ledger"  # `certbotless.dns-records` (and `….schema`)
    CLAIMS = "claims ledger"  # `certbotless.claims.ledger`, `.mac` (and `.schema`)
    PASS_LEASE = "pass lease"  # the labels of `cbl-pass-lease` (and `certbotless.lease.schema`)
    # The labels of a config or secret certbotless made (chains, keys, nginx.confs, ticket
    # keys, the placeholder, the digest key), their MAC's form included, and of the configs a
    # release's stack file makes (`certbotless.schema`).
    OBJECT = "stored object"


# The schema this release writes, and the newest it reads, of each kind. Raise one when a form
# changes in a way an older release would misread (a field renamed, a meaning changed; a field
# added that older releases may ignore needs none), and teach its reader the older forms.
CURRENT_SCHEMA: dict[RecordKind, int] = {
    RecordKind.STATUS: 1,
    RecordKind.ORDERS: 1,
    RecordKind.DNS_RECORDS: 1,
    RecordKind.CLAIMS: 1,
    RecordKind.PASS_LEASE: 1,
    RecordKind.OBJECT: 1,
}
UNVERSIONED = 1  # what a record that names no schema was written in
OBJECT_SCHEMA = "certbotless.schema"  # the label on a config or secret


class NewerSchema(Exception):
    """A record written by a newer certbotless: left as it is. `what` names the record."""

    def __init__(self, kind: RecordKind, what: str, found: int) -> None:
        self.kind = kind
        self.what = what
        self.found = found
        super().__init__(
            f"{what} was written by a newer certbotless (schema {found}, this one reads up to "
            f"{CURRENT_SCHEMA[kind]}): left as it is; upgrade certbotless"
        )


def schema_of(value: object) -> int | None:
    """The schema a record names (a label's text or a JSON value): UNVERSIONED when it names
    none, None when what it names is no schema (a positive integer)."""
    if value is None or value == "":
        return UNVERSIONED
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 1 else None
    text = str(value)
    return int(text) if text.isascii() and text.isdigit() and int(text) >= 1 else None


def readable_schema(kind: RecordKind, what: str, value: object) -> int | None:
    """The schema of a record this release reads (None: it names no schema, so the record is
    unreadable, as malformed JSON is); raises NewerSchema for a newer one."""
    found = schema_of(value)
    if found is not None and found > CURRENT_SCHEMA[kind]:
        raise NewerSchema(kind, what, found)
    return found


def current_schema_text(kind: RecordKind) -> str:
    """The schema this release writes, as a label's text."""
    return str(CURRENT_SCHEMA[kind])


def stamped(labels: Mapping[str, str]) -> dict[str, str]:
    """A config's or secret's labels as this release writes them: with their schema."""
    return {**labels, OBJECT_SCHEMA: current_schema_text(RecordKind.OBJECT)}


class NewerRecords:
    """Reports each record of a newer schema once (per record and schema) in a process."""

    def __init__(self) -> None:
        self._told: set[str] = set()

    def tell(self, newer: NewerSchema) -> None:
        if str(newer) not in self._told:
            self._told.add(str(newer))
            log.warning("%s", newer)
