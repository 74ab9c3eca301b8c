"""Which serial each edge task serves for each certificate, asked after every pass (in a thread
of its own, so passes never wait): the status page shows a task left behind, and the metrics
export it for an alert."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from certbotless.model import PassReport, StoredCert
from certbotless.swarm.api import Json

log = logging.getLogger(__name__)

PROBES_AT_ONCE = 16
SERIAL = re.compile(r"[0-9a-f]+")  # what a probe that got a certificate reports


@dataclass(frozen=True)
class EdgeTask:
    address: str  # on the network the sidecar shares with the edge
    node: str  # Swarm's node ID
    state: str  # running, starting…


@dataclass(frozen=True)
class EdgeServing:
    """What the edge's tasks served when last asked."""

    checked: datetime
    tasks: tuple[EdgeTask, ...] = ()
    # certificate name → task address → the serial it serves (or what went wrong there)
    serials: dict[str, dict[str, str]] = field(default_factory=dict)
    expected: dict[str, str] = field(default_factory=dict)  # name → serial in use

    def stale_per_task(self) -> dict[tuple[str, str], int]:
        """(task address, node) → how many certificates it serves an old version of (a task
        that did not answer the probe serves nothing known, and is not counted: the probe may
        have met it on its way out)."""
        counts = {(task.address, task.node): 0 for task in self.tasks}
        nodes = {task.address: task.node for task in self.tasks}
        for name in self.serials:
            for address, served in self.stale(name).items():
                if address in nodes and SERIAL.fullmatch(served):
                    counts[(address, nodes[address])] += 1
        return counts

    def stale(self, name: str) -> dict[str, str]:
        """The tasks that serve another serial than the one in use for `name`."""
        want = self.expected.get(name)
        return {a: s for a, s in self.serials.get(name, {}).items() if s != want}


def edge_tasks(tasks: Sequence[Json]) -> list[EdgeTask]:
    """The running (or starting) tasks of the edge, by address."""
    found = []
    for task in tasks:
        if task.get("DesiredState") != "running":
            continue
        state = str(task.get("Status", {}).get("State", "?"))
        for attachment in task.get("NetworksAttachments") or []:
            for address in attachment.get("Addresses") or []:
                found.append(EdgeTask(address.split("/")[0], str(task.get("NodeID", "?")), state))
    return found


class SerialSource(Protocol):
    def serials(self, domain: str) -> dict[str, str]:
        """Edge task address → the serial it serves for `domain` (`rollout.ServedCertificates`)."""


def probe_edge(
    served: SerialSource, tasks: Sequence[EdgeTask], certificates: Sequence[StoredCert]
) -> EdgeServing:
    """Asks every task, over TLS with SNI, for every certificate in use (its first name)."""
    with ThreadPoolExecutor(PROBES_AT_ONCE) as pool:
        answers = pool.map(lambda cert: served.serials(cert.domains[0]), certificates)
        serials = {cert.name: answer for cert, answer in zip(certificates, answers, strict=True)}
    return EdgeServing(datetime.now(UTC), tuple(tasks), serials,
                       {cert.name: cert.serial for cert in certificates})  # fmt: skip


class EdgeWatch:
    """Probes the edge after each pass, one probe at a time; `latest` is the last answer."""

    def __init__(
        self,
        edge: Callable[[], str | None],
        tasks: Callable[[str], list[Json]],
        served: Callable[[str], SerialSource],
    ) -> None:
        self.edge = edge
        self.tasks = tasks
        self.served = served
        self.latest: EdgeServing | None = None
        self._busy = threading.Lock()

    def after_pass(self, report: PassReport) -> None:
        if not self._busy.acquire(blocking=False):
            return  # a probe is under way; the next pass asks again
        threading.Thread(target=self._probe, args=(report.certificates,), name="edge-watch",
                         daemon=True).start()  # fmt: skip

    def _probe(self, certificates: Sequence[StoredCert]) -> None:
        try:
            edge = self.edge()
            if edge is None:
                return
            tasks = edge_tasks(self.tasks(edge))
            self.latest = probe_edge(self.served(edge), tasks, certificates)
        except Exception:
            log.exception("asking the edge's tasks what they serve failed")
        finally:
            self._busy.release()
