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
from certbotless.swarm.status import StatusConfig

CLAIMS_PREFIX = "certbotless.claims."
LEDGER = "ledger"
MAC = "mac"
_PURPOSE = "claims"

log = logging.getLogger(__name__)


class SwarmClaimLedger:
    """ClaimLedger: two labels on the status config, the claims as JSON and their MAC."""

    def __init__(self, config: StatusConfig, key: Callable[[], StoreKey | None]) -> None:
        self.config = config
        self.key = key  # read at each use: the daemon resolves the key after building this
        self._forged_logged = ""

    def load(self) -> dict[str, str]:
        notes = self.config.notes(CLAIMS_PREFIX)
        text = notes.get(LEDGER, "")
        if not text:
            return {}
        key = self.key()
        if key is not None and not key.verifies_text(_PURPOSE, text, notes.get(MAC, "")):
            if self._forged_logged != text:
                self._forged_logged = text
                log.warning("the claims ledger on the status config was not written by "
                            "certbotless (its MAC does not verify): ignored; claims are "
                            "settled afresh and written anew")  # fmt: skip
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
        self.config.write_notes(CLAIMS_PREFIX, {LEDGER: text, MAC: key.mac_text(_PURPOSE, text)})
