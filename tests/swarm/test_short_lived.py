"""The daemon renews on its own: Pebble issues 90-second certificates, and the served serial
changes again and again with no manual step, while `list` shows the days left."""

import itertools
import json
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rig.pebble import PebbleServer
from rig.stacks import (
    DEMO_STACK,
    EDGE_STACK,
    SEED_STACKS,
    deploy_edge,
    docker,
    https_get,
    remove_stacks,
    sidecar_logs,
    wait_for_https,
)

pytestmark = pytest.mark.rig

HOST = "short.example.test"
VALIDITY = 90
APP = "cbl-short-app"


@pytest.fixture(scope="module")
def short_lived_edge(
    rig_env: Mapping[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The edge stack pointed at a Pebble of its own (on the gateway address, like the rig's)
    whose certificates live 90 s; yields the file with that Pebble's root."""
    remove_stacks([*SEED_STACKS, DEMO_STACK, EDGE_STACK])
    pebble = PebbleServer(
        "pebble-short-lived",
        host=rig_env["CBL_RIG_GATEWAY"],
        ca_bundle=Path(rig_env["CBL_RIG_CA_BUNDLE"]),
        port=14300,
        management_port=15300,
        validity_seconds=VALIDITY,
    )
    pebble.start()
    root = tmp_path_factory.mktemp("short") / "root.pem"
    root.write_text(pebble.root_pem())
    try:
        deploy_edge({**rig_env, "CBL_RIG_ACME_DIRECTORY": pebble.directory_url})
        docker(
            "service", "create", "--detach", "--name", APP,
            "--network", "certbotless-edge", "--endpoint-mode", "dnsrr",
            "--label", f"certbotless.domains={HOST}", "--label", "certbotless.port=8000",
            "certbotless-demo-app:local",
        )  # fmt: skip
        yield str(root)
    finally:
        docker("service", "rm", APP, check=False)
        remove_stacks([EDGE_STACK])
        pebble.stop()


def test_short_lived_certificates_renew_and_roll_by_themselves(
    short_lived_edge: str, figure: Callable[[str], None]
) -> None:
    try:
        serials = [wait_for_https(HOST, short_lived_edge, timeout=240, every=30).serial]
        changed_at = [time.monotonic()]
        deadline = time.monotonic() + 2 * VALIDITY + 120
        while len(serials) < 3 and time.monotonic() < deadline:
            time.sleep(1)
            try:
                serial = https_get(HOST, short_lived_edge).serial
            except OSError:
                continue  # a roll in progress
            if serial != serials[-1]:
                serials.append(serial)
                changed_at.append(time.monotonic())
    except TimeoutError:
        print(sidecar_logs(200))
        raise
    assert len(serials) == 3, f"expected two renewals, saw {serials}\n{sidecar_logs(100)}"
    gaps = [later - earlier for earlier, later in itertools.pairwise(changed_at)]
    figure(
        f"{VALIDITY} s certificates renewed and rolled by the daemon every "
        + ", ".join(f"{gap:.0f} s" for gap in gaps)
    )
    sidecar = docker(
        "ps", "-q", "--filter", f"label=com.docker.swarm.service.name={EDGE_STACK}_certbotless"
    ).split()[0]
    listed = json.loads(docker("exec", sidecar, "certbotless", "list", "--json"))
    (row,) = [r for r in listed if r["name"] == HOST]
    assert row["in_use"] is True
    seconds_left = (datetime.fromisoformat(row["not_after"]) - datetime.now(UTC)).total_seconds()
    assert 0 < seconds_left <= VALIDITY
    assert row["days_left"] == pytest.approx(seconds_left / 86400, abs=0.0002)
