"""Rollout and inventory benchmark on the rig's real swarm.

Rollout: an nginx service with host-mode ports (8443), a demo app behind it, and a request loop
(new TLS connection per request, SNI and Host set) running all along. Each roll swaps in fresh
certificates with `roll_service`; measured per roll: update call → new serial served, update call
→ Swarm's `completed` plus the served check (what `roll_service` waits for), failed requests, and
the outage (the longest stretch with no successful request). The peer, in the same run, is the
naive roll: the same service with the engine's default update settings and stop signal.

Inventory: `CertStore.inventory()` over `--inventory` stored certificates (default 1000) created
in the swarm for the run and removed after.
"""

from __future__ import annotations

import argparse
import http.client
import socket
import ssl
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from certbotless.acme.challenges import ChallengeResponder, TokenStore
from certbotless.acme.keys import load_account_key, private_key_pem
from certbotless.acme.orders import AcmeIssuer
from certbotless.edge import render_nginx_conf
from certbotless.model import CertSpec, IssuedCert, Route, StoredCert
from certbotless.reconcile import edge_references
from certbotless.rollout import ServedCertificates, roll_service
from certbotless.store import CertStore
from certbotless.swarm import Swarm
from rig.pebble import PebbleServer
from rig.stacks import EDGE_NETWORK, docker, ensure_edge_network
from rig.state import read_env

HOST = "rollout.bench.test"
EDGE = "cbl-bench-edge"
APP = "cbl-bench-app"
HTTPS_PORT = 8443
PEBBLE_PORT = 14210
HTTP01_PORT = 5004
# Short, so that a connection attempt swallowed while the port has no container (SYN dropped)
# does not stretch the measured outage by the client's own wait.
CONNECT_TIMEOUT = 0.2
TARGET_CONVERGED = 6.0
TARGET_OUTAGE = 0.5
TARGET_INVENTORY = 2.0

Say = Callable[[str], None]

# The edge's settings in stacks/edge.yml, and what the engine does by default.
TUNED = [
    "--stop-signal", "SIGQUIT",
    "--update-order", "stop-first", "--update-delay", "0s", "--update-monitor", "1s",
    "--update-failure-action", "rollback", "--update-max-failure-ratio", "0",
    "--rollback-order", "stop-first", "--rollback-parallelism", "0",
    "--rollback-monitor", "1s", "--rollback-failure-action", "pause",
]  # fmt: skip
NAIVE: list[str] = []


@dataclass
class RollFigures:
    served: float  # update call → every task serves the new serial
    converged: float  # update call → roll_service returned (Swarm completed + served check)
    failed_requests: int
    requests: int
    outage: float  # longest stretch without a successful request


@dataclass
class RequestLoop:
    """Requests against the edge in a thread: (start time, ok) for each."""

    results: list[tuple[float, float, bool]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
        while not self.stop.is_set():
            started = time.monotonic()
            ok = False
            with (
                suppress(OSError, http.client.HTTPException),
                socket.create_connection(("127.0.0.1", HTTPS_PORT), timeout=CONNECT_TIMEOUT) as raw,
                tls.wrap_socket(raw, server_hostname=HOST) as conn,
            ):
                request = f"GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"
                conn.sendall(request.encode())
                response = http.client.HTTPResponse(conn)
                response.begin()
                ok = response.status == 200
            self.results.append((started, time.monotonic(), ok))
            if not ok:
                time.sleep(0.01)

    def between(self, start: float, end: float) -> list[tuple[float, float, bool]]:
        return [r for r in self.results if start <= r[0] <= end]


def outage(results: list[tuple[float, float, bool]]) -> float:
    """Longest time between the end of one successful request and the end of the next one."""
    longest, last_ok = 0.0, None
    for _, ended, ok in results:
        if ok:
            if last_ok is not None:
                longest = max(longest, ended - last_ok)
            last_ok = ended
    return longest


@contextmanager
def edge_service(store: CertStore, cert: StoredCert, settings: list[str]) -> Iterator[None]:
    docker("service", "rm", EDGE, check=False)
    wait_gone(EDGE)
    routes = [Route(APP, (HOST,), 8000)]
    current = {cert.name: cert}
    conf = store.ensure_nginx_conf(render_nginx_conf(routes, current, "x:1", "/etc/nginx/certs"))
    refs = edge_references(routes, current, conf, "/etc/nginx/certs")
    mounts = []
    for ref in refs:
        mounts += [
            f"--{ref.kind}",
            f"source={ref.object_name},target={ref.target},mode=0{ref.mode:o}",
        ]
    docker(
        "service", "create", "--detach", "--name", EDGE, "--network", EDGE_NETWORK,
        "--publish", f"mode=host,target=443,published={HTTPS_PORT}",
        *mounts, *settings, "certbotless-nginx:local",
    )  # fmt: skip
    try:
        ServedCertificates("127.0.0.1", HTTPS_PORT).wait_until_serving(
            {HOST: cert.serial}, time.monotonic() + 60
        )
        yield
    finally:
        docker("service", "rm", EDGE, check=False)
        wait_gone(EDGE)


def wait_gone(service: str) -> None:
    deadline = time.monotonic() + 60
    while docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={service}").strip():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{service} still has containers after 60 s")
        time.sleep(0.5)


def measure_rolls(
    store: CertStore, issuer: AcmeIssuer, settings: list[str], rolls: int, say: Say, label: str
) -> list[RollFigures]:
    figures: list[RollFigures] = []
    spec = CertSpec(HOST, (HOST,))
    first = store.save(issuer.issue(spec))
    routes = [Route(APP, (HOST,), 8000)]
    with edge_service(store, first, settings):
        loop = RequestLoop()
        thread = threading.Thread(target=loop.run, daemon=True)
        thread.start()
        time.sleep(1)
        try:
            for index in range(rolls):
                fresh = store.save(issuer.issue(spec))
                current = {fresh.name: fresh}
                conf = store.ensure_nginx_conf(
                    render_nginx_conf(routes, current, "x:1", "/etc/nginx/certs")
                )
                wanted = edge_references(routes, current, conf, "/etc/nginx/certs")
                served_at: list[float] = []
                watcher = threading.Thread(
                    target=watch_serial, args=(fresh.serial, served_at), daemon=True
                )
                started = time.monotonic()
                watcher.start()
                roll_service(
                    Swarm(), EDGE, wanted, 120, lambda _m: None,
                    ServedCertificates("127.0.0.1", HTTPS_PORT),
                )  # fmt: skip
                converged = time.monotonic() - started
                watcher.join(timeout=60)
                time.sleep(1)  # let the loop see the settled edge
                window = loop.between(started - 0.5, time.monotonic())
                figure = RollFigures(
                    served=(served_at[0] - started) if served_at else float("nan"),
                    converged=converged,
                    failed_requests=sum(not ok for _, _, ok in window),
                    requests=len(window),
                    outage=outage(window),
                )
                figures.append(figure)
                say(
                    f"{label} roll {index + 1}/{rolls}: served {figure.served:.2f} s, "
                    f"converged {figure.converged:.2f} s, failed {figure.failed_requests}/"
                    f"{figure.requests} requests, outage {figure.outage:.2f} s"
                )
        finally:
            loop.stop.set()
            thread.join()
    return figures


def watch_serial(serial: str, served_at: list[float]) -> None:
    check = ServedCertificates("127.0.0.1", HTTPS_PORT, timeout=1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if set(check.serials(HOST).values()) == {serial}:
            served_at.append(time.monotonic())
            return
        time.sleep(0.05)


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rolls", type=int, default=5, help="rolls per configuration")
    parser.add_argument("--inventory", type=int, default=1000, help="certificates to list")
    args = parser.parse_args()

    def say(message: str) -> None:
        print(message, flush=True)

    env = read_env()
    store = CertStore(Swarm())
    ensure_edge_network()
    pebble = PebbleServer(
        "pebble-bench-rollout", host="127.0.0.1", ca_bundle=Path(env["CBL_RIG_CA_BUNDLE"]),
        port=PEBBLE_PORT, management_port=PEBBLE_PORT + 1000, http_port=HTTP01_PORT,
    )  # fmt: skip
    tokens = TokenStore(Path("/tmp/cbl-bench-rollout-tokens"))
    responder = ChallengeResponder(tokens, "127.0.0.1", HTTP01_PORT)
    pebble.start()
    responder.start()
    docker("service", "rm", APP, check=False)
    docker(
        "service", "create", "--detach", "--name", APP, "--network", EDGE_NETWORK,
        "--endpoint-mode", "dnsrr", "certbotless-demo-app:local",
    )  # fmt: skip
    try:
        issuer = AcmeIssuer(
            pebble.directory_url, load_account_key(None), tokens, ca_bundle=pebble.ca_bundle
        )
        naive = measure_rolls(store, issuer, NAIVE, args.rolls, say, "naive")
        tuned = measure_rolls(store, issuer, TUNED, args.rolls, say, "certbotless")
        inventory_seconds, listed = measure_inventory(store, args.inventory, say)
    finally:
        docker("service", "rm", APP, check=False)
        responder.stop()
        pebble.stop()

    def median(figures: list[RollFigures], field_name: str) -> float:
        return statistics.median(float(getattr(f, field_name)) for f in figures)

    print()
    print(f"{'roll':<28} {'served (s)':>10} {'converged (s)':>14} {'failed req':>10} "
          f"{'outage (s)':>10}")  # fmt: skip
    for label, figures in (("certbotless (edge.yml)", tuned), ("naive (engine defaults)", naive)):
        print(
            f"{label:<28} {median(figures, 'served'):>10.2f} {median(figures, 'converged'):>14.2f}"
            f" {median(figures, 'failed_requests'):>10.0f} {median(figures, 'outage'):>10.2f}"
        )
    ratio = median(naive, "converged") / median(tuned, "converged")
    print(f"medians of {args.rolls} rolls each; naive/certbotless convergence: {ratio:.1f}x")
    print(f"inventory of {listed} stored certificates: {inventory_seconds:.2f} s (median of 3)")
    missed = []
    if median(tuned, "converged") > TARGET_CONVERGED:
        missed.append(f"converged > {TARGET_CONVERGED} s")
    if median(tuned, "outage") > TARGET_OUTAGE:
        missed.append(f"outage > {TARGET_OUTAGE} s")
    if inventory_seconds > TARGET_INVENTORY:
        missed.append(f"inventory > {TARGET_INVENTORY} s")
    print("targets missed: " + ", ".join(missed) if missed else "all targets met")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
