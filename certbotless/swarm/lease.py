"""The swarm-wide pass lease: one pass at a time across every sidecar, cron job and manual
`issue`, on any manager (a PassLock)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from certbotless.model import ObjectRole
from certbotless.swarm.api import APIError, Json, Swarm
from certbotless.swarm.locks import FilePassLock
from certbotless.swarm.schema import NewerSchema, RecordKind, current_schema_text, readable_schema
from certbotless.swarm.store import KIND, MANAGED

log = logging.getLogger(__name__)

LEASE_CONFIG = "cbl-pass-lease"
HOLDER = "certbotless.lease.holder"
EXPIRES = "certbotless.lease.expires"
SCHEMA = "certbotless.lease.schema"  # swarm/schema.py; a release before it wrote none (1)
# A holder that dies blocks the others for at most this long; a live one renews every third.
LEASE_TTL = timedelta(seconds=60)
# A pass that cannot get the lease in this long gives up (the daemon retries later).
LEASE_WAIT = timedelta(minutes=10)
_POLL = 0.5


class LeaseBusy(Exception):
    """Another pass holds the lease and kept it past LEASE_WAIT."""


@dataclass(frozen=True)
class LeaseState:
    holder: str  # "" when free
    expires: datetime | None
    # Why this release leaves the lease alone: a newer certbotless wrote it ("": it did not).
    newer: str = ""

    def held_by_other(self, me: str, now: datetime) -> bool:
        return bool(self.holder) and self.holder != me and (self.expires or now) > now


class SwarmPassLock:
    """A lease in the labels of one config, taken by compare-and-swap (Swarm refuses an update
    out of sequence), with an expiry so that a killed holder does not block forever, renewed
    while the pass runs. `local` first serialises the passes of this container."""

    def __init__(
        self, swarm: Swarm, local: FilePassLock, holder: str, ttl: timedelta = LEASE_TTL,
        wait: timedelta = LEASE_WAIT, name: str = LEASE_CONFIG,
    ) -> None:  # fmt: skip
        self.name = name
        self.swarm = swarm
        self.local = local
        self.holder = holder
        self.ttl = ttl
        self.wait = wait

    @contextmanager
    def hold(self) -> Iterator[None]:
        with self.local.hold():
            self._acquire()
            stop = threading.Event()
            renewer = threading.Thread(target=self._renew, args=(stop,), name="lease", daemon=True)
            renewer.start()
            try:
                yield
            finally:
                stop.set()
                renewer.join()
                self._update_mine(LeaseState("", None))

    def state(self) -> LeaseState:
        config = self._config()
        return LeaseState("", None) if config is None else _state(config)

    def _acquire(self) -> None:
        deadline = time.monotonic() + self.wait.total_seconds()
        told = ""
        while True:
            now = datetime.now(UTC)
            config = self._config()
            current = LeaseState("", None) if config is None else _state(config)
            if current.newer:
                # Its rules are a newer release's: taking it could let two passes overlap.
                raise LeaseBusy(f"{current.newer}; or, once no newer certbotless runs, remove "
                                f"it: docker config rm {self.name}")  # fmt: skip
            if not current.held_by_other(self.holder, now):
                # Swapped against what was read just now: a rival who took it meanwhile wins.
                if self._swap(config, LeaseState(self.holder, now + self.ttl)):
                    return
                continue
            if time.monotonic() > deadline:
                raise LeaseBusy(
                    f"the pass lease is held by {current.holder} until {current.expires:%H:%M:%S}"
                    f" UTC (config {self.name}); try again later"
                )
            if told != current.holder:
                log.info("waiting for the pass lease, held by %s until %s UTC", current.holder,
                         f"{current.expires:%H:%M:%S}")  # fmt: skip
                told = current.holder
            time.sleep(_POLL)

    def _renew(self, stop: threading.Event) -> None:
        while not stop.wait(self.ttl.total_seconds() / 3):
            if not self._update_mine(LeaseState(self.holder, datetime.now(UTC) + self.ttl)):
                log.warning("the pass lease could not be renewed; another pass may start")

    def _update_mine(self, wanted: LeaseState) -> bool:
        """Renew or release the lease, if it is still ours."""
        config = self._config()
        if config is None or _state(config).holder != self.holder:
            return False
        return self._swap(config, wanted)

    def _swap(self, read: Json | None, wanted: LeaseState) -> bool:
        """Compare-and-swap the lease against `read` (None: it did not exist); False when
        someone else wrote first."""
        labels = {
            MANAGED: "true",
            KIND: ObjectRole.PASS_LEASE,
            HOLDER: wanted.holder,
            EXPIRES: wanted.expires.isoformat() if wanted.expires else "",
            SCHEMA: current_schema_text(RecordKind.PASS_LEASE),
        }
        try:
            if read is None:
                self.swarm.create_config(self.name, b"certbotless pass lease\n", labels)
            else:
                self.swarm.update_config_labels(read["ID"], labels, read=read)
        except APIError as error:
            if error.status_code == 409 or "out of sequence" in str(error):
                return False
            raise
        return True

    def _config(self) -> Json | None:
        return next(
            (c for c in self.swarm.configs(f"{KIND}={ObjectRole.PASS_LEASE}")
             if c["Spec"]["Name"] == self.name),
            None,
        )  # fmt: skip


def _state(config: Json) -> LeaseState:
    labels = config["Spec"].get("Labels") or {}
    try:
        what = f"the pass lease (config {config['Spec']['Name']})"
        readable_schema(RecordKind.PASS_LEASE, what, labels.get(SCHEMA))
    except NewerSchema as newer:
        return LeaseState("", None, str(newer))
    try:
        expires = datetime.fromisoformat(labels.get(EXPIRES, ""))
    except ValueError:
        expires = None
    return LeaseState(labels.get(HOLDER, ""), expires)
