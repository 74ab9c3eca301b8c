"""The daemon's last passes, in memory: what the status page shows of them (not state: a
restarted sidecar starts with none, and the status records hold what must survive)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from certbotless.model import PassReport

KEPT_PASSES = 50


@dataclass(frozen=True)
class PassRecord:
    """One pass: when it ended, how long it took, and what it reported."""

    ended: datetime
    seconds: float
    report: PassReport


class PassHistory:
    """The last KEPT_PASSES passes, newest first; written by the daemon's passes, read by the
    status page's threads."""

    def __init__(
        self, kept: int = KEPT_PASSES, after_add: Callable[[PassRecord], None] | None = None
    ) -> None:
        self._records: deque[PassRecord] = deque(maxlen=kept)
        self._lock = threading.Lock()
        self._after_add = after_add  # told of each pass (the edge watch probes then)

    def add(self, record: PassRecord) -> None:
        with self._lock:
            self._records.appendleft(record)
        if self._after_add is not None:
            self._after_add(record)

    def recent(self) -> list[PassRecord]:
        with self._lock:
            return list(self._records)

    def last(self) -> PassRecord | None:
        with self._lock:
            return self._records[0] if self._records else None
