"""Pebble, the local ACME CA, with pebble-challtestsrv as its DNS."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from rig.state import STATE_DIR, StartedRecord, run, say, spawn, wait_until

DNS_ADDRESS = "127.0.0.1:8053"
CHALLTESTSRV_MANAGEMENT = ("127.0.0.1", 8055)
TLS_DIR = STATE_DIR / "pebble-tls"


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def listener_certificates(addresses: list[str], tls_dir: Path = TLS_DIR) -> Path:
    """A CA and a listener certificate naming every address clients use, in `tls_dir` (the
    rig's, or a test's own); returns the CA file."""
    tls_dir.mkdir(parents=True, exist_ok=True)
    names = ["DNS:localhost", *(f"IP:{a}" for a in sorted(set(addresses)))]
    san = "subjectAltName=" + ",".join(names)
    ca, key, cert = tls_dir / "ca.pem", tls_dir / "listener.key", tls_dir / "listener.pem"
    stamp = tls_dir / "san.txt"
    if ca.exists() and cert.exists() and stamp.exists() and stamp.read_text() == san:
        return ca
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run(
        [
            "openssl",
            "req",
            "-x509",
            *ec,
            "-days",
            "3650",
            "-subj",
            "/CN=certbotless rig CA",
            "-keyout",
            str(tls_dir / "ca.key"),
            "-out",
            str(ca),
        ]
    )
    run(
        [
            "openssl",
            "req",
            *ec,
            "-subj",
            "/CN=pebble",
            "-keyout",
            str(key),
            "-out",
            str(tls_dir / "listener.csr"),
        ]
    )
    (tls_dir / "ext.cnf").write_text(san + "\n")
    run(
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            str(tls_dir / "listener.csr"),
            "-CA",
            str(ca),
            "-CAkey",
            str(tls_dir / "ca.key"),
            "-CAcreateserial",
            "-days",
            "3650",
            "-extfile",
            str(tls_dir / "ext.cnf"),
            "-out",
            str(cert),
        ]
    )
    stamp.write_text(san)
    return ca


def ensure_challtestsrv(record: StartedRecord) -> None:
    """Pebble's DNS: every name is 127.0.0.1, where nginx's host-mode port 80 answers."""
    _ensure_fake_dns(record, "challtestsrv", "127.0.0.1", DNS_ADDRESS, CHALLTESTSRV_MANAGEMENT)


def ensure_container_dns(record: StartedRecord, gateway: str) -> None:
    """DNS for the sidecar's container (`dns:` in stacks/test-pebble.yml): every name is the
    docker_gwbridge gateway, where the host's port 80 answers too. So `certbotless doctor`
    reaches the edge from outside, by name, as the CA does in production."""
    _ensure_fake_dns(record, "container-dns", gateway, f"{gateway}:53", (gateway, 8056))


def _ensure_fake_dns(
    record: StartedRecord, name: str, answer: str, listen: str, management: tuple[str, int]
) -> None:
    if port_open(*management):
        say(f"{name} already running")
        return
    say(f"starting {name} (every name resolves to {answer})")
    process = spawn(
        name,
        [
            "pebble-challtestsrv",
            "-defaultIPv4",
            answer,
            # No AAAA answers: the edge listens on IPv4 only.
            "-defaultIPv6",
            "",
            "-dns01",
            listen,
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
            "-management",
            "{}:{}".format(*management),
        ],
    )
    record.add(name, process.pid)
    wait_until(lambda: port_open(*management), 30, name)


@dataclass
class PebbleServer:
    """One Pebble process. The rig runs one on the docker_gwbridge address; tests start others."""

    name: str
    host: str
    ca_bundle: Path
    port: int = 14000
    management_port: int = 15000
    http_port: int = 80
    validity_seconds: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    config: dict[str, object] = field(default_factory=dict)  # extra Pebble config fields
    # Where it resolves names to validate (and reads DNS-01 records): challtestsrv in the rig,
    # a test's own BIND for DNS-01.
    dns_server: str = DNS_ADDRESS
    process: subprocess.Popen[bytes] | None = None

    @property
    def directory_url(self) -> str:
        return f"https://{self.host}:{self.port}/dir"

    def answers(self) -> bool:
        try:
            self._get(self.directory_url)
        except OSError:
            return False
        return True

    def start(self) -> int:
        """Start it and return its PID."""
        tls = self.ca_bundle.parent
        config: dict[str, object] = {
            "listenAddress": f"{self.host}:{self.port}",
            "managementListenAddress": f"{self.host}:{self.management_port}",
            "certificate": str(tls / "listener.pem"),
            "privateKey": str(tls / "listener.key"),
            "httpPort": self.http_port,
            "tlsPort": 443,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
        if self.validity_seconds is not None:
            config["certificateValidityPeriod"] = self.validity_seconds
        config.update(self.config)
        config_file = STATE_DIR / f"{self.name}.json"
        config_file.write_text(json.dumps({"pebble": config}, indent=2))
        self.process = spawn(
            self.name,
            ["pebble", "-config", str(config_file), "-dnsserver", self.dns_server],
            env={"PEBBLE_VA_NOSLEEP": "1", **self.env},
        )
        wait_until(self.answers, 30, self.name)
        return self.process.pid

    def stop(self) -> None:
        """Stop the process this object started (never one it merely found running)."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process = None

    def root_pem(self, index: int = 0) -> str:
        """A root of the certificates this Pebble issues (1… with alternate roots); new on every
        start."""
        return self._get(f"https://{self.host}:{self.management_port}/roots/{index}")

    def _get(self, url: str) -> str:
        context = ssl.create_default_context(cafile=str(self.ca_bundle))
        with urllib.request.urlopen(url, context=context, timeout=5) as response:
            return str(response.read().decode())


def current_pebble(rig_env: dict[str, str]) -> PebbleServer:
    """The rig's running Pebble, as `rig up` described it."""
    return PebbleServer(
        "pebble", host=rig_env["CBL_RIG_GATEWAY"], ca_bundle=Path(rig_env["CBL_RIG_CA_BUNDLE"])
    )
