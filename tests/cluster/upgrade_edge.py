"""What the upgrade test reads and does on the cluster: the edge stack of one release deployed,
what the swarm stores for it (status records, orders, objects), and waiting for a release to
have taken over (its services converged, its sidecar's pass done)."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rig.cluster import Cluster
from rig.state import run

STACK = "certbotless-upgrade"  # certbotless-…: the proxy lets the sidecar keep its stack's secrets
SERVICES = ("front", "docker-api", "nginx", "certbotless")
STATUS_CONFIG = "cbl-status"
STATUS_PREFIX = "certbotless.status."
ORDERS_LABEL = "certbotless.orders"


@dataclass(frozen=True)
class Stored:
    """What the swarm holds for certbotless at one moment."""

    records: dict[str, dict[str, object]]  # certificate name → its status record
    orders: list[list[object]]  # the order history (label certbotless.orders), entry by entry
    objects: frozenset[str]  # every config's and secret's name, "config:…" / "secret:…"

    def carried(self, name: str) -> tuple[object, object]:
        """(failures, next attempt) of a record: what a release must carry over."""
        record = self.records.get(name, {})
        return record.get("failures", 0), record.get("next_attempt")


@dataclass
class UpgradeEdge:
    cluster: Cluster
    env: dict[str, str]  # for `docker stack deploy`: the rig's, the test's Pebble and DNS-01

    @property
    def managers(self) -> list[str]:
        return [n.hostname for n in self.cluster.swarm_nodes() if n.role == "manager"]

    def docker(self, *args: str, check: bool = True) -> str:
        return self.cluster.docker(self.cluster.manager(), *args, check=check)

    def deploy(self, files: Sequence[Path]) -> float:
        """`docker stack deploy` of the files, again on "update out of sequence" (the sidecar's
        own update landed between the CLI's read and its write: docs/production.md); seconds."""
        started = time.monotonic()
        args = [arg for file in files for arg in ("-c", str(file))]
        for _ in range(5):
            result = run(
                ["docker", "stack", "deploy", *args, STACK],
                check=False,
                env={**self.env, **self.cluster.env(self.cluster.manager())},
            )
            if result.returncode == 0:
                return time.monotonic() - started
            assert "out of sequence" in result.stderr, result.stdout + result.stderr
        raise AssertionError(f"docker stack deploy kept failing: {result.stderr}")

    def spec(self, service: str) -> dict[str, Any]:
        [inspected] = json.loads(self.docker("service", "inspect", f"{STACK}_{service}"))
        return dict(inspected)

    def image(self, service: str) -> str:
        container = self.spec(service)["Spec"]["TaskTemplate"]["ContainerSpec"]
        return str(container["Image"]).split("@")[0]

    def config_names(self, service: str) -> list[str]:
        container = self.spec(service)["Spec"]["TaskTemplate"]["ContainerSpec"]
        return sorted(c["ConfigName"] for c in container.get("Configs") or [])

    def converged(self, service: str, image: str) -> bool:
        """Its spec runs `image`, no update is under way, and every running task runs it."""
        spec = self.spec(service)
        state = dict(spec.get("UpdateStatus") or {}).get("State", "completed")
        if self.image(service) != image or state not in ("completed", "rollback_completed"):
            return False
        tasks = self.docker(
            "service", "ps", f"{STACK}_{service}", "--filter", "desired-state=running",
            "--format", "{{.Image}}\t{{.CurrentState}}",
        ).splitlines()  # fmt: skip
        return bool(tasks) and all(
            t.split("\t")[0].split("@")[0] == image and t.split("\t")[1].startswith("Running")
            for t in tasks
        )

    def sidecar_log(self, image: str) -> str:
        """The log of the running sidecar container that runs `image` ("" when none runs)."""
        for node in self.cluster.task_nodes(f"{STACK}_certbotless"):
            found = self.cluster.docker(
                node, "ps", "-q", "--filter",
                f"label=com.docker.swarm.service.name={STACK}_certbotless",
                "--filter", f"ancestor={image}",
            ).split()  # fmt: skip
            if found:
                logs = run(["docker", "logs", found[0]], False, self.cluster.env(node))
                return logs.stdout + logs.stderr
        return ""

    def wait_taken_over(self, images: Mapping[str, str], timeout: float = 240) -> str:
        """Until every service runs its image of `images` and that release's sidecar finished a
        pass with nginx converged; returns that sidecar's log."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.sidecar_log(images["certbotless"])
            done = "pass done" in log and all(self.converged(s, i) for s, i in images.items())
            if done:
                return log
            assert time.monotonic() < deadline, (
                {s: self.converged(s, i) for s, i in images.items()},
                log[-3000:],
            )
            time.sleep(2)

    def stored(self) -> Stored:
        [status] = json.loads(self.docker("config", "inspect", STATUS_CONFIG))
        labels = dict(status["Spec"].get("Labels") or {})
        records = {
            key.removeprefix(STATUS_PREFIX): dict(json.loads(value))
            for key, value in labels.items()
            if key.startswith(STATUS_PREFIX)
        }
        orders = list(json.loads(labels.get(ORDERS_LABEL, "[]")))
        return Stored(records, orders, self.stored_objects())

    def stored_objects(self) -> frozenset[str]:
        """Every config's and secret's name, as "config:…" / "secret:…"."""
        return frozenset(
            f"{kind}:{name}"
            for kind in ("config", "secret")
            for name in self.docker(kind, "ls", "--format", "{{.Name}}").split()
        )

    def wait_front(self, nodes: Sequence[str], timeout: float = 180) -> None:
        """Until each node's front passes HTTP on port 80 to nginx, as the CA will reach it."""
        deadline = time.monotonic() + timeout
        for node in nodes:
            while not _front_answers(self.cluster.address(node)):
                assert time.monotonic() < deadline, f"the front on {node} did not answer"
                time.sleep(1)

    def labelled_app(self, name: str, domains: str, *labels: str) -> None:
        self.docker(
            "service", "create", "--detach", "--name", name, "--network", "certbotless-edge",
            "--endpoint-mode", "dnsrr", "--replicas", "1",
            "--label", f"certbotless.domains={domains}", "--label", "certbotless.port=8000",
            *(arg for label in labels for arg in ("--label", label)),
            "certbotless-demo-app:local",
        )  # fmt: skip

    def wait_gone(self, timeout: float = 180) -> None:
        """Until no container and no network of the stack is left on any node (the next deploy
        needs ports 80/443 and the front network's subnet)."""
        deadline = time.monotonic() + timeout
        label = f"label=com.docker.stack.namespace={STACK}"
        while any(
            self.cluster.docker(node, kind, "ls", "-q", "--filter", label, check=False).strip()
            for node in self.cluster.running()
            for kind in ("container", "network")
        ):
            assert time.monotonic() < deadline, f"{STACK} is still running"
            time.sleep(1)


def _front_answers(address: str) -> bool:
    try:
        with socket.create_connection((address, 80), 2) as conn:
            conn.sendall(b"GET /healthz HTTP/1.0\r\nHost: front\r\n\r\n")
            return conn.recv(12).startswith(b"HTTP/1.")
    except OSError:
        return False


def pebble_counts(log: Path) -> tuple[int, int]:
    """(orders placed, certificates issued) as the test's Pebble logged them so far."""
    text = log.read_text(errors="replace") if log.exists() else ""
    return len(re.findall(r"POST /order-plz ", text)), text.count("Issued certificate serial")
