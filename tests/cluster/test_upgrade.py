"""An upgrade from the previous release to the working tree, and back, on the real multi-node
swarm (issue 26), while clients keep asking through the fronts.

The previous release (tests/cluster/previous_release.py: the last tag, else the newest "Release
x.y.z" commit) is deployed from its own checkout and images, with three certificates: one by
HTTP-01, a wildcard by DNS-01 (the test's own BIND, which the test's own Pebble resolves
through), and one the CA refuses, failing and backing off. Then the upgrade, as docs/upgrades.md
says: the new images on every node, then `docker stack deploy` of the new stack file (with what
CHANGELOG.md's "Upgrading" asks of this rig: nothing more, see there). It must drop no request,
order nothing, carry every status record over (failures, next attempt) and move the front and
the Docker API proxy to the new configuration. "Drop no request" holds for the fronts' own
roll (each refusal found another front), for keep-alive clients and for new connections: the
deploy puts back the stack file's nginx spec, whose bootstrap configuration serves no TLS; the
front passes connections only to tasks that run a rendered configuration (haproxy/haproxy.cfg),
and the stack file's roll leaves such tasks (one node every 20 s) until a sidecar rolls its own
in again (stacks/edge.yml). Then the downgrade: the previous release's
stack file and images deployed again; its certificates still served, nothing deleted (its
traffic is measured, not judged: what an older release does is not this tree's to fix; a
release before 0.2.0 passed connections to its bootstrap tasks).

The clients are the cluster suite's loops, given every manager's front as browsers are given a
name's A records: a front that refuses a connection (its task restarting) is left for the next
one, counted as a failover, not a failure.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from rig.cluster import Cluster
from rig.pebble import PebbleServer
from rig.stacks import MANAGED_LABEL, STACKS, https_get, wait_for_https
from rig.state import STATE_DIR
from rig.traffic import KeepAliveLoop, NewConnectionLoop, Target, TrafficLoop
from tests.cluster.previous_release import PreviousRelease, previous_release
from tests.cluster.upgrade_edge import STACK, Stored, UpgradeEdge, pebble_counts
from tests.support.dns_servers import TSIG_KEY_NAME, BindServer, Zone, free_port

pytestmark = pytest.mark.rig

HTTP01_HOST = "web.upgrade.test"
WILDCARD, WILDCARD_HOST = "*.wild.test", "a.wild.test"
REFUSED_HOST = "refused.upgrade.test"  # the test's Pebble refuses to certify it
APPS = {
    "cbl-up-web": (HTTP01_HOST, ()),
    "cbl-up-wild": (WILDCARD, ("certbotless.challenge=dns-01",)),
    "cbl-up-refused": (REFUSED_HOST, ()),
}
# The working tree's images, as the cluster suite loads them.
NEW_IMAGES = {
    "front": "certbotless-front:local",
    "docker-api": "certbotless-front:local",
    "nginx": "certbotless-nginx:local",
    "certbotless": "certbotless:local",
}
HA_STACK = "certbotless"  # tests/cluster/test_ha_edge.py's, on the same ports


@pytest.fixture(scope="module")
def release(cluster: Cluster) -> Iterator[PreviousRelease]:
    with previous_release(cluster) as release:
        yield release


@pytest.fixture(scope="module")
def bind(
    cluster: Cluster, rig_env: Mapping[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BindServer]:
    """Authoritative for both zones; every name in them is every manager (the fronts)."""
    gateway = rig_env["CBL_RIG_GATEWAY"]
    managers = [cluster.address(n.hostname) for n in cluster.swarm_nodes() if n.role == "manager"]
    records = tuple(f"* IN A {address}" for address in managers)
    zones = [
        Zone(zone, ((f"ns1.{zone}", gateway),), records) for zone in ("upgrade.test", "wild.test")
    ]
    server = BindServer(
        tmp_path_factory.mktemp("bind"), free_port((gateway,)), zones, listen=gateway
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pebble(rig_env: Mapping[str, str], bind: BindServer) -> Iterator[PebbleServer]:
    gateway = rig_env["CBL_RIG_GATEWAY"]
    server = PebbleServer(
        f"pebble-upgrade-{bind.port}",
        host=gateway,
        ca_bundle=Path(rig_env["CBL_RIG_CA_BUNDLE"]),
        port=free_port((gateway,)),
        management_port=free_port((gateway,)),
        dns_server=bind.address,
        env={"PEBBLE_AUTHZREUSE": "0"},
        config={"domainBlocklist": [REFUSED_HOST]},
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def edge(
    cluster: Cluster,
    rig_env: dict[str, str],
    bind: BindServer,
    pebble: PebbleServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[UpgradeEdge]:
    secrets = tmp_path_factory.mktemp("dns01-secrets")
    for option, value in {
        "server": bind.address,
        "key-name": TSIG_KEY_NAME,
        "key-secret": bind.key_secret,
    }.items():
        (secrets / f"certbotless-dns-rfc2136-{option}").write_text(value)
    env = {
        **rig_env,
        "CBL_RIG_ACME_DIRECTORY": pebble.directory_url,
        "CBL_DNS01_RESOLVER": bind.address,
        "CBL_DNS01_PORT": str(bind.port),
        "CBL_DNS01_SECRETS": str(secrets),
        # CHANGELOG 0.2.0, Upgrading: DNS-01 only for the services and zones allowed.
        "CERTBOTLESS_DNS01_ALLOWED": "cbl-up-*=wild.test",
    }
    edge = UpgradeEdge(cluster, env)
    # The HA test's edge (same ports, same front subnet) and an earlier run of this one.
    edge.docker("service", "rm", *APPS, check=False)
    edge.docker("stack", "rm", STACK, HA_STACK, check=False)
    edge.wait_gone()
    for kind in ("config", "secret"):
        made = edge.docker(kind, "ls", "-q", "--filter", f"label={MANAGED_LABEL}").split()
        if made:  # certificates of an earlier Pebble
            edge.docker(kind, "rm", *made)
    cluster.ensure_edge_network()
    before = edge.stored_objects()
    yield edge
    # What this module made, by exact name: its apps, its stack, and every config and secret
    # that was not there before it (certificates, status, keys, stack configs).
    edge.docker("service", "rm", *APPS, check=False)
    edge.docker("stack", "rm", STACK, check=False)
    edge.wait_gone()
    for kind, name in sorted(o.split(":", 1) for o in edge.stored_objects() - before):
        edge.docker(kind, "rm", name, check=False)


def stack_files(release: PreviousRelease | None) -> list[Path]:
    """The edge's stack files as the rig deploys them, from `release`'s checkout (None: the
    working tree's); the previous release's with its images (tests/cluster/previous-images.yml)."""
    if release is None:
        return [STACKS / name for name in ("edge.yml", "test-pebble.yml", "test-dns01.yml")]
    files = [release.stack_file(n) for n in ("edge.yml", "test-pebble.yml", "test-dns01.yml")]
    return [*files, Path(__file__).with_name("previous-images.yml")]


def previous_images(release: PreviousRelease) -> dict[str, str]:
    return {
        "front": release.image("certbotless-front"),
        "docker-api": release.image("certbotless-front"),
        "nginx": release.image("certbotless-nginx"),
        "certbotless": release.image("certbotless"),
    }


@contextmanager
def clients(edge: UpgradeEdge, root: Path) -> Iterator[list[TrafficLoop]]:
    """Three loops through every manager's front (first the first manager's): new connections
    to the HTTP-01 host and to a wildcard name, keep-alive to the HTTP-01 host."""
    first, *others = (edge.cluster.address(n) for n in edge.managers)

    def target(host: str) -> Target:
        return Target(first, 443, host, ca_file=root, alternates=tuple(others))

    def loop(kind: type[TrafficLoop], host: str) -> TrafficLoop:
        return kind(target(host), max_requests=50000, max_seconds=900, interval=0.05)

    with (
        loop(NewConnectionLoop, HTTP01_HOST) as fresh,
        loop(NewConnectionLoop, WILDCARD_HOST) as wildcard,
        loop(KeepAliveLoop, HTTP01_HOST) as kept,
    ):
        yield [fresh, wildcard, kept]
        time.sleep(1)


def traffic_figures(loops: list[TrafficLoop]) -> str:
    parts = []
    for loop, name in zip(
        loops, ("new-connection", "wildcard new-connection", "keep-alive"), strict=True
    ):
        s = loop.summary()
        parts.append(
            f"{name} {s.failed} failed/{s.requests} ({s.failovers} failovers, "
            f"{s.closes_absorbed} closes absorbed, longest gap {s.outage:.2f} s)"
        )
    return "; ".join(parts)


def records_figures(stored: Stored) -> str:
    return ", ".join(
        f"{name}: {record.get('condition')} failures {record.get('failures', 0)} next "
        f"{record.get('next_attempt')}"
        for name, record in sorted(stored.records.items())
    )


def test_an_upgrade_from_the_previous_release_and_back_keeps_everything(
    edge: UpgradeEdge,
    release: PreviousRelease,
    pebble: PebbleServer,
    tmp_path: Path,
    figure: Callable[[str], None],
) -> None:
    root = tmp_path / "pebble-root.pem"
    root.write_text(pebble.root_pem())
    pebble_log = STATE_DIR / f"{pebble.name}.log"
    edge.env["CBL_PREVIOUS_TAG"] = release.tag
    phases: dict[str, float] = {}
    old = previous_images(release)

    started = time.monotonic()
    edge.deploy(stack_files(release))
    edge.wait_front(edge.managers)
    for name, (domains, labels) in APPS.items():
        edge.labelled_app(name, domains, *labels)
    for host in (HTTP01_HOST, WILDCARD_HOST):
        wait_https_everywhere(edge, host, root)
    failing = wait_failing(edge)
    edge.wait_taken_over(old)
    before = edge.stored()
    served = {host: serials(edge, host, root) for host in (HTTP01_HOST, WILDCARD_HOST)}
    orders_before = pebble_counts(pebble_log)
    phases[f"previous release {release.commit[:7]} deployed, 2 certificates, 1 failing"] = (
        time.monotonic() - started
    )
    figure(f"upgrade: records before: {records_figures(before)}")

    upgraded, loops = upgrade(edge, root, phases)
    figure(f"upgrade: traffic during the upgrade: {traffic_figures(loops)}")
    after = edge.stored()
    figure(f"upgrade: records after: {records_figures(after)}")
    orders_after = pebble_counts(pebble_log)
    figure(
        f"upgrade: Pebble orders/issued before {orders_before}, after {orders_after}; sidecar "
        f"order history {len(before.orders)} → {len(after.orders)} entries"
    )
    check_upgraded(edge, before, after, failing, served, root, upgraded)
    assert orders_after == orders_before
    assert "ordering" not in upgraded

    _, back_loops = downgrade(edge, release, root, phases)
    figure(f"upgrade: traffic during the downgrade: {traffic_figures(back_loops)}")
    figure("upgrade: phases: " + ", ".join(f"{k} {v:.1f} s" for k, v in phases.items()))
    back = edge.stored()
    assert after.objects <= back.objects, sorted(after.objects - back.objects)
    for host, serial in served.items():
        assert serials(edge, host, root) == serial
    assert pebble_counts(pebble_log) == orders_before
    for loop in loops:
        assert loop.failed == 0, (type(loop).__name__, loop.errors)


def wait_https_everywhere(edge: UpgradeEdge, host: str, root: Path, timeout: float = 300) -> None:
    for node in edge.managers:
        wait_for_https(host, str(root), timeout, address=edge.cluster.address(node))


def serials(edge: UpgradeEdge, host: str, root: Path) -> set[str]:
    return {
        https_get(host, str(root), address=edge.cluster.address(n)).serial for n in edge.managers
    }


def wait_failing(edge: UpgradeEdge, timeout: float = 180) -> str:
    """Until the refused certificate's record shows a failure and its next attempt; its name."""
    deadline = time.monotonic() + timeout
    while True:
        for name, record in edge.stored().records.items():
            if REFUSED_HOST in name and record.get("failures") and record.get("next_attempt"):
                return name
        assert time.monotonic() < deadline, edge.stored().records
        time.sleep(2)


def upgrade(
    edge: UpgradeEdge, root: Path, phases: dict[str, float]
) -> tuple[str, list[TrafficLoop]]:
    """The new images on every node, then the new stack file; the new sidecar's log."""
    with clients(edge, root) as loops:
        started = time.monotonic()
        edge.cluster.load_images()
        phases["new images on every node"] = time.monotonic() - started
        phases["docker stack deploy (new)"] = edge.deploy(stack_files(None))
        log = edge.wait_taken_over(NEW_IMAGES)
        phases["upgrade, deploy to the new release's first pass done"] = time.monotonic() - started
    return log, loops


def downgrade(
    edge: UpgradeEdge, release: PreviousRelease, root: Path, phases: dict[str, float]
) -> tuple[str, list[TrafficLoop]]:
    with clients(edge, root) as loops:
        started = time.monotonic()
        edge.deploy(stack_files(release))
        log = edge.wait_taken_over(previous_images(release))
        phases["downgrade, deploy to the previous release's first pass done"] = (
            time.monotonic() - started
        )
    return log, loops


def check_upgraded(
    edge: UpgradeEdge,
    before: Stored,
    after: Stored,
    failing: str,
    served: dict[str, set[str]],
    root: Path,
    log: str,
) -> None:
    """No certificate ordered, every record carried over, the front and the Docker API proxy on
    the new stack file's configs."""
    assert set(after.records) >= set(before.records)
    for name in before.records:
        assert after.carried(name) == before.carried(name), (
            name,
            before.records[name],
            after.records[name],
        )
    assert after.carried(failing)[0], after.records[failing]
    # The same orders; this release's history adds each order's claimant (older entries: none,
    # the operator's), so each entry is compared on the fields the previous release wrote.
    assert [list(o)[: len(b)] for o, b in zip(after.orders, before.orders, strict=True)] == [
        list(b) for b in before.orders
    ]
    chains = {o for o in before.objects if o.startswith("config:cbl-")}
    assert chains <= after.objects, sorted(chains - after.objects)
    for host, serial in served.items():
        assert serials(edge, host, root) == serial, host
    names = {
        "front": "certbotless_front_haproxy_cfg_",
        "docker-api": "certbotless_docker_api_proxy_cfg_",
    }
    for service, prefix in names.items():
        [config] = edge.config_names(service)
        assert config.startswith(prefix) and config in new_stack_configs(), config


def new_stack_configs() -> set[str]:
    """The config names the working tree's stacks/edge.yml gives."""
    stack = yaml.safe_load((STACKS / "edge.yml").read_text())
    return {str(config["name"]) for config in stack["configs"].values()}
