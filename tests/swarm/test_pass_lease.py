"""Issue 14, item 9: one pass at a time across the swarm, and jobs removed only by their owner."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from certbotless.swarm.api import JOB_LABEL, JOB_OWNER, Swarm
from certbotless.swarm.lease import LeaseBusy, LeaseState, SwarmPassLock
from certbotless.swarm.locks import FilePassLock

pytestmark = pytest.mark.rig


@pytest.fixture
def lease_name() -> Iterator[str]:
    """A lease of this test's own, so that a running sidecar's passes are not involved."""
    name = f"cbl-test-lease-{secrets.token_hex(3)}"
    yield name
    swarm = Swarm()
    for config in swarm.configs("certbotless.kind=pass-lease"):
        if config["Spec"]["Name"] == name:
            swarm.remove_config(config["ID"])


def lock(
    tmp_path: Path, name: str, holder: str, ttl: float = 60, wait: float = 30
) -> SwarmPassLock:
    local = FilePassLock(tmp_path / f"{holder}.lock")  # separate containers: separate files
    return SwarmPassLock(Swarm(), local, holder, timedelta(seconds=ttl), timedelta(seconds=wait),
                         name=name)  # fmt: skip


def test_a_second_pass_anywhere_waits_for_the_first(tmp_path: Path, lease_name: str) -> None:
    first = lock(tmp_path, lease_name, "sidecar-a")
    second = lock(tmp_path, lease_name, "cron-b", wait=1.5)
    with first.hold():
        assert first.state().holder == "sidecar-a"
        began = time.monotonic()
        with pytest.raises(LeaseBusy, match="held by sidecar-a"), second.hold():
            pass
        assert time.monotonic() - began >= 1.5
    assert first.state().holder == "", "released at the end of the pass"
    with second.hold():
        assert second.state().holder == "cron-b"


def test_contending_passes_never_overlap(tmp_path: Path, lease_name: str) -> None:
    inside: list[str] = []
    overlaps: list[tuple[str, ...]] = []

    def pass_of(holder: str) -> None:
        for _ in range(3):
            with lock(tmp_path, lease_name, holder).hold():
                inside.append(holder)
                if len(inside) > 1:
                    overlaps.append(tuple(inside))
                time.sleep(0.2)
                inside.remove(holder)

    threads = [threading.Thread(target=pass_of, args=(f"p{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert overlaps == [] and not any(thread.is_alive() for thread in threads)


def test_a_killed_holder_blocks_the_others_only_until_its_lease_expires(
    tmp_path: Path, lease_name: str
) -> None:
    dead = lock(tmp_path, lease_name, "killed", ttl=2)
    # What a holder killed mid-pass leaves: its lease, never released nor renewed.
    assert dead._swap(None, LeaseState("killed", datetime.now(UTC) + timedelta(seconds=2)))
    began = time.monotonic()
    with lock(tmp_path, lease_name, "next").hold():
        waited = time.monotonic() - began
    assert 1.0 <= waited <= 6.0, waited


def test_a_long_pass_keeps_its_lease_by_renewing_it(tmp_path: Path, lease_name: str) -> None:
    long_pass = lock(tmp_path, lease_name, "long", ttl=1.5)
    with long_pass.hold():
        time.sleep(4)  # more than twice the lease's life: renewed meanwhile
        with pytest.raises(LeaseBusy), lock(tmp_path, lease_name, "other", wait=1).hold():
            pass


def test_orphaned_jobs_are_removed_by_their_owner_only() -> None:
    mine, theirs = Swarm(owner="cbl-test-owner-a"), Swarm(owner="cbl-test-owner-b")
    names = {}
    for swarm in (mine, theirs):
        name = f"cbl-test-job-{swarm.owner[-1]}-{secrets.token_hex(2)}"
        swarm.api.create_service(
            {"ContainerSpec": {"Image": "certbotless-nginx:local"}},
            name=name,
            labels={JOB_LABEL: "true", JOB_OWNER: swarm.owner},
            mode={"Replicated": {"Replicas": 0}},
        )
        names[swarm.owner] = name
    try:
        assert mine.remove_orphaned_jobs() == [names["cbl-test-owner-a"]]
        left = {s["Spec"]["Name"] for s in theirs.api.services()}
        assert names["cbl-test-owner-b"] in left and names["cbl-test-owner-a"] not in left
    finally:
        theirs.remove_orphaned_jobs()
