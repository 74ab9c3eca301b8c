"""Issue 25, item 5, on the real swarm: a chain config and key secret that anyone made with
certbotless's labels (as a tenant's stack file can) are not certbotless's.

A Reconciler runs here in the test process, with a store key of the test's own, against a nginx
service of the test's own (host port 8445) and the real Pebble. The planted pair is a
self-signed ten-year certificate for the same name, newer than the real one, carrying the real
chain's MAC label copied over: without authentication it would be the version in use.
"""

import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certbotless.acme.challenges import TokenStore
from certbotless.acme.http01 import EdgeHttp01Solver
from certbotless.acme.issuer import AcmeIssuer
from certbotless.acme.keys import load_account_key
from certbotless.app import App
from certbotless.edge.mounts import NGINX_CONF_TARGET
from certbotless.edge.render import render_nginx_conf
from certbotless.edge.rollout import ServedCertificates
from certbotless.model import CertSpec, IssuedCert, PassRequest, StoredCert
from certbotless.settings import Settings
from certbotless.swarm.api import Swarm
from certbotless.swarm.authenticity import MAC, NOT_MADE_HERE
from certbotless.swarm.store import KIND, certificate_labels, latest_per_name, serial_hex
from rig.pebble import PebbleServer
from rig.stacks import EDGE_NETWORK, docker, ensure_edge_network

pytestmark = pytest.mark.rig

SERVICE = "cbl-forgetest"
APP = "cbl-forgetest-app"
PORT = 8445
HOST = "forge.example.test"


@pytest.fixture(scope="module", autouse=True)
def swarm_without_leftovers() -> None:
    """In place of conftest's: this module removes only what it made, so the swarm's other
    objects (another run's) stay."""


@dataclass(frozen=True)
class Forged:
    config_id: str
    secret_id: str
    serial: str


@pytest.fixture(scope="module")
def edge_app(
    pebble_for_acme: PebbleServer, acme_tokens: TokenStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[App]:
    before = _object_ids()
    keys = tmp_path_factory.mktemp("keys")
    (keys / "certbotless-store-key").write_bytes(secrets.token_bytes(32))
    settings = Settings(
        nginx_service=SERVICE,
        self_check=False,
        front_subnets=(),  # no L4 front: the test's TLS client speaks to nginx directly
        lock_file=keys / "pass.lock",
        challenge_dir=acme_tokens.directory,  # where the tests' responder serves tokens from
        acme_directory=pebble_for_acme.directory_url,
        account_key_file=keys / "certbotless-account-key",  # the store key is beside it
    )
    issuer = AcmeIssuer(pebble_for_acme.directory_url, load_account_key(None),
                        EdgeHttp01Solver(acme_tokens),
                        ca_bundle=Path(pebble_for_acme.ca_bundle))  # fmt: skip
    app = App(settings, Swarm(), issuer)
    assert app.store.objects.key is not None, "the App reads the key beside the account key"
    for name in (SERVICE, APP):
        docker("service", "rm", name, check=False)
    ensure_edge_network()
    docker("service", "create", "--detach", "--name", APP, "--network", EDGE_NETWORK,
           "--label", f"certbotless.domains={HOST}", "--label", "certbotless.port=8000",
           "certbotless-demo-app:local")  # fmt: skip
    files = render_nginx_conf((), {}, settings.responder_upstream, settings.certs_dir)
    conf, _ = app.store.ensure_nginx_confs(files)[NGINX_CONF_TARGET]
    docker(
        "service", "create", "--detach", "--name", SERVICE, "--network", EDGE_NETWORK,
        "--publish", f"mode=host,target=443,published={PORT}",
        "--config", f"source={conf},target=/etc/nginx/nginx.conf,mode=0444",
        "--update-order", "stop-first", "--update-monitor", "1s",
        "--update-failure-action", "rollback", "--stop-signal", "SIGQUIT",
        "certbotless-nginx:local",
    )  # fmt: skip
    _wait(lambda: "Running" in docker("service", "ps", SERVICE, "--format", "{{.CurrentState}}"))
    yield app
    for name in (SERVICE, APP):
        docker("service", "rm", name, check=False)
    task = f"label=com.docker.swarm.service.name={SERVICE}"
    _wait(lambda: not docker("ps", "-q", "--filter", task).strip())
    for kind, ids in _object_ids().items():
        made = sorted(ids - before[kind])
        if made:
            docker(kind, "rm", *made, check=False)


def test_a_planted_pair_is_neither_served_nor_collected_and_is_reported(
    edge_app: App, figure: Callable[[str], None]
) -> None:
    app, served = edge_app, ServedCertificates("127.0.0.1", PORT)
    first = app.reconciler.run_pass(PassRequest(force=True, progress=print))
    assert HOST in first.issued and first.rolled and first.rollout_error is None, first
    real = latest_per_name(app.store.inventory(), datetime.now(UTC))[HOST]
    served.wait_until_serving({HOST: real.serial}, time.monotonic() + 60)

    forged = plant_pair(real)
    after = app.reconciler.run_pass(PassRequest(progress=print))
    assert after.rollout_error is None and not after.rolled, after
    # (The swarm may hold other runs' objects, unsigned: reported too.)
    planted = (forged.config_id, forged.secret_id)
    reported = [p.message for p in after.problems if any(i in p.message for i in planted)]
    assert len(reported) == 2 and all(NOT_MADE_HERE in m for m in reported), after.problems

    assert set(served.serials(HOST).values()) == {real.serial}, "still the real one"
    mounted = Swarm().mounted_object_ids(SERVICE)
    assert not {forged.config_id, forged.secret_id} & mounted
    listed = {row.name: row.cert.serial if row.cert else "" for row in app.listing()}
    assert listed[HOST] == real.serial
    page = [p.message for s in app.overview().routers.problems for p in s.problems]
    assert sorted(m for m in page if any(i in m for i in planted)) == sorted(reported)

    removed = app.reconciler.collect_garbage(dry_run=False)
    assert not {forged.config_id, forged.secret_id} & {r.target.object_id for r in removed}
    docker("config", "inspect", forged.config_id)  # still there: not certbotless's to remove
    docker("secret", "inspect", forged.secret_id)
    print(f"served serial before {real.serial}, after {served.serials(HOST)}; planted "
          f"{forged.serial}; reported: {reported}")  # fmt: skip
    figure(f"planted chain+key (serial {forged.serial}, copied MAC): served serial "
           f"{real.serial} before and after; 2 objects reported, 0 removed by gc")  # fmt: skip


def plant_pair(real: StoredCert) -> Forged:
    """What a stack file's `configs:`/`secrets:` can make: certbotless's labels, the real
    chain's MAC label copied, a self-signed certificate for the same name valid ten years."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    chain = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())  # fmt: skip
    name = f"cbl-forgetest-planted-{secrets.token_hex(3)}"
    labels = certificate_labels(IssuedCert(CertSpec(HOST, (HOST,)), chain, key_pem), name)
    labels[MAC] = Swarm().api.inspect_config(real.config_id)["Spec"]["Labels"][MAC]
    api = Swarm().api
    secret = api.create_secret(name, key_pem, labels={**labels, KIND: "key"})
    config = api.create_config(name, chain, labels={**labels, KIND: "chain"})
    return Forged(config["ID"], secret["ID"], serial_hex(cert.serial_number))


def _object_ids() -> dict[str, set[str]]:
    return {kind: set(docker(kind, "ls", "-q").split()) for kind in ("config", "secret")}


def _wait(done: Callable[[], bool], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, docker("service", "ps", "--no-trunc", SERVICE)
        time.sleep(0.5)
