"""The claims ledger on the status config: signed with the store's key; a ledger whose MAC does
not verify (a tenant's, or one planted before the sidecar wrote its own) is ignored."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

from certbotless.swarm.authenticity import StoreKey
from certbotless.swarm.claims import CLAIMS_PREFIX, SwarmClaimLedger

KEY = StoreKey(b"k" * 32)


class Notes:
    """StatusConfig's notes, in memory."""

    def __init__(self) -> None:
        self.labels: dict[str, str] = {}

    def notes(self, prefix: str) -> dict[str, str]:
        return {k[len(prefix) :]: v for k, v in self.labels.items() if k.startswith(prefix)}

    def write_notes(
        self,
        prefix: str,
        notes: Mapping[str, str],
        held: Callable[[dict[str, str]], Mapping[str, str]] | None = None,
    ) -> None:
        kept = {**notes, **(held(self.notes(prefix)) if held is not None else {})}
        self.labels = {k: v for k, v in self.labels.items() if not k.startswith(prefix)}
        self.labels.update({prefix + k: v for k, v in kept.items()})


def ledger(notes: Notes, key: StoreKey | None = KEY) -> SwarmClaimLedger:
    return SwarmClaimLedger(cast(Any, notes), lambda: key)


def test_the_ledger_reads_back_what_it_wrote() -> None:
    notes = Notes()
    ledger(notes).save({"host:shop.example.com": "svc1", "certificate:shop": "svc1"})
    assert ledger(notes).load() == {"host:shop.example.com": "svc1", "certificate:shop": "svc1"}


def test_a_forged_or_unsigned_ledger_is_ignored() -> None:
    notes = Notes()
    ledger(notes).save({"host:shop.example.com": "svc1"})
    notes.labels[CLAIMS_PREFIX + "ledger"] = '{"host:shop.example.com":"evil"}'  # MAC kept
    assert ledger(notes).load() == {}
    ledger(notes, StoreKey(b"guess" * 8)).save({"host:shop.example.com": "evil"})
    assert ledger(notes).load() == {}
    # Without the key (a one-off command outside the sidecar) it is read, never written.
    assert ledger(notes, None).load() == {"host:shop.example.com": "evil"}
    ledger(notes, None).save({})
    assert ledger(notes, None).load() == {"host:shop.example.com": "evil"}
