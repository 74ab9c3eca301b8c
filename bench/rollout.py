"""Rollout and inventory benchmark on the rig's real swarm.

Rollout: an nginx service with a demo app behind it, rolled `--rolls` times to fresh certificates
with `roll_service`, while two client loops of `rig.traffic` run all along: a new TLS connection
for every request, and one kept-alive connection (a close between two requests is retried once,
as browsers do, and counted apart). Three ways, in the same run:

- `front`, certbotless's default (stacks/edge.yml): the repo's haproxy/haproxy.cfg in
  certbotless-front:local publishes a host port of the benchmark's own and passes TCP with PROXY
  protocol v2 to `tasks.nginx` on a benchmark-only overlay network, where the nginx service (no
  published port, nginx.conf rendered with that network's subnet as `front_subnets`) has the alias
  `nginx`; nginx rolls start-first with edge.yml's update settings and SIGQUIT;
- `direct` (stacks/edge-direct.yml): nginx publishes its own host port and rolls stop-first;
- `naive`: the same as `direct` with the engine's default update settings.

Measured per roll: update call → a client first gets the new serial (and → the old serial was last
seen), update call → `roll_service` returned (Swarm's `completed` plus its served check), update
call → the old task's container is gone; for each loop, from 0.5 s before the update until 1 s
after the old container is gone: requests, failed requests, the outage (the longest stretch with
no successful request) and, for the kept-alive connection, the closes its one retry absorbed.

The served check given to `roll_service` asks through the port clients use: for `direct` and
`naive`, nginx's own; for `front`, HAProxy's, so that each check reaches one task that HAProxy
picked, not every task in turn. That is enough here (one node, so one task once the old one is out
of Swarm's DNS); inside the overlay, certbotless itself asks every task with
`ServedCertificates("tasks.<nginx service>", proxy_protocol=True)`.

The front's target: no failed request on either loop (after the one retry), in every roll.

Inventory: `CertStore.inventory()` over `--inventory` stored certificates (default 1000) created
in the swarm for the run and removed after.

`--cluster`: the same rolls on the rig's multi-node swarm (rig/cluster.py, brought up with
`Cluster.ensure()` unless it runs, and left up), driven through a manager's dockerd
(`DOCKER_HOST`, and the Docker SDK at the same address for the store and `roll_service`):

- `front`: HAProxy global on the managers (host port FRONT_PORT), nginx global on every node
  publishing nothing (edge.yml's settings, so one task after the other, start-first); the client
  loops go through one manager's front, and the served check asks every front;
- `direct`: nginx global on the managers with its own host port (edge-direct.yml's settings,
  stop-first); the client loops ask one manager, the served check every manager.

Certificates still come from the benchmark's loopback Pebble and the host's responder: they only
need to exist in the cluster's Raft store, not to be validated through it. `naive` is not run
there (one replica would land on any node).

It waits (bounded) while a pytest run is going on (the swarm tests remove every `cbl-…` service
when they start; with `--cluster`, a run of tests/cluster, which removes the certbotless-made
configs and secrets there and may bring the cluster down) and holds /tmp/cbl-bench.lock while it
runs. Everything it makes is named `cbl-bench-…` (services, networks, the HAProxy config) or is a
certificate, key or nginx.conf it stored itself, and exactly that is removed at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import docker as docker_sdk
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from certbotless.acme.challenges import TokenStore
from certbotless.acme.http01 import EdgeHttp01Solver
from certbotless.acme.issuer import AcmeIssuer
from certbotless.acme.keys import load_account_key, private_key_pem
from certbotless.acme.responder import ChallengeResponder
from certbotless.edge.deployer import edge_references
from certbotless.edge.render import render_nginx_conf
from certbotless.edge.rollout import ServedCertificates, roll_service
from certbotless.model import CertSpec, IssuedCert, Route, StoredCert
from certbotless.swarm.api import Swarm
from certbotless.swarm.store import CertStore
from rig.pebble import PebbleServer
from rig.stacks import docker
from rig.state import read_env, run
from rig.traffic import KeepAliveLoop, NewConnectionLoop, Summary, Target

REPO = Path(__file__).resolve().parent.parent
HOST = "rollout.bench.test"
NGINX = "cbl-bench-nginx"
FRONT = "cbl-bench-haproxy"
APP = "cbl-bench-app"
EDGE_NET = "cbl-bench-edge"  # nginx and the app
FRONT_NET = "cbl-bench-front"  # the front and nginx: PROXY protocol is trusted from its subnet
FRONT_CONFIG = "cbl-bench-front-haproxy-cfg"
FRONT_CONFIG_TARGET = "/usr/local/etc/haproxy/haproxy.cfg"
FRONT_CONTAINER_PORT = 8443  # haproxy.cfg's `bind :8443`
# Not 8443: the swarm tests' own nginx publishes that.
FRONT_PORT, DIRECT_PORT, NAIVE_PORT = 9443, 9444, 9445
PEBBLE_PORT = 14210
HTTP01_PORT = 5004
LOCK = Path("/tmp/cbl-bench.lock")
# Test runs that touch the single-node swarm (any), or the cluster (tests/cluster, or all tests).
TESTS_HERE = "pytest"
TESTS_CLUSTER = "pytest.*tests(/cluster| |$)"
CLUSTER_NODES, CLUSTER_MANAGERS = 4, 3
# Short, so that a connection attempt swallowed while the port has no container (SYN dropped)
# does not stretch the measured outage by the client's own wait.
CONNECT_TIMEOUT = 0.2
REQUEST_TIMEOUT = 3.0
SETTLE = 1.0  # seconds measured after the old task's container is gone
TARGET_CONVERGED = 6.0
TARGET_OUTAGE = 0.5
TARGET_INVENTORY = 2.0

Say = Callable[[str], None]

# stacks/edge.yml's nginx service.
EDGE_YML = [
    "--mode", "global", "--endpoint-mode", "dnsrr",
    "--stop-signal", "SIGQUIT", "--stop-grace-period", "10s",
    "--update-order", "start-first", "--update-parallelism", "1", "--update-delay", "0s",
    "--update-monitor", "1s", "--update-failure-action", "rollback",
    "--update-max-failure-ratio", "0",
    "--rollback-order", "start-first", "--rollback-parallelism", "1",
    "--rollback-monitor", "1s", "--rollback-failure-action", "pause",
]  # fmt: skip
# stacks/edge.yml with stacks/edge-direct.yml over it: stop-first, on managers.
EDGE_DIRECT_YML = [
    *EDGE_YML, "--update-order", "stop-first", "--rollback-order", "stop-first",
    "--constraint", "node.role==manager",
]  # fmt: skip
NAIVE: list[str] = []


@dataclass(frozen=True)
class Mode:
    name: str
    title: str
    settings: list[str]
    port: int  # the host port clients use
    behind_front: bool
    label: str = ""  # in the per-roll lines; the name when empty

    @property
    def called(self) -> str:
        return self.label or self.name


MODES = {
    "front": Mode("front", "front (edge.yml: HAProxy, start-first)", EDGE_YML, FRONT_PORT, True),
    "direct": Mode(
        "direct", "direct (edge-direct.yml, stop-first)", EDGE_DIRECT_YML, DIRECT_PORT, False
    ),
    "naive": Mode("naive", "naive (engine defaults)", NAIVE, NAIVE_PORT, False),
}
# The same settings on the cluster: nginx global, on every node behind the fronts on the
# managers, or on the managers only when it publishes its own port.
CLUSTER_MODES = {
    "front": replace(
        MODES["front"],
        title="cluster front (edge.yml: HAProxy, start-first)",
        label="cluster front",
    ),
    "direct": replace(
        MODES["direct"],
        title="cluster direct (edge-direct.yml, stop-first)",
        label="cluster direct",
    ),
}


@dataclass
class Place:
    """Where the rolls happen: the rig's single-node swarm, or the rig's cluster through one
    manager."""

    env: dict[str, str]  # for the docker CLI: {} here, a manager's DOCKER_HOST in the cluster
    swarm: Swarm  # the manager's API: the store, roll_service
    node_apis: list[docker_sdk.APIClient]  # every node's dockerd: where containers run
    client_address: str  # where both client loops and the serial watch connect
    published_on: list[str]  # every address a front or nginx's own port is published on
    label: str = ""  # "cluster" on the cluster

    def docker(self, *args: str, check: bool = True) -> str:
        return docker(*args, env=self.env, check=check)

    def succeeds(self, *args: str) -> bool:
        return run(["docker", *args], check=False, env=self.env).returncode == 0

    def served(self, port: int) -> ServedCertificates:
        """The served check: every front, or every node's own nginx port."""
        return ServedByEach(self.published_on, port)

    def containers(self, service: str) -> set[str]:
        """The running containers of `service`, on every node."""
        found: set[str] = set()
        for api in self.node_apis:
            listed = api.containers(filters={"label": f"com.docker.swarm.service.name={service}"})
            found |= {str(c["Id"]) for c in listed}
        return found


class ServedByEach(ServedCertificates):
    """`ServedCertificates` over several addresses: address → serial, for each of them."""

    def __init__(self, addresses: Sequence[str], port: int, timeout: float = 3.0) -> None:
        super().__init__(addresses[0], port, timeout)
        self.each = [ServedCertificates(address, port, timeout) for address in addresses]

    def serials(self, domain: str) -> dict[str, str]:
        found: dict[str, str] = {}
        for check in self.each:
            found.update(check.serials(domain))
        return found


def here() -> Place:
    swarm = Swarm()
    return Place({}, swarm, [swarm.api], "127.0.0.1", ["127.0.0.1"])


def on_cluster(say: Say) -> Place:
    """The rig's cluster (brought up unless it runs; left up), driven through a manager."""
    from rig.cluster import Cluster

    cluster, made = Cluster.ensure(nodes=CLUSTER_NODES, managers=CLUSTER_MANAGERS)
    manager = cluster.manager()
    entries = cluster.swarm_nodes()
    managers = sorted(n.hostname for n in entries if n.role == "manager" and n.ready)
    ready = sorted(n.hostname for n in entries if n.ready and n.hostname in cluster.names)
    if manager not in managers:  # pragma: no cover - the manager answered, so it is ready
        managers.insert(0, manager)
    say(
        f"cluster: {'made' if made else 'reused'}; {len(ready)} nodes ({', '.join(ready)}), "
        f"managers {', '.join(managers)}; driven through {manager} "
        f"({cluster.env(manager)['DOCKER_HOST']}); clients ask {cluster.address(manager)}"
    )

    def api(node: str) -> docker_sdk.APIClient:
        return docker_sdk.APIClient(base_url=cluster.env(node)["DOCKER_HOST"], timeout=60)

    return Place(
        env=cluster.env(manager),
        swarm=Swarm(api(manager)),
        node_apis=[api(node) for node in ready],
        client_address=cluster.address(manager),
        published_on=[cluster.address(node) for node in managers],
        label="cluster",
    )


@dataclass
class RollFigures:
    served: float  # update call → first connection that got the new serial
    old_last_seen: float  # update call → last connection that got the old serial
    converged: float  # update call → roll_service returned (Swarm completed + served check)
    old_gone: float  # update call → the old task's container no longer runs
    fresh: Summary  # the new-connection loop over the roll
    kept: Summary  # the keep-alive loop over the roll


@dataclass
class Created:
    """What the run made, to remove exactly that."""

    services: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    configs: list[str] = field(default_factory=list)  # plain docker configs (HAProxy's)
    store_configs: list[str] = field(default_factory=list)  # certificate chains, nginx.conf
    store_secrets: list[str] = field(default_factory=list)
    existing_configs: set[str] = field(default_factory=set)


class ContainerWatch:
    """When each container of the nginx service was first and last seen running (every 0.1 s), on
    every node."""

    def __init__(self, place: Place) -> None:
        self.place = place
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.latest: set[str] = set()
        self.polled_at = 0.0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ContainerWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def running(self) -> set[str]:
        return self.place.containers(NGINX)

    def _run(self) -> None:
        while not self._stop.is_set():
            with suppress(Exception):
                seen = self.running()
                now = time.monotonic()
                with self._lock:
                    for cid in seen:
                        self.first.setdefault(cid, now)
                        self.last[cid] = now
                    self.latest, self.polled_at = seen, now
            self._stop.wait(0.1)

    def gone(self, ids: set[str], since: float) -> float | None:
        """When the last of `ids` was last seen running, once a poll after `since` saw none."""
        with self._lock:
            if self.polled_at <= since or not ids.isdisjoint(self.latest):
                return None
            return max((self.last.get(cid, since) for cid in ids), default=since)


class SerialWatch:
    """Asks through the clients' port, every 0.05 s, which serial a new connection gets."""

    def __init__(self, address: str, port: int, old: str, new: str) -> None:
        self.check = ServedCertificates(address, port, timeout=1)
        self.old, self.new = old, new
        self.first_new: float | None = None
        self.last_old: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            serials = set(self.check.serials(HOST).values())
            now = time.monotonic()
            if self.new in serials and self.first_new is None:
                self.first_new = now
            if self.old in serials:
                self.last_old = now
            self._stop.wait(0.05)

    def __enter__(self) -> SerialWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def wait_gone(place: Place, service: str, timeout: float = 60) -> None:
    """Until no container of `service` runs on any node."""
    deadline = time.monotonic() + timeout
    while place.containers(service):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{service} still has containers after {timeout:.0f} s")
        time.sleep(0.5)


def remove_service(place: Place, created: Created, service: str) -> None:
    if service in created.services:
        place.docker("service", "rm", service, check=False)
        wait_gone(place, service)
        created.services.remove(service)


def create_service(place: Place, created: Created, name: str, *args: str) -> None:
    if place.succeeds("service", "inspect", name):
        raise RuntimeError(f"service {name} exists already: an earlier run left it; remove it")
    created.services.append(name)
    place.docker("service", "create", "--detach", "--name", name, *args)


def create_network(place: Place, created: Created, name: str) -> str:
    """A bench-only overlay network; returns its subnet."""
    if place.succeeds("network", "inspect", name):
        raise RuntimeError(f"network {name} exists already: an earlier run left it; remove it")
    place.docker("network", "create", "--driver", "overlay", name)
    created.networks.append(name)
    return place.docker(
        "network", "inspect", name, "--format", "{{range .IPAM.Config}}{{.Subnet}} {{end}}"
    ).split()[0]


def save_cert(store: CertStore, issuer: AcmeIssuer, created: Created) -> StoredCert:
    stored = store.save(issuer.issue(CertSpec(HOST, (HOST,))))
    created.store_secrets.append(stored.secret_id)
    created.store_configs.append(stored.config_id)
    return stored


def nginx_conf(
    store: CertStore, cert: StoredCert, created: Created, front_subnet: str | None
) -> dict[str, tuple[str, str]]:
    """The configuration's files as configs: target → (name, id)."""
    routes = [Route(APP, (HOST,), 8000)]
    files = render_nginx_conf(
        routes,
        {cert.name: cert},
        "x:1",
        "/etc/nginx/certs",
        front_subnets=(front_subnet,) if front_subnet else (),
    )
    confs = store.ensure_nginx_confs(files)
    for _, config_id in confs.values():
        if config_id not in created.existing_configs and config_id not in created.store_configs:
            created.store_configs.append(config_id)
    return confs


@contextmanager
def front_service(place: Place, created: Created, say: Say) -> Iterator[str]:
    """The front network and HAProxy on it (on every manager); yields the network's subnet."""
    subnet = create_network(place, created, FRONT_NET)
    cfg = REPO / "haproxy" / "haproxy.cfg"
    place.docker("config", "create", FRONT_CONFIG, str(cfg))
    created.configs.append(FRONT_CONFIG)
    create_service(
        place, created, FRONT,
        "--mode", "global", "--constraint", "node.role==manager",
        "--network", FRONT_NET,
        "--publish", f"mode=host,target={FRONT_CONTAINER_PORT},published={FRONT_PORT}",
        "--config", f"source={FRONT_CONFIG},target={FRONT_CONFIG_TARGET}",
        "--stop-signal", "SIGUSR1",
        "certbotless-front:local",
    )  # fmt: skip
    say(
        f"front: HAProxy ({cfg.relative_to(REPO)}) on {FRONT_NET} ({subnet}), port {FRONT_PORT}"
        + (f" on {', '.join(place.published_on)}" if place.label else "")
    )
    try:
        yield subnet
    finally:
        log = Path(f"/tmp/cbl-bench-{place.label + '-' if place.label else ''}haproxy.log")
        with suppress(Exception):
            logs = run(
                ["docker", "service", "logs", "--timestamps", "--raw", FRONT],
                check=False,
                env=place.env,
            )
            log.write_text(logs.stdout + logs.stderr)
            say(f"front: HAProxy's log is in {log}")
        remove_service(place, created, FRONT)


@contextmanager
def edge_service(
    place: Place,
    store: CertStore,
    cert: StoredCert,
    mode: Mode,
    created: Created,
    front_subnet: str | None,
) -> Iterator[None]:
    conf = nginx_conf(store, cert, created, front_subnet)
    refs = edge_references([Route(APP, (HOST,), 8000)], {cert.name: cert}, conf, "/etc/nginx/certs")
    mounts = []
    for ref in refs:
        mounts += [
            f"--{ref.kind}",
            f"source={ref.object_name},target={ref.target},mode=0{ref.mode:o}",
        ]
    if mode.behind_front:
        where = ["--network", EDGE_NET, "--network", f"name={FRONT_NET},alias=nginx"]
    else:
        where = ["--network", EDGE_NET, "--publish", f"mode=host,target=443,published={mode.port}"]
    create_service(
        place, created, NGINX, *where, *mounts, *mode.settings, "certbotless-nginx:local"
    )
    try:
        place.served(mode.port).wait_until_serving(
            {HOST: cert.serial}, time.monotonic() + (180 if place.label else 90)
        )
        yield
    finally:
        remove_service(place, created, NGINX)


def measure_rolls(
    place: Place,
    store: CertStore,
    issuer: AcmeIssuer,
    mode: Mode,
    rolls: int,
    interval: float,
    created: Created,
    say: Say,
    front_subnet: str | None,
) -> list[RollFigures]:
    figures: list[RollFigures] = []
    current = save_cert(store, issuer, created)
    routes = [Route(APP, (HOST,), 8000)]
    target = Target(place.client_address, mode.port, HOST)
    budget = 60.0 + 120.0 * rolls
    with edge_service(place, store, current, mode, created, front_subnet):
        fresh = NewConnectionLoop(
            target, max_requests=10_000_000, max_seconds=budget,
            connect_timeout=CONNECT_TIMEOUT, timeout=REQUEST_TIMEOUT, interval=interval,
        )  # fmt: skip
        kept = KeepAliveLoop(
            target, max_requests=10_000_000, max_seconds=budget,
            connect_timeout=CONNECT_TIMEOUT, timeout=REQUEST_TIMEOUT, interval=interval,
        )  # fmt: skip
        with ContainerWatch(place) as containers, fresh, kept:
            time.sleep(1)
            for index in range(rolls):
                fresh_cert = save_cert(store, issuer, created)
                conf = nginx_conf(store, fresh_cert, created, front_subnet)
                wanted = edge_references(
                    routes, {fresh_cert.name: fresh_cert}, conf, "/etc/nginx/certs"
                )
                old_tasks = containers.running()
                wall = datetime.now(UTC).strftime("%H:%M:%S.%f")[:-3]
                with SerialWatch(
                    place.client_address, mode.port, current.serial, fresh_cert.serial
                ) as serials:
                    started = time.monotonic()
                    roll_service(
                        place.swarm, NGINX, wanted, 120, lambda _m: None, place.served(mode.port)
                    )
                    converged = time.monotonic() - started
                    deadline = time.monotonic() + 60
                    gone = containers.gone(old_tasks, time.monotonic())
                    while gone is None and time.monotonic() < deadline:
                        time.sleep(0.1)
                        gone = containers.gone(old_tasks, started)
                    time.sleep(SETTLE)
                until = time.monotonic()
                figure = RollFigures(
                    served=(serials.first_new or float("nan")) - started,
                    old_last_seen=(serials.last_old or started) - started,
                    converged=converged,
                    old_gone=(gone if gone is not None else float("nan")) - started,
                    fresh=fresh.summary(started - 0.5, until),
                    kept=kept.summary(started - 0.5, until),
                )
                figures.append(figure)
                current = fresh_cert
                say(
                    f"{mode.called} roll {index + 1}/{rolls} (at {wall} UTC): served "
                    f"{figure.served:.2f} s (old serial last seen {figure.old_last_seen:.2f} s), "
                    f"converged {figure.converged:.2f} s, old task gone {figure.old_gone:.2f} s; "
                    f"new connections: failed {figure.fresh.failed}/{figure.fresh.requests}, "
                    f"outage {figure.fresh.outage:.2f} s; keep-alive: failed "
                    f"{figure.kept.failed}/{figure.kept.requests}, closes absorbed "
                    f"{figure.kept.closes_absorbed}, outage {figure.kept.outage:.2f} s"
                )
                for loop, summary in (
                    ("new connections", figure.fresh),
                    ("keep-alive", figure.kept),
                ):
                    for error, count in sorted(summary.errors.items()):
                        say(f"    {loop}: {count} failed: {error}")
                    for error, count in sorted(summary.close_errors.items()):
                        say(f"    {loop}: {count} closed, retried: {error}")
    return figures


def synthetic_chain(index: int) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    name = f"inv{index}.bench.test"
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench CA")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier(b"\x02" * 20, None, None), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.PEM), private_key_pem(key)


def measure_inventory(store: CertStore, count: int, say: Say) -> tuple[float, int]:
    created: list[StoredCert] = []
    try:
        for index in range(count):
            chain, key = synthetic_chain(index)
            name = f"inv{index}.bench.test"
            created.append(store.save(IssuedCert(CertSpec(name, (name,)), chain, key)))
            if (index + 1) % 100 == 0:
                say(f"inventory: {index + 1}/{count} certificates stored")
        timings = []
        listed = 0
        for _ in range(3):
            started = time.perf_counter()
            listed = len(store.inventory())
            timings.append(time.perf_counter() - started)
        return statistics.median(timings), listed
    finally:
        say(f"inventory: removing the {len(created)} certificates made for the benchmark")
        for cert in created:
            store.swarm.remove_config(cert.config_id)
            store.swarm.remove_secret(cert.secret_id)


def tests_running(pattern: str = TESTS_HERE) -> bool:
    return subprocess.run(["pgrep", "-f", pattern], capture_output=True).returncode == 0


def take_lock(text: str) -> bool:
    try:
        descriptor = os.open(LOCK, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "w") as lock:
        lock.write(text)
    return True


@contextmanager
def bench_lock(
    wait: float,
    say: Say,
    tests: str = TESTS_HERE,
    purpose: str = "bench.rollout",
    poll: float = 5,
) -> Iterator[None]:
    """Wait (at most `wait` seconds) until no pytest run matching `tests` runs and no other
    benchmark holds LOCK, then hold LOCK, so that the next test run waits for this one."""
    deadline = time.monotonic() + wait
    mine = f"{purpose} (pid {os.getpid()}, since {datetime.now(UTC):%H:%M:%S} UTC)\n"
    told = ""
    while True:
        if tests_running(tests):
            why = "a pytest run is going on (it removes cbl-… services)"
        elif not take_lock(mine):
            why = f"{LOCK} is held"
            with suppress(OSError):
                why = f"{LOCK} is held: {LOCK.read_text().strip()}"
        elif tests_running(tests):
            LOCK.unlink()  # a test run started in between: let it finish first
            why = "a pytest run started"
        else:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"still waiting after {wait:.0f} s: {why}; not starting")
        if why != told:
            say(f"{why}: waiting")
            told = why
        time.sleep(poll)
    try:
        yield
    finally:
        with suppress(OSError):
            if LOCK.read_text() == mine:
                LOCK.unlink()


def cleanup(place: Place, created: Created, store: CertStore, say: Say) -> None:
    for service in list(reversed(created.services)):
        with suppress(Exception):
            remove_service(place, created, service)
    for config_id in created.store_configs:
        with suppress(Exception):
            store.swarm.remove_config(config_id)
    for secret_id in created.store_secrets:
        with suppress(Exception):
            store.swarm.remove_secret(secret_id)
    for config in created.configs:
        place.docker("config", "rm", config, check=False)
    for network in created.networks:
        # An overlay's endpoints linger a moment after the last container is gone.
        for _ in range(20):
            if place.succeeds("network", "rm", network):
                break
            time.sleep(0.5)
        else:
            say(f"could not remove network {network}")
    say(
        f"removed {len(created.networks)} networks, {len(created.configs)} config(s), "
        f"{len(created.store_configs)} stored configs and {len(created.store_secrets)} secrets "
        "made by the run"
    )


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def total(figures: list[RollFigures], loop: str, what: str) -> int:
    return sum(int(getattr(getattr(f, loop), what)) for f in figures)


def print_table(
    results: dict[str, list[RollFigures]], rolls: int, modes: dict[str, Mode] = MODES
) -> bool:
    """The table; True when the front met its target."""
    width = max(38, *(len(modes[name].title) for name in results))
    header = (
        f"{'roll':<{width}} {'served':>7} {'converged':>9} {'new conn: failed':>17} {'outage':>7} "
        f"{'keep-alive: failed':>19} {'closes':>6} {'outage':>7}"
    )
    print()
    print(header)
    for name, figures in results.items():
        fresh_cell = f"{total(figures, 'fresh', 'failed')}/{total(figures, 'fresh', 'requests')}"
        kept_cell = f"{total(figures, 'kept', 'failed')}/{total(figures, 'kept', 'requests')}"
        print(
            f"{modes[name].title:<{width}} {median([f.served for f in figures]):>6.2f}s"
            f" {median([f.converged for f in figures]):>8.2f}s {fresh_cell:>17}"
            f" {median([f.fresh.outage for f in figures]):>6.2f}s {kept_cell:>19}"
            f" {total(figures, 'kept', 'closes_absorbed'):>6}"
            f" {median([f.kept.outage for f in figures]):>6.2f}s"
        )
    print(
        f"served, converged, outages: medians of {rolls} rolls; failed requests and closes "
        "(absorbed by one retry): totals over the rolls"
    )
    front = results.get("front")
    if front:
        base = median([f.converged for f in front])
        base_outage = median([f.fresh.outage for f in front])
        for name, figures in results.items():
            if name == "front":
                continue
            outage = median([f.fresh.outage for f in figures])
            converged = median([f.converged for f in figures])
            print(
                f"{modes[name].called}/{modes['front'].called}: converged {converged / base:.1f}x, "
                f"new-connection outage {outage / base_outage:.1f}x, failed requests "
                f"{total(figures, 'fresh', 'failed')} vs {total(front, 'fresh', 'failed')} "
                f"(new connections), {total(figures, 'kept', 'failed')} vs "
                f"{total(front, 'kept', 'failed')} (keep-alive)"
            )
        fresh_failed, kept_failed = total(front, "fresh", "failed"), total(front, "kept", "failed")
        met = fresh_failed == 0 and kept_failed == 0
        print(
            f"{modes['front'].called} target (0 failed requests on new connections, 0 on "
            f"keep-alive after one retry): {'met' if met else 'MISSED'} ({fresh_failed} and "
            f"{kept_failed} failed)"
        )
        return met
    return True


def summarize_errors(results: dict[str, list[RollFigures]], modes: dict[str, Mode] = MODES) -> None:
    for name, figures in results.items():
        called = modes[name].called
        for loop in ("fresh", "kept"):
            errors: Counter[str] = Counter()
            closes: Counter[str] = Counter()
            for figure in figures:
                errors.update(getattr(figure, loop).errors)
                closes.update(getattr(figure, loop).close_errors)
            what = "new connections" if loop == "fresh" else "keep-alive"
            for error, count in errors.most_common():
                print(f"  {called}, {what}: {count} failed: {error}")
            for error, count in closes.most_common():
                print(f"  {called}, {what}: {count} closes absorbed: {error}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rolls", type=int, default=5, help="rolls per configuration")
    parser.add_argument("--inventory", type=int, default=1000, help="certificates to list")
    parser.add_argument(
        "--modes",
        default=None,
        help="which rolls, comma-separated (default front,direct,naive; front,direct with "
        "--cluster)",
    )
    parser.add_argument(
        "--interval", type=float, default=0.01, help="least seconds between a loop's requests"
    )
    parser.add_argument(
        "--wait-for-tests",
        type=float,
        default=None,
        help="seconds to wait for a pytest run (default 3600; 2400 with --cluster)",
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help=f"roll on the rig's multi-node swarm ({CLUSTER_MANAGERS} managers, "
        f"{CLUSTER_NODES - CLUSTER_MANAGERS} worker), not on the single-node one",
    )
    args = parser.parse_args()
    known = CLUSTER_MODES if args.cluster else MODES
    chosen = args.modes or ",".join(known)
    unknown = [name for name in chosen.split(",") if name not in known]
    if unknown:
        parser.error(f"--modes: {', '.join(unknown)} not among {', '.join(known)}")
    modes = [known[name] for name in chosen.split(",")]

    def say(message: str) -> None:
        print(message, flush=True)

    env = read_env()
    results: dict[str, list[RollFigures]] = {}
    if args.cluster:
        lock = bench_lock(
            2400 if args.wait_for_tests is None else args.wait_for_tests,
            say,
            tests=TESTS_CLUSTER,
            purpose="bench.rollout --cluster: nginx rolls on the rig's cluster (cbl-bench-* "
            "services, networks, configs and the certificates it stores there)",
            poll=10,
        )
    else:
        lock = bench_lock(3600 if args.wait_for_tests is None else args.wait_for_tests, say)
    with lock:
        place = on_cluster(say) if args.cluster else here()
        store = CertStore(place.swarm)
        created = Created(existing_configs=set(place.docker("config", "ls", "-q").split()))
        pebble = PebbleServer(
            "pebble-bench-rollout", host="127.0.0.1", ca_bundle=Path(env["CBL_RIG_CA_BUNDLE"]),
            port=PEBBLE_PORT, management_port=PEBBLE_PORT + 1000, http_port=HTTP01_PORT,
        )  # fmt: skip
        tokens = TokenStore(Path("/tmp/cbl-bench-rollout-tokens"))
        responder = ChallengeResponder(tokens, "127.0.0.1", HTTP01_PORT)
        pebble.start()
        responder.start()
        try:
            create_network(place, created, EDGE_NET)
            create_service(
                place, created, APP, "--network", EDGE_NET, "--endpoint-mode", "dnsrr",
                "certbotless-demo-app:local",
            )  # fmt: skip
            issuer = AcmeIssuer(
                pebble.directory_url,
                load_account_key(None),
                EdgeHttp01Solver(tokens),
                ca_bundle=pebble.ca_bundle,
            )
            for mode in modes:
                say(
                    f"{mode.called}: {mode.title}, {args.rolls} rolls, port {mode.port}"
                    + (f" on {place.client_address}" if place.label else "")
                )
                if mode.behind_front:
                    with front_service(place, created, say) as subnet:
                        results[mode.name] = measure_rolls(
                            place, store, issuer, mode, args.rolls, args.interval, created, say,
                            subnet,
                        )  # fmt: skip
                else:
                    results[mode.name] = measure_rolls(
                        place, store, issuer, mode, args.rolls, args.interval, created, say, None
                    )
            inventory_seconds, listed = measure_inventory(store, args.inventory, say)
        finally:
            cleanup(place, created, store, say)
            responder.stop()
            pebble.stop()

    met = print_table(results, args.rolls, known)
    summarize_errors(results, known)
    where = " (cluster)" if place.label else ""
    print(
        f"inventory of {listed} stored certificates{where}: {inventory_seconds:.2f} s (median of 3)"
    )
    missed = [] if met else [f"{known['front'].called}: failed requests"]
    judged = results.get("front") or next(iter(results.values()))
    if median([f.converged for f in judged]) > TARGET_CONVERGED:
        missed.append(f"converged > {TARGET_CONVERGED} s")
    if median([f.fresh.outage for f in judged]) > TARGET_OUTAGE:
        missed.append(f"outage > {TARGET_OUTAGE} s")
    if inventory_seconds > TARGET_INVENTORY:
        missed.append(f"inventory > {TARGET_INVENTORY} s")
    print("targets missed: " + ", ".join(missed) if missed else "all targets met")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
