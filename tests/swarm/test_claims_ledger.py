"""Claims recorded on the real dockerd (issue 25, items 1 and 2): Swarm's service IDs reach
discovery, the ledger is written signed to a status config and read back, a service created
before the owner and relabelled later takes nothing, a service that sets the owner's stack
namespace joins nothing, and a ledger rewritten by anyone else is ignored.

The services have no replicas (nothing runs) and share no network with any edge (a sidecar on
this swarm reports them and orders nothing for them), and the ledger lives on a config of this
test's own name (never `cbl-status`), which no sidecar reads. Only what this test creates is
removed; the suite's purge of leftovers (tests/swarm/conftest.py) is not run for this file, as
the rig is shared.
"""

import json
import secrets
from collections.abc import Iterator

import pytest

from certbotless.labels.claims import Ledger
from certbotless.labels.settle import discover
from certbotless.model import ServiceInfo
from certbotless.swarm import status
from certbotless.swarm.api import Swarm
from certbotless.swarm.authenticity import StoreKey
from certbotless.swarm.claims import CLAIMS_PREFIX, SwarmClaimLedger
from certbotless.swarm.status import StatusConfig
from certbotless.swarm.store import KIND
from rig.stacks import docker, remove_services

pytestmark = pytest.mark.rig

RUN = secrets.token_hex(3)
PREFIX = f"cbl-clm{RUN}-"
OLD, SHOP, INTRUDER = (PREFIX + n for n in ("old", "shop_web", "intruder"))
STACK = f"clm{RUN}-shop"
HOST = f"shop-{RUN}.example.test"
NAME = f"clm{RUN}-shop"
CONFIG = f"cbl-claims-test-{RUN}"
KEY = StoreKey(secrets.token_bytes(32))


@pytest.fixture(scope="session", autouse=True)
def swarm_without_leftovers() -> None:
    """Overrides the suite's purge: this file removes only what it made."""


def create(name: str, *labels: str) -> None:
    args = [arg for label in labels for arg in ("--label", label)]
    docker("service", "create", "--detach", "--replicas", "0", "--name", name, *args,
           "certbotless-demo-app:local")  # fmt: skip


@pytest.fixture
def ledger(rig_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[SwarmClaimLedger]:
    monkeypatch.setattr(status, "STATUS_CONFIG", CONFIG)
    # In this order: the older service exists first, claiming nothing yet.
    create(OLD)
    create(SHOP, f"com.docker.stack.namespace={STACK}", f"certbotless.domains={HOST}",
           f"certbotless.name={NAME}", "certbotless.port=80")  # fmt: skip
    try:
        yield SwarmClaimLedger(StatusConfig(Swarm()), lambda: KEY)
    finally:
        remove_services([OLD, SHOP, INTRUDER])
        for config_id in docker("config", "ls", "-q", "--filter", f"name={CONFIG}").split():
            docker("config", "rm", config_id)


def mine() -> list[ServiceInfo]:
    return [s for s in Swarm().services() if s.name.startswith(PREFIX)]


def test_claims_recorded_by_swarm_id_hold_against_older_and_forged_stacks(
    ledger: SwarmClaimLedger,
) -> None:
    first = discover(mine(), routing=False, ledger=Ledger(ledger.load()))
    ids = {s.name: s.id for s in mine()}
    assert len(ids[SHOP]) == 25  # Swarm's service ID, not the name
    assert first.claims[f"host:{HOST}"] == ids[SHOP]
    ledger.save(first.claims)
    assert ledger.load() == first.claims

    # Item 2: the older service relabelled for shop's host and name; item 1: a new service
    # saying it is of shop's stack, asking for one more name on shop's certificate.
    docker("service", "update", "--detach", "--label-add", f"certbotless.domains={HOST}",
           "--label-add", f"certbotless.name={NAME}", "--label-add", "certbotless.port=80",
           OLD)  # fmt: skip
    create(
        INTRUDER,
        f"com.docker.stack.namespace={STACK}",
        f"certbotless.name={NAME}",
        f"certbotless.domains={HOST},unreachable-{RUN}.example.net",
        "certbotless.port=80",
    )
    services = mine()
    created = {s.name: s.created_at for s in services}
    old_created, shop_created = created[OLD], created[SHOP]
    assert old_created is not None and shop_created is not None and old_created < shop_created
    found = discover(services, routing=False, ledger=Ledger(ledger.load()))
    assert [(s.name, s.domains) for s in found.specs if s.name == NAME] == [(NAME, (HOST,))]
    assert {p.service for p in found.problems} == {OLD, INTRUDER}
    assert found.claims[f"host:{HOST}"] == ids[SHOP]
    assert found.claims[f"certificate:{NAME}"] == ids[SHOP]
    # Without the ledger, creation time would have given both to the older service.
    unrecorded = discover(services, routing=False)
    assert unrecorded.claims[f"host:{HOST}"] == ids[OLD]

    # Someone rewrites the ledger on the config (Swarm lets labels change): ignored.
    swarm = Swarm()
    (config,) = [c for c in swarm.configs(KIND) if c["Spec"]["Name"] == CONFIG]
    labels = dict(config["Spec"]["Labels"])
    labels[CLAIMS_PREFIX + "ledger"] = json.dumps({f"host:{HOST}": ids[OLD]})
    swarm.update_config_labels(config["ID"], labels)
    assert ledger.load() == {}
