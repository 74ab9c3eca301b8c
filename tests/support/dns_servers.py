"""Real authoritative DNS servers for the DNS-01 tests, each in its own temporary directory on
loopback, on ports chosen free at run time, stopped by whoever started them.

- BIND 9 (`named`) on 127.0.0.1: primary for the zones it is given, updated with TSIG, and
  recursive for loopback clients (Pebble asks it, and a CNAME out of its zones is followed),
  with a local root zone (nothing leaves the machine) and forward zones to PowerDNS.
- PowerDNS (`pdns_server`, SQLite backend) on 127.0.0.2 and 127.0.0.3, its HTTP API on
  127.0.0.1, for dns-lexicon's PowerDNS provider.

Both answer DNS on the same port (an NS record carries no port: DnsLookup asks every name
server on one port), on different loopback addresses.
"""

from __future__ import annotations

import base64
import secrets
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import dns.message
import dns.query
import dns.rcode

BIND_ADDRESS = "127.0.0.1"
PDNS_ADDRESSES = ("127.0.0.2", "127.0.0.3")
TSIG_KEY_NAME = "certbotless-test"
PDNS_SCHEMA = Path("/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql")


def free_port(addresses: tuple[str, ...]) -> int:
    """A port free for TCP and UDP on every address in `addresses`."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((addresses[0], 0))
            port = int(probe.getsockname()[1])
        if all(_free(address, port) for address in addresses):
            return port
    raise RuntimeError(f"no port free on all of {addresses}")


def _free(address: str, port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind((address, port))
            except OSError:
                return False
    return True


def _answers(address: str, port: int, zone: str) -> bool:
    try:
        response = dns.query.udp(dns.message.make_query(zone, "SOA"), address, 1, port)
    except (OSError, dns.exception.DNSException):
        return False
    return response.rcode() == dns.rcode.NOERROR and bool(response.answer)


def _wait_for(
    process: subprocess.Popen[bytes], address: str, port: int, zone: str, log: Path
) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{zone}'s server exited: {log.read_text()[-3000:]}")
        if _answers(address, port, zone):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{zone}'s server does not answer: {log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Zone:
    """A zone's name (no trailing dot) and its records, as zone-file lines relative to it."""

    name: str
    name_servers: tuple[tuple[str, str], ...]  # (host name, address)
    records: tuple[str, ...] = ()

    def zone_file(self) -> str:
        first = self.name_servers[0][0]
        lines = [
            "$TTL 60",
            f"@ IN SOA {first}. hostmaster.{self.name}. 1 60 60 600 60",
            *(f"@ IN NS {host}." for host, _ in self.name_servers),
            *(f"{host}. IN A {address}" for host, address in self.name_servers
              if host.endswith(self.name)),
            *self.records,
        ]  # fmt: skip
        return "\n".join(lines) + "\n"


@dataclass
class BindServer:
    directory: Path
    port: int
    zones: list[Zone]
    forward: dict[str, tuple[str, int]] = field(default_factory=dict)  # zone → server
    key_secret: str = field(
        default_factory=lambda: base64.b64encode(secrets.token_bytes(32)).decode()
    )
    listen: str = BIND_ADDRESS  # the swarm test's is the gateway, which containers reach
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.listen}:{self.port}"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        # Forwarding a name below a zone BIND is authoritative for needs a delegation there.
        delegations = "".join(
            f"{name}. IN NS ns.{name}.\nns.{name}. IN A {address}\n"
            for name, (address, _) in self.forward.items()
        )
        (self.directory / "root.zone").write_text(
            "$TTL 60\n@ IN SOA root. hostmaster.root. 1 60 60 600 60\n@ IN NS root.\n"
            f"root. IN A {self.listen}\n{delegations}"
        )
        zones = [f'zone "." {{ type primary; file "{self.directory}/root.zone"; }};']
        for zone in self.zones:
            (self.directory / f"{zone.name}.zone").write_text(zone.zone_file())
            zones.append(
                f'zone "{zone.name}" {{ type primary; file "{self.directory}/{zone.name}.zone"; '
                f"update-policy {{ grant {TSIG_KEY_NAME} zonesub TXT; }}; }};"
            )
        for name, (address, port) in self.forward.items():
            zones.append(
                f'zone "{name}" {{ type forward; forward only; '
                f"forwarders {{ {address} port {port}; }}; }};"
            )
        conf = self.directory / "named.conf"
        conf.write_text(
            f"""options {{
    directory "{self.directory}";
    pid-file "{self.directory}/named.pid";
    session-keyfile "{self.directory}/session.key";
    managed-keys-directory "{self.directory}";
    listen-on port {self.port} {{ {self.listen}; }};
    listen-on-v6 {{ none; }};
    recursion yes;
    allow-recursion {{ 127.0.0.0/8; {self.listen}/32; }};
    dnssec-validation no;
    notify no;
    max-cache-ttl 1;
    max-ncache-ttl 1;
}};
controls {{ }};
key "{TSIG_KEY_NAME}" {{ algorithm hmac-sha256; secret "{self.key_secret}"; }};
{chr(10).join(zones)}
"""
        )
        log = self.directory / "named.log"
        self.process = subprocess.Popen(
            ["named", "-g", "-4", "-c", str(conf)],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        _wait_for(self.process, self.listen, self.port, self.zones[0].name, log)

    def stop(self) -> None:
        _stop(self.process)
        self.process = None


@dataclass
class PowerDnsServer:
    directory: Path
    port: int
    api_port: int
    zones: list[Zone]
    api_key: str = field(default_factory=lambda: secrets.token_hex(16))
    process: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        database = self.directory / "pdns.sqlite3"
        subprocess.run(
            ["sqlite3", str(database)], input=PDNS_SCHEMA.read_bytes(), check=True,
            capture_output=True,
        )  # fmt: skip
        (self.directory / "pdns.conf").write_text(
            "\n".join([
                "launch=gsqlite3",
                f"gsqlite3-database={database}",
                f"local-address={', '.join(PDNS_ADDRESSES)}",
                f"local-port={self.port}",
                "api=yes",
                f"api-key={self.api_key}",
                "webserver=yes",
                "webserver-address=127.0.0.1",
                f"webserver-port={self.api_port}",
                "webserver-allow-from=127.0.0.0/8",
                "daemon=no",
                "guardian=no",
                f"socket-dir={self.directory}",
                "disable-syslog=yes",
                "cache-ttl=0",
                "query-cache-ttl=0",
                "negquery-cache-ttl=0",
                "zone-cache-refresh-interval=0",
                "loglevel=4",
            ]) + "\n"
        )  # fmt: skip
        for zone in self.zones:
            zone_file = self.directory / f"{zone.name}.zone"
            zone_file.write_text(zone.zone_file())
            self._pdnsutil("load-zone", zone.name, str(zone_file))
        log = self.directory / "pdns.log"
        self.process = subprocess.Popen(
            ["pdns_server", f"--config-dir={self.directory}"],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        _wait_for(self.process, PDNS_ADDRESSES[0], self.port, self.zones[0].name, log)

    def _pdnsutil(self, *args: str) -> None:
        subprocess.run(
            ["pdnsutil", f"--config-dir={self.directory}", *args], check=True, capture_output=True
        )

    def stop(self) -> None:
        _stop(self.process)
        self.process = None
