"""Per-name back-off, so that a broken name cannot burn the CA's limits for everyone.

Let's Encrypt allows 5 failed validations per name per hour. Waits of 5, 10, 20, 40, 60… minutes
after consecutive failures keep us at 4 or fewer in any hour. A `rateLimited` answer blocks the
names until the CA's Retry-After. Kept in memory: a restart forgets it, which costs at most one
more attempt per name.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from certbotless.acme.errors import BackingOff

_RATE_LIMIT = "the CA's rate limit"


@dataclass
class _NameState:
    failures: int = 0
    blocked_until: datetime | None = None
    reason: str = ""


class IdentifierBackoff:
    def __init__(
        self,
        first_wait: timedelta = timedelta(minutes=5),
        max_wait: timedelta = timedelta(hours=1),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.first_wait = first_wait
        self.max_wait = max_wait
        self.clock = clock
        self._names: dict[str, _NameState] = {}
        self._lock = threading.Lock()

    def check(self, names: Iterable[str]) -> None:
        """Raise BackingOff if any of `names` must not be ordered yet."""
        now = self.clock()
        with self._lock:
            for name in names:
                state = self._names.get(name)
                if state and state.blocked_until and state.blocked_until > now:
                    raise BackingOff(
                        f"{name}: not asking the CA again before "
                        f"{state.blocked_until:%Y-%m-%d %H:%M:%S} UTC after {state.reason}",
                        state.blocked_until,
                        rate_limited=state.reason == _RATE_LIMIT,
                    )

    def validation_failed(self, name: str) -> datetime:
        with self._lock:
            state = self._names.setdefault(name, _NameState())
            state.failures += 1
            wait = min(self.first_wait * 2 ** (state.failures - 1), self.max_wait)
            state.blocked_until = self.clock() + wait
            state.reason = f"{state.failures} failed validation(s)"
            return state.blocked_until

    def rate_limited(self, names: Iterable[str], until: datetime) -> None:
        with self._lock:
            for name in names:
                state = self._names.setdefault(name, _NameState())
                state.blocked_until = max(until, state.blocked_until or until)
                state.reason = _RATE_LIMIT

    def succeeded(self, names: Iterable[str]) -> None:
        with self._lock:
            for name in names:
                self._names.pop(name, None)

    def blocked_until(self, name: str) -> datetime | None:
        with self._lock:
            state = self._names.get(name)
            return state.blocked_until if state else None
