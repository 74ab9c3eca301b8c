"""Where the per-certificate status records live: what each carrier costs a pass, at N records.

Run with `bash scripts/bench status-carrier [--records N] [--rounds R]` (default 1,000 records,
5 rounds; the rig's single-node swarm). Each record is a realistic `CertificateStatus` as JSON
(about 400 bytes: a failing certificate with the CA's words). A pass reads every record once and,
when something changed, writes; measured:

- read: load every record;
- write one: one record changed (a failure), the rest as they were;
- write all: every record changed (the first pass after an upgrade, or a CA outage).

Carriers compared, all objects created here and removed at the end (by ID):
1. `labels`: one label per record on one config (`cbl-status`, which already holds the alert
   memory). A write replaces the labels (Swarm lets a config's labels change, not its data).
2. `per-object`: one config per record, its labels holding the record.
3. `versioned`: one config whose data is every record as JSON; a write creates the next version
   and removes the previous one (configs are immutable; Swarm's limit is 500 KB of data).
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from certbotless.model import CertificateStatus, Condition, FailureReason
from certbotless.swarm.api import Swarm
from certbotless.swarm.status_json import status_to_json

LABEL = "certbotless.bench.status-carrier"


def record(index: int, failures: int) -> CertificateStatus:
    now = datetime.now(UTC)
    return CertificateStatus(
        name=f"service-{index}.example.com",
        domains=(f"service-{index}.example.com", f"www.service-{index}.example.com"),
        serial=secrets.token_hex(18),
        not_after=now + timedelta(days=60),
        condition=Condition.FAILING,
        reason=FailureReason.VALIDATION_FAILED,
        message="urn:ietf:params:acme:error:connection: 203.0.113.7: Fetching http://service-"
        f"{index}.example.com/.well-known/acme-challenge/…: Timeout during connect",
        failures=failures,
        last_failure=now,
        next_attempt=now + timedelta(minutes=15 * failures),
        renew_at=now + timedelta(days=40),
        renew_source="ari",
        last_roll="ok",
        updated=now,
    )


def records(count: int, failures: int) -> dict[str, str]:
    return {f"certbotless.status.{i}": status_to_json(record(i, failures)) for i in range(count)}


class Carrier:
    """Where the records go; every object it creates is removed by `remove_all`."""

    def __init__(self, swarm: Swarm, tag: str) -> None:
        self.swarm = swarm
        self.tag = tag
        self.created: list[str] = []

    def setup(self, count: int) -> None:
        raise NotImplementedError

    def read(self) -> int:
        raise NotImplementedError

    def write(self, changed: dict[str, str]) -> None:
        raise NotImplementedError

    def create(self, name: str, data: bytes, labels: dict[str, str]) -> str:
        mine = {LABEL: self.tag, **labels}
        config_id = self.swarm.create_config(f"{name}-{self.tag}", data, mine)
        self.created.append(config_id)
        return config_id

    def remove(self, config_id: str) -> None:
        self.swarm.api.remove_config(config_id)
        self.created.remove(config_id)

    def remove_all(self) -> None:
        for config_id in list(self.created):
            self.remove(config_id)

    def mine(self) -> list[dict[str, object]]:
        return self.swarm.configs(f"{LABEL}={self.tag}")


class Labels(Carrier):
    def setup(self, count: int) -> None:
        self.config_id = self.create("cbl-bench-status", b"status\n", records(count, 1))

    def read(self) -> int:
        labels = self.swarm.inspect_config_labels(self.config_id)
        return sum(1 for key in labels if key.startswith("certbotless.status."))

    def write(self, changed: dict[str, str]) -> None:
        labels = self.swarm.inspect_config_labels(self.config_id)
        self.swarm.update_config_labels(self.config_id, {**labels, **changed})


class PerObject(Carrier):
    def setup(self, count: int) -> None:
        self.ids = {
            key: self.create(f"cbl-bench-st{i}", b"status\n", {"certbotless.status": value})
            for i, (key, value) in enumerate(records(count, 1).items())
        }

    def read(self) -> int:
        return len(self.mine())

    def write(self, changed: dict[str, str]) -> None:
        for key, value in changed.items():
            labels = {LABEL: self.tag, "certbotless.status": value}
            self.swarm.update_config_labels(self.ids[key], labels)


class Versioned(Carrier):
    def setup(self, count: int) -> None:
        self.version = 0
        self.current = self.create("cbl-bench-stv0", json.dumps(records(count, 1)).encode(), {})

    def read(self) -> int:
        newest = max(self.mine(), key=lambda c: str(c["CreatedAt"]))
        return len(json.loads(self.swarm.config_data(str(newest["ID"]))))

    def write(self, changed: dict[str, str]) -> None:
        newest = max(self.mine(), key=lambda c: str(c["CreatedAt"]))
        data = {**json.loads(self.swarm.config_data(str(newest["ID"]))), **changed}
        self.version += 1
        fresh = self.create(f"cbl-bench-stv{self.version}", json.dumps(data).encode(), {})
        self.remove(self.current)
        self.current = fresh


def timed(action: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        action()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def measure(carrier: Carrier, count: int, rounds: int) -> tuple[float, float, float, float]:
    """(set up, read, write one, write all) in seconds."""
    began = time.perf_counter()
    carrier.setup(count)
    setup = time.perf_counter() - began
    read = timed(carrier.read, rounds)
    one = {"certbotless.status.7": status_to_json(record(7, 2))}
    write_one = timed(lambda: carrier.write(one), rounds)
    every = records(count, 3)
    write_all = timed(lambda: carrier.write(every), 1)
    return setup, read, write_one, write_all


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    swarm = Swarm()
    tag = secrets.token_hex(3)
    rows = []
    for kind in (Labels, PerObject, Versioned):
        carrier = kind(swarm, tag)
        try:
            setup, read, one, every = measure(carrier, args.records, args.rounds)
        finally:
            carrier.remove_all()
        rows.append((kind.__name__, setup, read, one, every))
        print(
            f"{kind.__name__}: set up {setup:.2f} s, read {read * 1000:.0f} ms, "
            f"write one {one * 1000:.0f} ms, write all {every * 1000:.0f} ms",
            flush=True,
        )
    size = len(json.dumps(records(args.records, 3)))
    print(f"\n{args.records} records, {size / 1024:.0f} KB as JSON; medians of {args.rounds}")
    print("| carrier | read | write one | write all | set up |\n|---|---|---|---|---|")
    for name, setup, read, one, every in rows:
        print(f"| {name} | {read * 1000:.0f} ms | {one * 1000:.0f} ms | {every * 1000:.0f} ms "
              f"| {setup:.1f} s |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
