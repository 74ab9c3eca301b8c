"""A configuration far over one Swarm config (issue 14, item 3): 5,000 routes on 2,500 hosts
render into files of at most MAX_FILE_BYTES, pass the sidecar's `nginx -t`, are stored as
content-addressed configs and roll onto a real nginx service in one update; a change to one
route then rolls one changed file.

A test nginx service of its own (host ports 8083/8463, no `certbotless.edge` label), as in
test_store_rollout.py. The certificates are self-signed (100 of them, 25 hosts each): what is
tested is the size of the configuration, not the CA.
"""

import datetime
import json
import time
from collections.abc import Callable, Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from certbotless.acme.keys import private_key_pem
from certbotless.edge.deployer import edge_references
from certbotless.edge.mounts import NGINX_CONF_TARGET
from certbotless.edge.render import MAX_FILE_BYTES, render_nginx_conf
from certbotless.edge.rollout import ServedCertificates, roll_service
from certbotless.edge.validation import validate_nginx_conf
from certbotless.model import CertSpec, IssuedCert, Route, StoredCert
from certbotless.swarm.api import Swarm
from certbotless.swarm.store import CertStore
from rig.stacks import EDGE_NETWORK, docker, ensure_edge_network

pytestmark = pytest.mark.rig

SERVICE = "cbl-largetest"
HTTPS_PORT = 8463
HTTP_PORT = 8083
ROUTES = 5_000
HOSTS_PER_CERTIFICATE = 25
CERTS_DIR = "/etc/nginx/certs"
RESPONDER = "certbotless:8402"
ROLL_TIMEOUT = 300


def host(index: int) -> str:
    return f"app-{index}.stack-{index % 500}.large.example.test"


def large_routes() -> list[Route]:
    """Two routes per host (/ and /api), from 500 stacks; every fourth behind forward auth."""
    return [
        Route(
            f"stack{i // 2 % 500}_svc{i}",
            (host(i // 2),),
            8000,
            path="/" if i % 2 else "/api",
            auth_url="http://auth:8000/check" if i % 4 == 0 else None,
        )
        for i in range(ROUTES)
    ]


def self_signed(name: str, domains: tuple[str, ...]) -> IssuedCert:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domains[0])])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in domains]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    chain_pem = cert.public_bytes(Encoding.PEM)
    return IssuedCert(CertSpec(name, domains), chain_pem, private_key_pem(key))


@pytest.fixture(scope="module")
def store() -> CertStore:
    return CertStore(Swarm())


@pytest.fixture(scope="module")
def certificates(store: CertStore) -> dict[str, StoredCert]:
    hosts = [host(index) for index in range(ROUTES // 2)]
    saved = {}
    for start in range(0, len(hosts), HOSTS_PER_CERTIFICATE):
        name = f"large-{start // HOSTS_PER_CERTIFICATE}.example.test"
        domains = tuple(hosts[start : start + HOSTS_PER_CERTIFICATE])
        saved[name] = store.save(self_signed(name, domains))
    return saved


@pytest.fixture(scope="module")
def large_edge(store: CertStore) -> Iterator[None]:
    """The test nginx service, first with the configuration of no routes."""
    docker("service", "rm", SERVICE, check=False)
    ensure_edge_network()
    name, _ = store.ensure_nginx_confs(render_nginx_conf([], {}, RESPONDER, CERTS_DIR))[
        NGINX_CONF_TARGET
    ]
    docker(
        "service", "create", "--detach", "--name", SERVICE,
        "--network", EDGE_NETWORK,
        "--publish", f"mode=host,target=443,published={HTTPS_PORT}",
        "--publish", f"mode=host,target=80,published={HTTP_PORT}",
        "--config", f"source={name},target={NGINX_CONF_TARGET},mode=0444",
        "--stop-signal", "SIGQUIT",
        "--update-order", "stop-first", "--update-delay", "0s", "--update-monitor", "5s",
        "--update-failure-action", "rollback", "--update-max-failure-ratio", "0",
        "--rollback-order", "stop-first", "--rollback-parallelism", "0",
        "--rollback-monitor", "1s", "--rollback-failure-action", "pause",
        "certbotless-nginx:local",
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while "Running" not in docker("service", "ps", SERVICE, "--format", "{{.CurrentState}}"):
        assert time.monotonic() < deadline, docker("service", "ps", "--no-trunc", SERVICE)
        time.sleep(0.5)
    yield
    docker("service", "rm", SERVICE, check=False)


def mounted_configs(field: str = "Spec") -> dict[str, str]:
    container = Swarm().inspect_service(SERVICE)[field]["TaskTemplate"]["ContainerSpec"]
    return {ref["File"]["Name"]: ref["ConfigID"] for ref in container.get("Configs") or []}


def test_5000_routes_roll_as_split_configs_in_one_update(
    store: CertStore,
    certificates: dict[str, StoredCert],
    large_edge: None,
    figure: Callable[[str], None],
) -> None:
    routes = large_routes()
    started = time.monotonic()
    files = render_nginx_conf(routes, certificates, RESPONDER, CERTS_DIR)
    rendered = time.monotonic()
    assert validate_nginx_conf(files) == ()
    validated = time.monotonic()
    assert max(len(text.encode()) for text in files.values()) <= MAX_FILE_BYTES
    confs = store.ensure_nginx_confs(files)
    stored = time.monotonic()
    wanted = edge_references(routes, certificates, confs, CERTS_DIR)
    before = mounted_configs()
    result = roll_service(Swarm(), SERVICE, wanted, ROLL_TIMEOUT)
    assert result.changed
    service = Swarm().inspect_service(SERVICE)
    # One update, every reference in it: the spec before the roll is the previous spec now.
    # (Version.Index is the swarm's own write counter: the configs stored above move it too.)
    assert mounted_configs("PreviousSpec") == before, "one update, every reference in it"
    assert set(mounted_configs()) >= set(files)
    # Every certificate is served: one host of each, over TLS with SNI.
    ServedCertificates("127.0.0.1", HTTPS_PORT, timeout=10).wait_until_serving(
        {cert.domains[0]: cert.serial for cert in certificates.values()},
        time.monotonic() + 120,
    )
    spec_bytes = len(json.dumps(service["Spec"]))
    figure(
        f"large edge: {ROUTES} routes, {ROUTES // 2} hosts, {len(certificates)} certificates → "
        f"{len(files)} files ({sum(len(t) for t in files.values()) / 1e6:.1f} MB); render "
        f"{rendered - started:.2f} s, nginx -t {validated - rendered:.1f} s, configs stored "
        f"{stored - validated:.1f} s, roll {result.seconds:.1f} s; spec {spec_bytes / 1e3:.0f} KB"
    )


def test_a_change_to_one_route_rolls_one_changed_file(
    store: CertStore, certificates: dict[str, StoredCert], large_edge: None
) -> None:
    routes = large_routes()
    before = mounted_configs()
    if not set(render_nginx_conf(routes, certificates, RESPONDER, CERTS_DIR)) <= set(before):
        pytest.skip("needs the large configuration rolled by the test before")
    changed = [*routes[:-1], Route("stack-changed", routes[-1].hosts, 9000)]
    files = render_nginx_conf(changed, certificates, RESPONDER, CERTS_DIR)
    wanted = edge_references(changed, certificates, store.ensure_nginx_confs(files), CERTS_DIR)
    assert roll_service(Swarm(), SERVICE, wanted, ROLL_TIMEOUT).changed
    after = mounted_configs()
    assert [target for target in after if after[target] != before.get(target)] == [
        next(target for target, text in files.items() if "stack-changed:9000" in text)
    ]
    assert mounted_configs("PreviousSpec") == before, "Swarm can roll back to the whole set"
