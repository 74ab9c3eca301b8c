"""A real multi-node Docker Swarm of Docker-in-Docker nodes, made on the rig's dockerd.

Each node is a container `cbl-node-N` of the debootstrapped `certbotless-test-node` image on the
bridge `cbl-cluster`, running its own dockerd (overlay2 on a named volume `cbl-node-N-docker`).
The host drives every node with its own docker CLI: `DOCKER_HOST=tcp://<node address>:2375`,
reachable only on that bridge. What was made is recorded in STATE_DIR/cluster.json so that
`down` removes exactly that. See design.md §4 "Several nodes on one machine".

    cluster = Cluster.load()
    cluster.up()                      # reuses a healthy cluster
    cluster.docker("cbl-node-1", "stack", "deploy", "-c", "edge.yml", "edge")
    cluster.kill("cbl-node-2"); cluster.start("cbl-node-2")
    cluster.down()
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Literal, TypeVar

from rig import stacks
from rig.pebble import CHALLTESTSRV_MANAGEMENT
from rig.state import STATE_DIR, RigError, run, say, wait_until

NETWORK = "cbl-cluster"
# Address plan. None of these overlap the host's networks (172.17/16, 172.18/16 docker_gwbridge,
# the host swarm's 10.0.x.0/24 overlays) nor 10.222.0.0/24, which the edge stack's "front"
# overlay claims for itself. Node N is fixed at 10.200.0.(10+N): a killed node that is started
# again must come back at the address it advertised to the swarm.
SUBNET = "10.200.0.0/24"
GATEWAY = "10.200.0.1"
FIRST_HOST = 10
# Inside a node: docker0 and docker_gwbridge come from this pool, overlays from the next. Were
# they the inner dockerd's defaults (172.17/16, 172.18/16), inner containers could not reach the
# host's docker_gwbridge address, where Pebble listens.
INNER_BRIDGE_POOL = "10.201.0.0/16"
INNER_OVERLAY_POOL = "10.202.0.0/16"
NODE_PREFIX = "cbl-node-"
DOCKER_PORT = 2375
LABEL_KEY = "certbotless-rig"  # not "certbotless.": the sidecar's label namespace
LABEL = f"{LABEL_KEY}=cluster"
STATE_FILE = STATE_DIR / "cluster.json"
LOCK_FILE = STATE_DIR / "cluster.lock"
IMAGES_TAR = STATE_DIR / "cluster-images.tar"

Role = Literal["manager", "worker"]

# `--privileged` fails here (no CAP_SYS_RESOURCE): every capability but that one, no seccomp or
# AppArmor profile, /proc and /sys unmasked, every device. A private cgroup namespace plus the
# remounts in ENTRYPOINT let the inner dockerd use overlay2 (vfs would copy each image layer).
NODE_RUN_FLAGS = [
    "--init",
    "--cap-add", "ALL",
    "--cap-drop", "SYS_RESOURCE",
    "--cgroupns", "private",
    "--security-opt", "seccomp=unconfined",
    "--security-opt", "apparmor=unconfined",
    "--security-opt", "systempaths=unconfined",
    "--device-cgroup-rule", "a *:* rwm",
    "--tmpfs", "/run",
    "--log-opt", "max-size=10m",
]  # fmt: skip

# /sys and the cgroup mounts come read-only: the inner dockerd must make cgroups, and its mounts
# must propagate (rshared /). `--tls=false` said explicitly, or dockerd 20.10 waits 15 s before
# serving an unencrypted TCP socket.
ENTRYPOINT = f"""set -e
mount -o remount,rw /sys
for m in $(awk '$3 ~ /^cgroup2?$/ {{print $2}}' /proc/self/mounts); do
  mount -o remount,bind,rw "$m"
done
mount --make-rshared /
exec dockerd --storage-driver=overlay2 --tls=false \\
  -H unix:///var/run/docker.sock -H tcp://0.0.0.0:{DOCKER_PORT} \\
  --default-address-pool base={INNER_BRIDGE_POOL},size=24
"""

T = TypeVar("T")
# Nodes start in threads, each recording itself.
_SAVING = threading.RLock()


@dataclass
class NodeRecord:
    """A node this code made: its container (by exact name), its volume, where it listens."""

    name: str
    address: str
    volume: str
    role: Role  # the role it joined with; `Cluster.swarm_nodes()` tells the current one

    @property
    def docker_host(self) -> str:
        return f"tcp://{self.address}:{DOCKER_PORT}"


@dataclass(frozen=True)
class SwarmNode:
    """A node as the swarm sees it (`docker node inspect`)."""

    id: str
    hostname: str
    address: str
    role: str  # manager | worker
    state: str  # ready | down | unknown | disconnected
    availability: str  # active | pause | drain
    leader: bool
    reachability: str  # reachable | unreachable for managers, "" for workers

    @property
    def ready(self) -> bool:
        return self.state == "ready"


@dataclass
class Cluster:
    """The rig's multi-node swarm. Load it with `Cluster.load()`; every change is saved."""

    network: str = ""  # the id of the bridge this code made, "" before `up`
    nodes: dict[str, NodeRecord] = field(default_factory=dict)
    resolved: list[str] = field(default_factory=list)  # domains given A records in challtestsrv
    timings: dict[str, float] = field(default_factory=dict)  # of the last `up`, in seconds

    # --- state -----------------------------------------------------------------------------

    @classmethod
    def load(cls) -> Cluster:
        if not STATE_FILE.exists():
            return cls()
        data = json.loads(STATE_FILE.read_text())
        records = sorted(data.get("nodes", []), key=lambda n: _index(n["name"]))
        return cls(
            network=data.get("network", ""),
            nodes={n["name"]: NodeRecord(**n) for n in records},
            resolved=list(data.get("resolved", [])),
        )

    def save(self) -> None:
        with _SAVING:
            STATE_DIR.mkdir(parents=True, exist_ok=True)
            # Nodes start in parallel: keep them in node order.
            self.nodes = dict(sorted(self.nodes.items(), key=lambda item: _index(item[0])))
            data = {
                "network": self.network,
                "nodes": [asdict(n) for n in self.nodes.values()],
                "resolved": self.resolved,
            }
            partial = STATE_FILE.with_suffix(".partial")
            partial.write_text(json.dumps(data, indent=2))
            partial.replace(STATE_FILE)

    @classmethod
    def ensure(cls, nodes: int = 4, managers: int = 3) -> tuple[Cluster, bool]:
        """The cluster, brought up unless a healthy one runs; and whether this call made it."""
        cluster = cls()
        made = cluster.up(nodes, managers)
        return cluster, made

    # --- whole cluster ---------------------------------------------------------------------

    def up(self, nodes: int = 4, managers: int = 3) -> bool:
        """Make the cluster (`managers` managers, the rest workers), or reuse a healthy one
        (refreshing its images); returns whether it made one."""
        with _locked():
            self._reload()
            if self.healthy():
                say(f"cluster already up: {', '.join(self.nodes)}")
                self.load_images()
                return False
            try:
                self._up(nodes, managers)
            except BaseException:
                say("removing the partly made cluster")
                self._down()
                raise
            return True

    def _up(self, count: int, managers: int) -> None:
        if not 1 <= managers <= count:
            raise RigError(f"{managers} managers for {count} nodes")
        if self.nodes or self.network:
            say("removing an unhealthy cluster first")
            self._down()
        from rig.images import ensure_node_image

        ensure_node_image()
        started = time.monotonic()
        self._create_network()
        names = [f"{NODE_PREFIX}{i}" for i in range(1, count + 1)]
        roles: list[Role] = ["manager" if i < managers else "worker" for i in range(count)]
        self._timed("nodes up", lambda: _parallel(self._start_node, names, roles))
        first = names[0]
        self._timed("swarm init", lambda: self._init_swarm(first))
        self._timed("joins", lambda: self._join(names[1:]))
        self._timed("image load", lambda: self.load_images())
        self.ensure_edge_network()
        self.timings["total"] = time.monotonic() - started
        say(f"cluster up in {self.timings['total']:.1f} s: {self.describe_timings()}")

    def down(self) -> None:
        """Remove what this code made, by exact name: node containers, volumes, the bridge."""
        with _locked():
            self._reload()
            self._down()

    def _down(self) -> None:
        for domain in list(self.resolved):
            with contextlib.suppress(OSError):
                self.clear_resolution(domain)
        names = list(self.nodes)
        _parallel(self._remove_container, names)
        _parallel(self._remove_volume, [self.nodes[n].volume for n in names])
        self.nodes = {}
        self.save()
        if self.network:
            say(f"removing network {NETWORK}")
            run(["docker", "network", "rm", self.network], check=False)
            self.network = ""
        IMAGES_TAR.unlink(missing_ok=True)
        self.resolved = []
        self.save()
        STATE_FILE.unlink(missing_ok=True)

    def healthy(self) -> bool:
        """Every recorded node runs, answers, and the swarm sees it Ready."""
        if not self.nodes or not self.network:
            return False
        if run(["docker", "network", "inspect", self.network], check=False).returncode != 0:
            return False
        if not set(self.nodes) <= set(self.running()):
            return False
        try:
            seen = {n.hostname: n for n in self.swarm_nodes(timeout=15) if n.ready}
        except (RigError, RuntimeError):
            return False
        return set(self.nodes) <= set(seen)

    def describe_timings(self) -> str:
        return ", ".join(f"{k} {v:.1f} s" for k, v in self.timings.items())

    # --- driving nodes -------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        return list(self.nodes)

    def address(self, node: str) -> str:
        return self._record(node).address

    def env(self, node: str) -> dict[str, str]:
        """Environment for the host's docker CLI to drive `node`'s dockerd."""
        return {"DOCKER_HOST": self._record(node).docker_host}

    def docker(
        self, node: str, *args: str, env: Mapping[str, str] | None = None, check: bool = True
    ) -> str:
        """`docker ARGS` against `node`'s dockerd (local files, e.g. stack files, work)."""
        return stacks.docker(*args, env={**(env or {}), **self.env(node)}, check=check)

    def node_exec(self, node: str, *command: str, check: bool = True) -> str:
        """Run a command in the node container itself (not in one of its containers)."""
        return run(["docker", "exec", self._record(node).name, *command], check=check).stdout

    def manager(self, timeout: float = 60) -> str:
        """A running manager that answers swarm management calls (after a leader's death the
        others answer only once they have elected a new one: this waits for that)."""
        found: list[str] = []

        def answers() -> bool:
            running = set(self.running())
            for record in self.nodes.values():
                if record.name in running and self._manages(record.name):
                    found.append(record.name)
                    return True
            return False

        wait_until(answers, timeout, "a manager with a leader")
        return found[0]

    def swarm_nodes(self, timeout: float = 60) -> list[SwarmNode]:
        manager = self.manager(timeout)
        ids = self.docker(manager, "node", "ls", "-q").split()
        return [_swarm_node(n) for n in json.loads(self.docker(manager, "node", "inspect", *ids))]

    def swarm_node(self, node: str, timeout: float = 60) -> SwarmNode:
        """The live swarm entry of `node` (the newest if it joined more than once)."""
        for entry in sorted(self.swarm_nodes(timeout), key=lambda n: n.state != "ready"):
            if entry.hostname == node:
                return entry
        raise RigError(f"{node} is not in the swarm")

    def wait_ready(
        self, nodes: Iterable[str] | None = None, timeout: float = 90, state: str = "ready"
    ) -> float:
        """Wait until the swarm shows `nodes` (default all) in `state`; returns the wait."""
        wanted = set(self.nodes if nodes is None else nodes)
        started = time.monotonic()

        def reached() -> bool:
            try:
                entries = self.swarm_nodes(timeout=max(1.0, started + timeout - time.monotonic()))
            except (RigError, RuntimeError):
                return False
            seen = {n.hostname for n in entries if n.state == state}
            return wanted <= seen

        wait_until(reached, timeout, f"{sorted(wanted)} {state}")
        return time.monotonic() - started

    def task_nodes(self, service: str) -> list[str]:
        """Hostnames (= node names) of the nodes running a task of `service` now."""
        lines = self.docker(
            self.manager(),
            "service", "ps", service,
            "--filter", "desired-state=running",
            "--format", "{{.Node}}\t{{.CurrentState}}",
        ).splitlines()  # fmt: skip
        return sorted(
            {n for n, _, s in (ln.partition("\t") for ln in lines) if s.startswith("Running")}
        )

    # --- operations tests need ----------------------------------------------------------------

    def kill(self, node: str) -> None:
        """Kill the node as a power cut would: its dockerd and every task on it die at once."""
        run(["docker", "kill", self._record(node).name])

    def start(self, node: str, timeout: float = 60) -> None:
        """Start a killed node again; its swarm state is on its volume, so it rejoins alone."""
        record = self._record(node)
        run(["docker", "start", record.name])
        self._wait_dockerd(record, timeout)

    def drain(self, node: str) -> None:
        self.docker(self.manager(), "node", "update", "--availability", "drain", node)

    def activate(self, node: str) -> None:
        self.docker(self.manager(), "node", "update", "--availability", "active", node)

    def add_node(self, role: Role = "worker", timeout: float = 90) -> str:
        """Start a new node, load the images, join it; returns its name once it is Ready."""
        with _locked():
            self._reload()
            index = 1 + max((_index(n) for n in self.nodes), default=0)
            name = f"{NODE_PREFIX}{index}"
            self._start_node(name, role)
            self.load_images([name])
            self._join([name], timeout)
        return name

    def remove_node(self, node: str) -> None:
        """Take a node out of the swarm (demoted first if a manager), then remove it."""
        with _locked():
            self._reload()
            record = self._record(node)
            running = record.name in self.running()
            others = [n for n in self.nodes if n != node]
            if others:
                try:
                    entry = self.swarm_node(node, timeout=30)
                except RigError:
                    entry = None
                if entry is not None:
                    manager = self._other_manager(node)
                    if entry.role == "manager":
                        self.docker(manager, "node", "demote", entry.id)
                    if running:
                        self.docker(node, "swarm", "leave", "--force", check=False)
                    self.docker(manager, "node", "rm", "--force", entry.id)
            self._remove_container(node)
            self._remove_volume(record.volume)
            del self.nodes[node]
            self.save()

    # --- DNS for Pebble's validator -------------------------------------------------------

    def resolve_to_nodes(self, domain: str, nodes: Sequence[str] | None = None) -> list[str]:
        """Make challtestsrv (Pebble's DNS) answer `domain` with the nodes' addresses (default
        all nodes), so that Pebble's validator dials their port 80. Returns the addresses."""
        domain = domain.lower().rstrip(".")
        addresses = [self.address(n) for n in (nodes if nodes is not None else self.nodes)]
        # add-a appends to what is there: clear first, so that a call replaces.
        _challtestsrv("clear-a", {"host": domain})
        _challtestsrv("add-a", {"host": domain, "addresses": addresses})
        if domain not in self.resolved:
            self.resolved.append(domain)
            self.save()
        return addresses

    def clear_resolution(self, domain: str) -> None:
        """Back to challtestsrv's default answer (127.0.0.1) for `domain`."""
        domain = domain.lower().rstrip(".")
        _challtestsrv("clear-a", {"host": domain})
        if domain in self.resolved:
            self.resolved.remove(domain)
            self.save()

    # --- images and networks --------------------------------------------------------------

    def load_images(self, nodes: Sequence[str] | None = None) -> float:
        """Load every project image (rig.images.PROJECT_IMAGES, read now) and the base image
        into the nodes that lack the host's current version; returns the seconds it took."""
        from rig import images

        started = time.monotonic()
        tags = [images.BASE_IMAGE, *(tag for tag, *_ in images.PROJECT_IMAGES)]
        if any(not images.image_exists(tag) for tag in tags):
            say("building the project's images first")
            images.build_project_images()
        wanted = {tag: _image_id(tag, {}) for tag in tags}
        stale = [
            name
            for name in (nodes if nodes is not None else self.nodes)
            if any(_image_id(tag, self.env(name)) != i for tag, i in wanted.items())
        ]
        if not stale:
            return 0.0
        # One save for all nodes; the tags share the base's layers, so it is about one base.
        run(["docker", "save", "-o", str(IMAGES_TAR), *tags])
        saved = time.monotonic() - started
        try:
            _parallel(
                lambda n: self.docker(n, "load", "-q", "-i", str(IMAGES_TAR)),
                stale,
            )
        finally:
            IMAGES_TAR.unlink(missing_ok=True)
        took = time.monotonic() - started
        into = ", ".join(stale)
        say(f"loaded {len(tags)} images into {into} in {took:.1f} s (save {saved:.1f} s)")
        return took

    def ensure_edge_network(self) -> None:
        """The attachable overlay the edge stack expects (rig.stacks.EDGE_NETWORK)."""
        manager = self.manager()
        present = self.docker(manager, "network", "ls", "--format", "{{.Name}}").split()
        if stacks.EDGE_NETWORK not in present:
            self.docker(
                manager, "network", "create", "--driver", "overlay", "--attachable",
                stacks.EDGE_NETWORK,
            )  # fmt: skip

    # --- memory ---------------------------------------------------------------------------

    def rss_mib(self, node: str) -> float:
        """Resident memory of every process in the node (its dockerd, containerd, and tasks)."""
        lines = self.node_exec(node, "ps", "-e", "-o", "rss=").split()
        return sum(int(kb) for kb in lines) / 1024

    def memory_mib(self, node: str) -> float:
        """The node container's memory as `docker stats` counts it (RSS plus tmpfs, no page
        cache)."""
        usage = run(
            ["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", node]
        ).stdout.split("/")[0]
        return _mib(usage)

    # --- internals ------------------------------------------------------------------------

    def _reload(self) -> None:
        current = Cluster.load()
        self.network, self.nodes, self.resolved = current.network, current.nodes, current.resolved

    def _record(self, node: str) -> NodeRecord:
        try:
            return self.nodes[node]
        except KeyError:
            raise RigError(f"{node} is not a node of the rig's cluster ({self.names})") from None

    def _timed(self, what: str, step: Callable[[], object]) -> None:
        started = time.monotonic()
        step()
        self.timings[what] = time.monotonic() - started
        say(f"{what}: {self.timings[what]:.1f} s")

    def _create_network(self) -> None:
        existing = run(["docker", "network", "inspect", NETWORK], check=False)
        if existing.returncode == 0:
            raise RigError(
                f"a network {NETWORK} exists that this rig did not record: remove it by hand"
            )
        say(f"creating network {NETWORK} ({SUBNET})")
        self.network = run(
            ["docker", "network", "create", "--driver", "bridge", "--subnet", SUBNET,
             "--gateway", GATEWAY, "--label", LABEL, NETWORK]
        ).stdout.strip()  # fmt: skip
        self.save()

    def _start_node(self, name: str, role: Role) -> None:
        from rig.images import NODE

        if _containers_named(name, labelled=False):
            raise RigError(f"a container {name} exists that this rig did not record")
        address = f"{SUBNET.rsplit('.', 1)[0]}.{FIRST_HOST + _index(name)}"
        record = NodeRecord(name=name, address=address, volume=f"{name}-docker", role=role)
        # Recorded before it exists, so that `down` removes whatever part of it got made.
        with _SAVING:
            self.nodes[name] = record
            self.save()
        run(["docker", "volume", "create", "--label", LABEL, record.volume])
        run(
            ["docker", "run", "-d", "--name", name, "--hostname", name, "--label", LABEL,
             "--network", NETWORK, "--ip", address, *NODE_RUN_FLAGS,
             "-v", f"{record.volume}:/var/lib/docker", NODE.tag, "sh", "-c", ENTRYPOINT]
        )  # fmt: skip
        self._wait_dockerd(record)

    def _wait_dockerd(self, record: NodeRecord, timeout: float = 60) -> None:
        def answers() -> bool:
            if record.name not in self.running():
                logs = stacks.container_logs(record.name, tail="30")
                raise RigError(f"{record.name} stopped:\n{logs}")
            return _daemon_answers(self.env(record.name))

        wait_until(answers, timeout, f"dockerd in {record.name}")

    def _init_swarm(self, node: str) -> None:
        address = self.address(node)
        self.docker(
            node, "swarm", "init", "--advertise-addr", address,
            "--default-addr-pool", INNER_OVERLAY_POOL, "--default-addr-pool-mask-length", "24",
        )  # fmt: skip

    def _join(self, names: Sequence[str], timeout: float = 90) -> None:
        if not names:
            return
        manager = self.manager()
        tokens = {
            role: self.docker(manager, "swarm", "join-token", "-q", role).strip()
            for role in ("manager", "worker")
        }
        remote = f"{self.address(manager)}:2377"

        def join(name: str) -> None:
            record = self._record(name)
            self.docker(
                name, "swarm", "join", "--token", tokens[record.role],
                "--advertise-addr", record.address, remote,
            )  # fmt: skip

        # Managers one at a time: each raft membership change must commit before the next.
        for name in names:
            if self._record(name).role == "manager":
                join(name)
        _parallel(join, [n for n in names if self._record(n).role == "worker"])
        self.wait_ready(names, timeout)

    def _other_manager(self, node: str) -> str:
        for record in self.nodes.values():
            if record.name != node and self._manages(record.name):
                return record.name
        raise RigError(f"no manager other than {node} answers")

    def _manages(self, node: str) -> bool:
        answer = run(
            ["docker", "info", "--format", "{{.Swarm.ControlAvailable}}"],
            check=False,
            env=self.env(node),
        )
        if answer.returncode != 0 or answer.stdout.strip() != "true":
            return False
        return run(["docker", "node", "ls", "-q"], check=False, env=self.env(node)).returncode == 0

    def running(self) -> list[str]:
        """The node containers running now."""
        return run(
            ["docker", "ps", "--filter", f"label={LABEL}", "--format", "{{.Names}}"]
        ).stdout.split()

    def _remove_container(self, node: str) -> None:
        for container in _containers_named(node, labelled=True):
            say(f"removing {node}")
            run(["docker", "rm", "--force", "--volumes", container])

    def _remove_volume(self, volume: str) -> None:
        found = run(
            ["docker", "volume", "ls", "-q", "--filter", f"name=^{volume}$", "--filter",
             f"label={LABEL}"]
        ).stdout.split()  # fmt: skip
        if volume in found:
            run(["docker", "volume", "rm", volume])


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One cluster change at a time across processes (a test session and a benchmark)."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with LOCK_FILE.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _parallel(function: Callable[..., T], *arguments: Sequence[object]) -> list[T]:
    """Call `function` over zipped arguments in threads; the first error is raised."""
    count = len(arguments[0]) if arguments else 0
    if count == 0:
        return []
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(function, *arguments))


def _containers_named(name: str, labelled: bool) -> list[str]:
    filters = ["--filter", f"name=^/{name}$"]
    if labelled:
        filters += ["--filter", f"label={LABEL}"]
    return run(["docker", "ps", "--all", "--quiet", *filters]).stdout.split()


def _daemon_answers(env: Mapping[str, str]) -> bool:
    return run(["docker", "version", "--format", "{{.Server.Version}}"], False, env).returncode == 0


def _image_id(tag: str, env: Mapping[str, str]) -> str:
    found = run(["docker", "image", "inspect", "--format", "{{.Id}}", tag], False, env)
    return found.stdout.strip() if found.returncode == 0 else ""


def _index(name: str) -> int:
    return int(name.removeprefix(NODE_PREFIX))


def _swarm_node(data: dict[str, object]) -> SwarmNode:
    def get(*path: str) -> str:
        value: object = data
        for key in path:
            value = value.get(key, "") if isinstance(value, dict) else ""
        return str(value)

    return SwarmNode(
        id=get("ID"),
        hostname=get("Description", "Hostname"),
        address=get("Status", "Addr"),
        role=get("Spec", "Role"),
        state=get("Status", "State"),
        availability=get("Spec", "Availability"),
        leader=get("ManagerStatus", "Leader") == "True",
        reachability=get("ManagerStatus", "Reachability"),
    )


def _challtestsrv(path: str, body: Mapping[str, object]) -> None:
    """A call to pebble-challtestsrv's management API (POST JSON, 200 with an empty body)."""
    host, port = CHALLTESTSRV_MANAGEMENT
    request = urllib.request.Request(
        f"http://{host}:{port}/{path}", data=json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        if response.status != 200:
            raise RigError(f"challtestsrv /{path} answered {response.status}")


_UNITS = {"B": 1 / 2**20, "KiB": 1 / 1024, "MiB": 1.0, "GiB": 1024.0, "kB": 1 / 1024}


def _mib(text: str) -> float:
    match = re.fullmatch(r"\s*([\d.]+)\s*([A-Za-z]+)\s*", text)
    if not match or match.group(2) not in _UNITS:
        raise RigError(f"unexpected memory figure {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def status_lines(cluster: Cluster) -> list[str]:
    """One line per node: swarm role, state, availability, address, memory."""
    lines = []
    entries = {n.hostname: n for n in cluster.swarm_nodes()}
    running = set(cluster.running())
    for name, record in cluster.nodes.items():
        entry = entries.get(name)
        if entry is None:
            lines.append(f"{name} {record.address} not in the swarm")
            continue
        role = "leader" if entry.leader else entry.role
        memory = (
            f"RSS {cluster.rss_mib(name):.0f} MiB, stats {cluster.memory_mib(name):.0f} MiB"
            if name in running
            else "stopped"
        )
        lines.append(f"{name} {record.address} {role} {entry.state} {entry.availability}; {memory}")
    return lines


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit("use `python3 -m rig cluster up|down|status`")
