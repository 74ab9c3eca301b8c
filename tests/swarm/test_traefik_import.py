"""`certbotless import-traefik` in the running sidecar: a Traefik acme.json (made here, with a CA
of the test's own) becomes a stored certificate and the ACME account, and nothing is ordered."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from certbotless.acme.keys import private_key_pem
from certbotless.ops.account_key import key_thumbprint
from certbotless.swarm.status import ORDERS_LABEL, STATUS_CONFIG, past_orders_from_json
from certbotless.swarm.store import ACCOUNT_KEY_SECRET, ACCOUNT_THUMBPRINT
from rig.stacks import (
    DEMO_STACK,
    EDGE_STACK,
    container_logs,
    deploy_edge,
    docker,
    purge_managed_objects,
    remove_stacks,
    sidecar_container,
    sidecar_logs,
)
from rig.state import run
from tests.support.traefik_fixtures import (
    FixtureCa,
    account_entry,
    account_key,
    acme_json,
    certificate_entry,
)

pytestmark = pytest.mark.rig

IMPORTED = "imported.example.test"
IMPORTED_SAN = "www.imported.example.test"
EXPIRED = "expired.example.test"
IN_SIDECAR = "/tmp/acme.json"


@pytest.fixture(scope="module")
def edge(rig_env: Mapping[str, str]) -> Iterator[None]:
    remove_stacks([DEMO_STACK, EDGE_STACK])
    purge_managed_objects()
    deploy_edge(rig_env)
    yield
    remove_stacks([DEMO_STACK, EDGE_STACK])
    purge_managed_objects()


def settled_sidecar(other_than: str = "", timeout: float = 180) -> str:
    """The running sidecar container (not `other_than`) once its first pass is done: at its
    first start it mounts its account key into its own service, and Swarm replaces it."""
    deadline = time.monotonic() + timeout
    while True:
        container = sidecar_container()
        if container != other_than and "pass done" in container_logs(container):
            return container
        assert time.monotonic() < deadline, sidecar_logs()
        time.sleep(1)


def account_key_secrets() -> list[dict[str, object]]:
    ids = docker("secret", "ls", "-q", "--filter", "label=certbotless.kind=account-key").split()
    return json.loads(docker("secret", "inspect", *ids)) if ids else []


def ordered_names() -> list[str]:
    """Every name of the week's orders the sidecar recorded (`cbl-status`)."""
    config = json.loads(docker("config", "inspect", STATUS_CONFIG))[0]
    labels = config["Spec"].get("Labels") or {}
    return [
        name
        for order in past_orders_from_json(labels.get(ORDERS_LABEL, "[]"))
        for name in order.names
    ]


def test_an_acme_json_is_imported_into_the_swarm_without_an_order(
    edge: None, tmp_path: Path
) -> None:
    first = settled_sidecar()
    now = datetime.now(UTC)
    ca = FixtureCa()
    chain, key = ca.issue([IMPORTED, IMPORTED_SAN], ec.generate_private_key(ec.SECP256R1()),
                          not_before=now - timedelta(days=10))  # fmt: skip
    old = ca.issue([EXPIRED], not_before=now - timedelta(days=100))
    account = account_key()
    document = {
        "letsencrypt": {
            "Account": account_entry(account, "https://ca.example.test/acct/1"),
            "Certificates": [
                certificate_entry(IMPORTED, [IMPORTED_SAN], chain, key),
                certificate_entry(EXPIRED, [], *old),
            ],
        }
    }
    path = tmp_path / "acme.json"
    path.write_bytes(acme_json(document))
    docker("cp", str(path), f"{first}:{IN_SIDECAR}")

    dry = run(["docker", "exec", first, "certbotless", "import-traefik", IN_SIDECAR, "--dry-run"],
              check=False)  # fmt: skip
    assert dry.returncode == 1, "the sidecar has its own account key: refused without the flag"
    assert "--replace-account" in dry.stderr
    assert f"would import {IMPORTED} ({IMPORTED}, {IMPORTED_SAN})" in dry.stdout
    assert f"skipped resolver letsencrypt: certificate {EXPIRED}: expired" in dry.stdout
    assert _chain_ids() == [], "a dry run stores nothing"

    done = run(["docker", "exec", first, "certbotless", "import-traefik", IN_SIDECAR,
                "--replace-account"], check=False)  # fmt: skip
    assert done.returncode == 1, "one certificate was skipped"
    assert f"imported {IMPORTED}" in done.stdout, done.stdout + done.stderr
    assert "mounted it into service" in done.stdout

    restarted = settled_sidecar(other_than=first)
    listed = json.loads(docker("exec", restarted, "certbotless", "list", "--json"))
    (row,) = [r for r in listed if r["name"] == IMPORTED]
    serial = format(_leaf_serial(chain), "x")
    assert (row["serial"], row["domains"], row["status"]) == (
        serial, [IMPORTED, IMPORTED_SAN], "unwanted",
    )  # fmt: skip
    assert not [r for r in listed if r["name"] == EXPIRED]

    newest = max(account_key_secrets(), key=lambda s: str(s["CreatedAt"]))
    spec = newest["Spec"]
    assert isinstance(spec, dict)
    assert spec["Name"].startswith(ACCOUNT_KEY_SECRET + "-")
    assert spec["Labels"][ACCOUNT_THUMBPRINT] == key_thumbprint(private_key_pem(account))
    assert IMPORTED not in ordered_names(), "importing placed no order"
    assert f"{IMPORTED}: ordering" not in container_logs(restarted)


def _chain_ids() -> list[str]:
    label = f"label=certbotless.cert.name={IMPORTED}"
    return docker("config", "ls", "-q", "--filter", label).split()


def _leaf_serial(chain: bytes) -> int:
    return x509.load_pem_x509_certificates(chain)[0].serial_number
