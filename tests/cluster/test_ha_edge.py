"""The edge of stacks/edge.yml on a real multi-node swarm (3 managers, 1 worker): rolls and
failures while clients keep asking through the front, who must see no failed request.

Every scenario runs two bounded client loops against one front (a manager's address, port 443):
a new TLS connection per request, and a keep-alive client that retries a request once when the
server closed the reused connection between requests (as browsers do; such closes are counted
apart). The tests share one edge stack and run in file order: the node kill comes last but one,
the join last.
"""

import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from rig.cluster import Cluster
from rig.stacks import (
    EDGE_NETWORK,
    MANAGED_LABEL,
    HttpsAnswer,
    deploy_stack,
    https_get,
    wait_for_https,
)
from rig.state import run
from rig.traffic import KeepAliveLoop, NewConnectionLoop, Request, Target, TrafficLoop

STACK = "certbotless"
NGINX = f"{STACK}_nginx"
SIDECAR = f"{STACK}_certbotless"
APPS = {"cbl-ha-one": "one.ha.test", "cbl-ha-two": "two.ha.test"}
NEW_APP, NEW_HOST = "cbl-ha-new", "new.ha.test"

# Asks each nginx task, over the overlay network, which serial it serves for each domain, with
# the PROXY protocol header the front sends (the sidecar's own served-certificate check).
SERVED_PROBE = """
import json, sys
from certbotless.edge.rollout import ServedCertificates
check = ServedCertificates(sys.argv[1], proxy_protocol=True)
print(json.dumps({domain: check.serials(domain) for domain in sys.argv[2:]}))
"""


@dataclass
class ClusterEdge:
    cluster: Cluster
    pebble_root: str

    @property
    def managers(self) -> list[str]:
        return [n.hostname for n in self.cluster.swarm_nodes() if n.role == "manager"]

    def docker(self, *args: str, check: bool = True) -> str:
        return self.cluster.docker(self.cluster.manager(), *args, check=check)

    def container(self, service: str, timeout: float = 180) -> tuple[str, str]:
        """(node, container) of the running task of `service`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # A killed node's task counts as running until the swarm sees the node down.
            live = set(self.cluster.running())
            for node in (n for n in self.cluster.task_nodes(service) if n in live):
                found = self.cluster.docker(
                    node, "ps", "-q", "--filter", f"label=com.docker.swarm.service.name={service}",
                    check=False,
                ).split()  # fmt: skip
                if found:
                    return node, found[0]
            time.sleep(1)
        raise AssertionError(f"no running task of {service} after {timeout:.0f} s")

    def logs(self, node: str, container: str) -> str:
        """stdout and stderr (the sidecar logs to stderr, nginx's access log to stdout)."""
        result = run(["docker", "logs", container], check=False, env=self.cluster.env(node))
        return result.stdout + result.stderr

    def sidecar(self, *command: str) -> str:
        node, container = self.container(SIDECAR)
        return self.cluster.docker(node, "exec", container, "certbotless", *command)

    def served_by_every_task(self, *domains: str) -> dict[str, dict[str, str]]:
        """Domain → {nginx task address → serial it serves}."""
        out = self.docker(
            "run", "--rm", "--network", EDGE_NETWORK, "--entrypoint", "python3",
            "certbotless:local", "-c", SERVED_PROBE, f"tasks.{NGINX}", *domains,
        )  # fmt: skip
        return dict(json.loads(out))

    def https(self, host: str, node: str) -> HttpsAnswer:
        return https_get(host, self.pebble_root, address=self.cluster.address(node))

    def wait_https(self, host: str, nodes: list[str], timeout: float = 180) -> list[HttpsAnswer]:
        return [
            wait_for_https(host, self.pebble_root, timeout, address=self.cluster.address(node))
            for node in nodes
        ]

    def wait_front(self, nodes: list[str], timeout: float = 180) -> None:
        """Until each node's front answers HTTP on port 80 (through it, nginx), as the CA will
        reach it: an order placed before would fail validation and wait out its back-off."""
        deadline = time.monotonic() + timeout
        for node in nodes:
            while True:
                try:
                    with socket.create_connection((self.cluster.address(node), 80), 2) as conn:
                        conn.sendall(b"GET /healthz HTTP/1.0\r\nHost: front\r\n\r\n")
                        if conn.recv(12).startswith(b"HTTP/1."):
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the front on {node} did not answer in {timeout:.0f} s")
                time.sleep(1)

    def labelled_app(self, name: str, host: str) -> None:
        self.cluster.resolve_to_nodes(host, self.managers)
        self.docker(
            "service", "create", "--detach", "--name", name, "--network", EDGE_NETWORK,
            "--endpoint-mode", "dnsrr", "--replicas", "2",
            "--label", f"certbotless.domains={host}", "--label", "certbotless.port=8000",
            "certbotless-demo-app:local",
        )  # fmt: skip


@pytest.fixture(scope="module")
def edge(cluster: Cluster, rig_env: dict[str, str], pebble_root: str) -> Iterator[ClusterEdge]:
    edge = ClusterEdge(cluster, pebble_root)
    # A cluster kept from an earlier run: its certificates come from an earlier Pebble.
    edge.docker("service", "rm", *APPS, NEW_APP, check=False)
    edge.docker("stack", "rm", STACK, check=False)
    wait_until_gone(edge)
    for kind in ("config", "secret"):
        made = edge.docker(kind, "ls", "-q", "--filter", f"label={MANAGED_LABEL}").split()
        if made:
            edge.docker(kind, "rm", *made)
    cluster.ensure_edge_network()
    deploy_stack(
        STACK, ["edge.yml", "test-pebble.yml"], {**rig_env, **cluster.env(cluster.manager())}
    )
    edge.wait_front(edge.managers)
    for name, host in APPS.items():
        edge.labelled_app(name, host)
    try:
        for host in APPS.values():
            edge.wait_https(host, edge.managers, timeout=300)
    except TimeoutError:
        print(edge.logs(*edge.container(SIDECAR)))
        raise
    yield edge
    edge.docker("service", "rm", *APPS, NEW_APP, check=False)
    edge.docker("stack", "rm", STACK, check=False)


def wait_until_gone(edge: ClusterEdge, timeout: float = 120) -> None:
    """Until no container of the edge stack or the apps runs on any node."""
    deadline = time.monotonic() + timeout
    while any(
        edge.cluster.docker(
            node, "ps", "-q", "--filter", f"label={label}={value}", check=False
        ).strip()
        for node in edge.cluster.running()
        for label, value in [("com.docker.stack.namespace", STACK)]
        + [("com.docker.swarm.service.name", name) for name in (*APPS, NEW_APP)]
    ):
        assert time.monotonic() < deadline, "the earlier run's edge is still running"
        time.sleep(1)


@contextmanager
def clients(
    edge: ClusterEdge, node: str, host: str, node_killed: list[tuple[float, float]] | None = None
) -> Iterator[tuple[TrafficLoop, TrafficLoop]]:
    """Both client loops through the front on `node`; asserts that no request failed. Except,
    when `node_killed` holds the span of `docker kill` of a node, a request in flight then: one
    that the front had passed to that node's nginx dies with it, and a TCP front cannot send it
    again (its bytes are gone)."""
    target = Target(edge.cluster.address(node), 443, host, ca_file=Path(edge.pebble_root))
    with (
        NewConnectionLoop(target, max_requests=50000, max_seconds=600, interval=0.02) as fresh,
        KeepAliveLoop(target, max_requests=50000, max_seconds=600, interval=0.02) as kept,
    ):
        yield fresh, kept
        time.sleep(1)
    for loop in (fresh, kept):
        assert loop.requests > 20, "the client loop hardly ran"
        failed = [r for r in loop.records if not r.ok and not in_flight(r, node_killed or [])]
        assert not failed, (type(loop).__name__, failed[:5])


def in_flight(request: Request, spans: list[tuple[float, float]]) -> bool:
    return any(request.started <= end and request.ended >= start for start, end in spans)


def report(
    figure: Callable[[str], None], what: str, loops: tuple[TrafficLoop, TrafficLoop]
) -> None:
    fresh, kept = loops
    figure(
        f"cluster, {what}: failed {fresh.failed}/{fresh.requests} new-connection and "
        f"{kept.failed}/{kept.requests} keep-alive requests ({kept.closes_absorbed} closes "
        f"absorbed by one retry); longest gap {fresh.outage:.2f} s"
    )


def serials_everywhere(edge: ClusterEdge, host: str, nodes: list[str] | None = None) -> set[str]:
    """The serials served for `host` by every front (on `nodes`, default every manager) and
    every nginx task, once they agree (for up to 15 s: after a roll, a task on its way out still
    answers through the fronts for a moment, with the previous, still valid certificate)."""
    deadline = time.monotonic() + 15
    while True:
        through_fronts = {edge.https(host, node).serial for node in nodes or edge.managers}
        seen = through_fronts | set(edge.served_by_every_task(host)[host].values())
        if len(seen) == 1 or time.monotonic() > deadline:
            return seen
        time.sleep(0.5)


def test_every_node_runs_nginx_and_every_front_and_task_serves_every_certificate(
    edge: ClusterEdge,
) -> None:
    assert edge.cluster.task_nodes(NGINX) == sorted(edge.cluster.names)
    assert edge.cluster.task_nodes(f"{STACK}_front") == sorted(edge.managers)
    served = edge.served_by_every_task(*APPS.values())
    for host in APPS.values():
        assert len(served[host]) == len(edge.cluster.names), served
        assert len(serials_everywhere(edge, host)) == 1, served


def test_a_renewal_rotation_drops_no_request(
    edge: ClusterEdge, figure: Callable[[str], None]
) -> None:
    host = APPS["cbl-ha-one"]
    (before,) = serials_everywhere(edge, host)
    with clients(edge, edge.managers[0], host) as loops:
        renewed = edge.sidecar("renew", "--force")
        assert "nginx rolled: yes" in renewed, renewed
    (after,) = serials_everywhere(edge, host)
    assert after != before
    report(figure, "renewal rotation of 2 certificates, nginx on 4 nodes", loops)


def test_a_new_domains_roll_drops_no_request_and_every_task_answered_its_challenge(
    edge: ClusterEdge, figure: Callable[[str], None]
) -> None:
    host = APPS["cbl-ha-two"]
    with clients(edge, edge.managers[1], host) as loops:
        edge.labelled_app(NEW_APP, NEW_HOST)
        edge.wait_https(NEW_HOST, edge.managers)
    assert len(serials_everywhere(edge, NEW_HOST)) == 1
    report(figure, "a new domain's roll", loops)
    # The HTTP-01 self-check fetched the token from every nginx task, on every node, before the
    # sidecar asked the CA to validate.
    sidecar_log = edge.logs(*edge.container(SIDECAR))
    checked = sidecar_log.index(f"{NEW_HOST}: checking the edge serves the challenge")
    assert checked < sidecar_log.index(f"{NEW_HOST}: asking the CA to validate", checked)
    challenge = re.compile(rf'"{re.escape(NEW_HOST)}" "GET /\.well-known/acme-challenge/')
    for node in edge.cluster.task_nodes(NGINX):
        # The tasks that answered were replaced by the roll that followed: all containers.
        containers = edge.cluster.docker(
            node, "ps", "-a", "-q", "--filter", f"label=com.docker.swarm.service.name={NGINX}"
        ).split()
        logs = "".join(edge.logs(node, container) for container in containers)
        assert challenge.search(logs), f"no nginx task on {node} served {NEW_HOST}'s challenge"


def test_an_edge_image_swarm_rolls_back_drops_no_request(
    edge: ClusterEdge, figure: Callable[[str], None]
) -> None:
    host = APPS["cbl-ha-one"]
    (serving,) = serials_everywhere(edge, host)
    image = edge.docker("service", "inspect", NGINX, "--format",
                        "{{.Spec.TaskTemplate.ContainerSpec.Image}}").strip()  # fmt: skip
    with clients(edge, edge.managers[2], host) as loops:
        # HAProxy's image as nginx: every new task exits at once, so Swarm rolls back.
        edge.docker("service", "update", "--detach", "--image", "certbotless-front:local", NGINX)
        deadline = time.monotonic() + 180
        while (state := update_state(edge)) != "rollback_completed":
            assert time.monotonic() < deadline, f"no rollback: update {state}"
            time.sleep(1)
    assert image == edge.docker("service", "inspect", NGINX, "--format",
                                "{{.Spec.TaskTemplate.ContainerSpec.Image}}").strip()  # fmt: skip
    assert serials_everywhere(edge, host) == {serving}
    report(figure, "a broken edge image rolled back by Swarm", loops)


def update_state(edge: ClusterEdge) -> str:
    return edge.docker("service", "inspect", NGINX, "--format",
                       "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}").strip()  # fmt: skip


def test_killing_the_sidecars_node_loses_nothing_and_the_sidecar_resumes_elsewhere(
    edge: ClusterEdge, figure: Callable[[str], None]
) -> None:
    host = APPS["cbl-ha-two"]
    doomed, container = edge.container(SIDECAR)
    account = re.findall(r"ACME account (https://\S+)", edge.logs(doomed, container))[-1]
    stored = stored_chains(edge)
    client_node = next(n for n in edge.managers if n != doomed)
    try:
        node, log, resumed, loops = kill_and_resume(edge, doomed, client_node)
        lost = sum(not r.ok for loop in loops for r in loop.records)
        report(figure, f"the sidecar's node ({doomed}) killed; {lost} lost in flight on it", loops)
        figure(f"cluster: sidecar's node killed → its first pass done on {node}: {resumed:.1f} s")
        assert f"using the existing ACME account {account}" in log, log[-3000:]
        assert "ordering" not in log, "nothing may be issued again after a move"
        assert stored_chains(edge) == stored
        # A renewal due now happens on the new node, and every live task serves it. The domains'
        # DNS leaves out the dead node first, as the operator's DNS or load balancer would: the
        # CA dials whatever address DNS gives it.
        live = [n for n in edge.managers if n != doomed]
        for name in (*APPS.values(), NEW_HOST):
            edge.cluster.resolve_to_nodes(name, live)
        (before,) = serials_everywhere(edge, host, live)
        renewed = edge.sidecar("renew", "--force")
        assert "nginx rolled: yes" in renewed, renewed
        after = serials_everywhere(edge, host, live)
        assert len(after) == 1 and before not in after
    finally:
        edge.cluster.start(doomed)
        edge.cluster.wait_ready([doomed], timeout=120)
        # A node Ready is not yet a front running on it: the next test asks every manager's.
        for name in (*APPS.values(), NEW_HOST):
            edge.cluster.resolve_to_nodes(name, edge.managers)
        edge.wait_https(host, [doomed], timeout=180)


def kill_and_resume(
    edge: ClusterEdge, doomed: str, client_node: str
) -> tuple[str, str, float, tuple[TrafficLoop, TrafficLoop]]:
    """Kill `doomed` while clients ask the front on `client_node`; wait until the sidecar has
    done its first pass elsewhere. (node, its log, seconds to that pass, the client loops)."""
    killed_during: list[tuple[float, float]] = []
    with clients(edge, client_node, APPS["cbl-ha-two"], killed_during) as loops:
        killed = time.monotonic()
        edge.cluster.kill(doomed)
        killed_during.append((killed, time.monotonic()))
        # Raft keeps quorum: the other managers elect a leader and answer.
        assert edge.cluster.manager(timeout=60) != doomed
        node, container = edge.container(SIDECAR, timeout=240)
        assert node != doomed
        deadline = time.monotonic() + 120
        while "pass done" not in (log := edge.logs(node, container)):
            assert time.monotonic() < deadline, log[-3000:]
            time.sleep(1)
        resumed = time.monotonic() - killed
        # Every other front still serves every certificate.
        for other in (n for n in edge.managers if n != doomed):
            for name in (*APPS.values(), NEW_HOST):
                assert edge.https(name, other).status == 200
    return node, log, resumed, loops


def stored_chains(edge: ClusterEdge) -> set[str]:
    return set(
        edge.docker("config", "ls", "-q", "--filter", "label=certbotless.kind=chain").split()
    )


def test_a_node_that_joins_serves_every_certificate_with_nothing_done_by_the_sidecar(
    edge: ClusterEdge, figure: Callable[[str], None]
) -> None:
    sidecar_node, container = edge.container(SIDECAR)
    rolls_before = edge.logs(sidecar_node, container).count(f"rolling {NGINX}")
    started = time.monotonic()
    joined = edge.cluster.add_node("worker")
    try:
        deadline = time.monotonic() + 120
        while joined not in edge.cluster.task_nodes(NGINX):
            assert time.monotonic() < deadline, "no nginx task on the new node"
            time.sleep(1)
        hosts = [*APPS.values(), NEW_HOST]
        expected = {host: serials_everywhere(edge, host) for host in hosts}
        served = edge.served_by_every_task(*hosts)
        for host in hosts:
            assert len(served[host]) == len(edge.cluster.task_nodes(NGINX)), served
            assert {*served[host].values()} == expected[host], served
        figure(f"cluster: a node joined → its nginx task serves every certificate: "
               f"{time.monotonic() - started:.1f} s")  # fmt: skip
        assert edge.logs(sidecar_node, container).count(f"rolling {NGINX}") == rolls_before
    finally:
        # A cluster this run did not make stays up after it, as it was: four nodes.
        edge.cluster.remove_node(joined)
