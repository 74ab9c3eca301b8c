"""The cluster rig itself: nodes Ready, managers reachable, an overlay across nodes, host-mode
ports answering from the host, the rig's Pebble reachable from a node's container, and
challtestsrv answering test domains with node addresses."""

import json
import socket
import struct
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig.cluster import Cluster
from rig.pebble import DNS_ADDRESS
from rig.stacks import EDGE_NETWORK
from rig.state import wait_until

pytestmark = pytest.mark.rig

SERVICE = "cbl-cluster-smoke"
SMOKE_PORT = 18080  # host-mode, as the edge publishes 80/443; not 80, which the edge may hold
TOOLS = "certbotless-test-base"  # curl and python3, loaded into every node


def test_four_nodes_ready_three_managers_reachable(cluster: Cluster) -> None:
    nodes = cluster.swarm_nodes()
    assert sorted(n.hostname for n in nodes if n.ready) == cluster.names
    assert len(cluster.names) == 4
    managers = [n for n in nodes if n.role == "manager"]
    assert len(managers) == 3
    assert sum(n.leader for n in managers) == 1
    assert all(n.reachability == "reachable" for n in managers)
    assert {n.address for n in nodes} == {cluster.address(name) for name in cluster.names}


@pytest.fixture(scope="module")
def global_service(cluster: Cluster) -> Iterator[str]:
    """A task on every node, on the edge overlay (dnsrr, as the edge reaches apps), serving its
    node's hostname, also on a host-mode port."""
    manager = cluster.manager()
    script = "mkdir -p /srv && hostname > /srv/index.html && exec python3 -m http.server -d /srv 80"
    cluster.docker(manager, "service", "rm", SERVICE, check=False)
    cluster.docker(
        manager, "service", "create", "--detach", "--name", SERVICE, "--mode", "global",
        "--network", EDGE_NETWORK, "--endpoint-mode", "dnsrr",
        "--hostname", "{{.Node.Hostname}}",
        "--publish", f"mode=host,target=80,published={SMOKE_PORT}",
        TOOLS, "sh", "-c", script,
    )  # fmt: skip
    try:
        wait_until(lambda: cluster.task_nodes(SERVICE) == cluster.names, 60, f"{SERVICE} tasks")
        yield SERVICE
    finally:
        cluster.docker(cluster.manager(), "service", "rm", SERVICE, check=False)


def test_overlay_spans_the_nodes(cluster: Cluster, global_service: str) -> None:
    # From a container on the worker, every task by its overlay address: VXLAN between nodes.
    worker = cluster.names[-1]
    script = (
        f"for ip in $(getent ahostsv4 tasks.{global_service} | awk '{{print $1}}' | sort -u); "
        "do curl -sS --max-time 3 http://$ip/; done"
    )
    seen: list[str] = []

    def all_answer() -> bool:
        output = cluster.docker(
            worker, "run", "--rm", "--network", EDGE_NETWORK, TOOLS, "sh", "-c", script,
            check=False,
        )  # fmt: skip
        seen[:] = sorted(output.split())
        return seen == cluster.names

    wait_until(all_answer, 60, "every task over the overlay")
    assert seen == cluster.names


def test_host_mode_ports_answer_from_the_host(cluster: Cluster, global_service: str) -> None:
    # The path Pebble's validator takes: host → node address → a task's host-mode port.
    # Polled: a task is Running as soon as its process starts, before it listens.
    for name in cluster.names:
        url = f"http://{cluster.address(name)}:{SMOKE_PORT}/"
        assert first_answer(url) == name


def first_answer(url: str, timeout: float = 30) -> str:
    answers: list[str] = []

    def answered() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                answers.append(response.read().decode().strip())
        except OSError:
            return False
        return True

    wait_until(answered, timeout, url)
    return answers[0]


def test_a_node_container_reaches_the_rigs_pebble(
    cluster: Cluster, rig_env: dict[str, str]
) -> None:
    # On an inner overlay (egress: inner docker_gwbridge → node → host), verifying Pebble's
    # listener certificate, which names the host's docker_gwbridge address.
    worker = cluster.names[-1]
    ca = Path(rig_env["CBL_RIG_CA_BUNDLE"]).read_text()
    directory = cluster.docker(
        worker, "run", "--rm", "--network", EDGE_NETWORK, "-e", f"CA={ca}", TOOLS,
        "sh", "-c", 'printf "%s" "$CA" > /tmp/ca.pem && '
        f'curl -sS --max-time 10 --cacert /tmp/ca.pem {rig_env["CBL_RIG_ACME_DIRECTORY"]}',
    )  # fmt: skip
    assert "newOrder" in json.loads(directory)


def test_test_domains_resolve_to_the_nodes(cluster: Cluster) -> None:
    domain = "cluster-smoke.example.test"
    try:
        addresses = cluster.resolve_to_nodes(domain, cluster.names[1:3])
        assert sorted(dns_a(domain)) == sorted(addresses)
        cluster.resolve_to_nodes(domain)  # replaces, not appends
        assert sorted(dns_a(domain)) == sorted(cluster.address(n) for n in cluster.names)
    finally:
        cluster.clear_resolution(domain)
    assert dns_a(domain) == ["127.0.0.1"]  # challtestsrv's default again


def dns_a(name: str) -> list[str]:
    """A records for `name` from challtestsrv's DNS, where Pebble asks."""
    host, port = DNS_ADDRESS.rsplit(":", 1)
    labels = b"".join(bytes([len(part)]) + part.encode() for part in name.split("."))
    query = (
        struct.pack(">6H", 0x1CB1, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack(">2H", 1, 1)
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(query, (host, int(port)))
        answer = sock.recv(4096)
    count = struct.unpack(">H", answer[6:8])[0]
    position, found = len(query), []  # the question comes back as sent
    for _ in range(count):
        if answer[position] & 0xC0 == 0xC0:  # a compressed name: a 2-byte pointer
            position += 2
        else:
            while answer[position]:
                position += answer[position] + 1
            position += 1
        kind, _class, _ttl, length = struct.unpack(">HHIH", answer[position : position + 10])
        position += 10
        if kind == 1:
            found.append(socket.inet_ntoa(answer[position : position + length]))
        position += length
    return found
