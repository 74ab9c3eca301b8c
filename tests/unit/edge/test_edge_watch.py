"""What the edge's tasks serve: the tasks read from Swarm's answer, the probe, the stale ones."""

from __future__ import annotations

import threading
import time

from certbotless.edge.watch import EdgeTask, EdgeWatch, edge_tasks, probe_edge
from certbotless.model import PassReport
from certbotless.swarm.api import Json
from tests.support.factories import stored_cert

TASKS: list[Json] = [
    {"NodeID": "n1", "DesiredState": "running", "Status": {"State": "running"},
     "NetworksAttachments": [{"Addresses": ["10.0.9.3/24"]}]},
    {"NodeID": "n2", "DesiredState": "running", "Status": {"State": "starting"},
     "NetworksAttachments": [{"Addresses": ["10.0.9.4/24"]}]},
    {"NodeID": "n1", "DesiredState": "shutdown", "Status": {"State": "shutdown"},
     "NetworksAttachments": [{"Addresses": ["10.0.9.2/24"]}]},
]  # fmt: skip


class Served:
    """The second task still serves the previous serial of shop.example.test."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.lock = threading.Lock()

    def serials(self, domain: str) -> dict[str, str]:
        with self.lock:
            self.asked.append(domain)
        old = domain == "shop.example.test"
        return {"10.0.9.3": "ab1" if old else "ab2", "10.0.9.4": "ab0" if old else "ab2"}


def test_only_tasks_meant_to_run_are_asked_by_address() -> None:
    assert edge_tasks(TASKS) == [EdgeTask("10.0.9.3", "n1", "running"),
                                 EdgeTask("10.0.9.4", "n2", "starting")]  # fmt: skip


def test_a_task_serving_another_serial_than_the_one_in_use_is_stale() -> None:
    shop = stored_cert("shop", ("shop.example.test", "www.shop.example.test"), version="1")
    api = stored_cert("api", ("api.example.test",), version="2")
    served = Served()
    found = probe_edge(served, edge_tasks(TASKS), [shop, api])
    assert sorted(served.asked) == ["api.example.test", "shop.example.test"]  # first names
    assert found.stale("shop") == {"10.0.9.4": "ab0"}
    assert found.stale("api") == {}


def test_a_task_that_did_not_answer_the_probe_is_not_counted_stale() -> None:
    """A probe that met a task on its way out says so; the stale-serial alert must not fire."""
    shop = stored_cert("shop", ("shop.example.test",), version="1")

    class OneGone:
        def serials(self, domain: str) -> dict[str, str]:
            return {"10.0.9.3": shop.serial, "10.0.9.4": "no TLS answer (connection refused)"}

    found = probe_edge(OneGone(), edge_tasks(TASKS), [shop])
    assert found.stale_per_task() == {("10.0.9.3", "n1"): 0, ("10.0.9.4", "n2"): 0}
    assert "10.0.9.4" in found.stale("shop")  # the page still shows what went wrong there


def test_the_watch_probes_after_a_pass_without_holding_it_up() -> None:
    shop = stored_cert("shop", ("shop.example.test",), version="1")
    watch = EdgeWatch(lambda: "edge_nginx", lambda edge: TASKS, lambda edge: Served())
    watch.after_pass(PassReport(certificates=(shop,)))
    deadline = time.monotonic() + 5
    while watch.latest is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert watch.latest is not None and watch.latest.stale("shop") == {"10.0.9.4": "ab0"}
    nowhere = EdgeWatch(lambda: None, lambda edge: TASKS, lambda edge: Served())
    nowhere.after_pass(PassReport(certificates=(shop,)))
    time.sleep(0.1)
    assert nowhere.latest is None
