"""The claims ledger (`labels.claims`): who first claimed each certificate name, host, host and
path and middleware name, kept on the `cbl-status` config beside the status records.

Anyone who may deploy a stack may create or label objects, so the ledger carries a MAC keyed with
the store's key (`authenticity.StoreKey`, held only by the sidecar): a ledger whose MAC does not
verify is ignored (the next pass settles claims afresh, in claim order, and writes a signed one)
and logged once. Where the key is not mounted (a one-off command outside the sidecar) the ledger
is read as it is, as the store's objects are, and never written.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping

from certbotless.swarm.authenticity import StoreKey
from certbotless.swarm.schema import (
    CURRENT_SCHEMA,
    NewerRecords,
    NewerSchema,
    RecordKind,
    current_schema_text,
    schema_of,
)
from certbotless.swarm.status import STATUS_CONFIG, StatusConfig

CLAIMS_PREFIX = "certbotless.claims."
LEDGER = "ledger"
MAC = "mac"
SCHEMA = "schema"
_PURPOSE = "claims"
_WHAT = f"the claims ledger (labels {CLAIMS_PREFIX}* of config {STATUS_CONFIG})"

log = logging.getLogger(__name__)


def mac_purpose(schema: int) -> str:
    """What the MAC of a ledger of `schema` is made for: schema 1's as before schemas were
    named; a later one's names its schema, so that a schema label changed by hand (a newer
    ledger claimed, to keep the sidecar from writing) fails the MAC."""
    return _PURPOSE if schema == 1 else f"{_PURPOSE}/schema-{schema}"


class SwarmClaimLedger:
    """ClaimLedger: labels on the status config, the claims as JSON, their MAC and schema. A
    signed ledger a newer certbotless wrote is not read (claims settle by creation time) and
    never written over."""

    def __init__(self, config: StatusConfig, key: Callable[[], StoreKey | None]) -> None:
        self.config = config
        self.key = key  # read at each use: the daemon resolves the key after building this
        self._forged_logged = ""
        self.newer = NewerRecords()

    def load(self) -> dict[str, str]:
        notes = self.config.notes(CLAIMS_PREFIX)
        text = notes.get(LEDGER, "")
        if not text:
            return {}
        schema = schema_of(notes.get(SCHEMA))
        if not self._authentic(notes, schema):
            if self._forged_logged != text:
                self._forged_logged = text
                log.warning("the claims ledger on the status config was not written by "
                            "certbotless (its MAC does not verify): ignored; claims are "
                            "settled afresh and written anew")  # fmt: skip
            return {}
        if schema is None:
            return {}
        if schema > CURRENT_SCHEMA[RecordKind.CLAIMS]:
            self.newer.tell(NewerSchema(RecordKind.CLAIMS, _WHAT, schema))
            return {}
        try:
            claims = json.loads(text)
        except ValueError:
            return {}
        if not isinstance(claims, dict):
            return {}
        return {str(k): str(v) for k, v in claims.items()}

    def save(self, claims: Mapping[str, str]) -> None:
        key = self.key()
        if key is None:
            return  # unsigned, the sidecar would ignore it
        text = json.dumps(dict(sorted(claims.items())), separators=(",", ":"))
        schema = CURRENT_SCHEMA[RecordKind.CLAIMS]
        notes = {LEDGER: text, MAC: key.mac_text(mac_purpose(schema), text),
                 SCHEMA: current_schema_text(RecordKind.CLAIMS)}  # fmt: skip
        try:
            self.config.write_notes(CLAIMS_PREFIX, notes, self._leave_newer)
        except NewerSchema as newer:
            self.newer.tell(newer)

    def _authentic(self, notes: Mapping[str, str], schema: int | None) -> bool:
        """Whether the ledger's MAC verifies (True without the key: nothing can be told)."""
        key = self.key()
        if key is None:
            return True
        if schema is None:
            return False
        return key.verifies_text(mac_purpose(schema), notes.get(LEDGER, ""), notes.get(MAC, ""))

    def _leave_newer(self, stored: dict[str, str]) -> dict[str, str]:
        """Raises NewerSchema over a signed ledger of a newer schema (a forged one is written
        over, as any forged ledger)."""
        schema = schema_of(stored.get(SCHEMA))
        if schema is None or schema <= CURRENT_SCHEMA[RecordKind.CLAIMS]:
            return {}
        if stored.get(LEDGER) and self._authentic(stored, schema):
            raise NewerSchema(RecordKind.CLAIMS, _WHAT, schema)
        return {}
