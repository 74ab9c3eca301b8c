"""The whole loop on a real swarm.

Label → Pebble certificate → secret/config → nginx rolled → HTTPS.
"""

import json
import re
import time
from collections.abc import Callable, Iterator, Mapping

import pytest

from rig.stacks import (
    DEMO_HOST,
    DEMO_STACK,
    EDGE_STACK,
    deploy_demo_app,
    deploy_edge,
    docker,
    https_get,
    purge_managed_objects,
    remove_stacks,
    sidecar_logs,
    stored_chain_labels,
    wait_for_https,
)
from rig.state import run

pytestmark = pytest.mark.rig


@pytest.fixture(scope="module")
def edge(rig_env: Mapping[str, str]) -> Iterator[None]:
    remove_stacks([DEMO_STACK, EDGE_STACK])
    purge_managed_objects()
    deploy_edge(rig_env)
    yield
    remove_stacks([DEMO_STACK, EDGE_STACK])


def test_labelled_app_gets_https_with_the_stored_certificate(
    edge: None, pebble_root: str, figure: Callable[[str], None]
) -> None:
    started = time.monotonic()
    deploy_demo_app()
    try:
        answer = wait_for_https(DEMO_HOST, pebble_root, timeout=240)
    except TimeoutError:
        print(sidecar_logs())
        raise
    figure(f"labelled app deployed → HTTPS answering: {time.monotonic() - started:.1f} s")

    assert json.loads(answer.body)["host"] == DEMO_HOST
    assert json.loads(answer.body)["forwarded_proto"] == "https"
    stored = [
        labels for labels in stored_chain_labels() if labels["certbotless.cert.name"] == DEMO_HOST
    ]
    assert len(stored) == 1, stored
    assert stored[0]["certbotless.cert.serial"] == answer.serial

    # `list` inside the sidecar reads the swarm and the nginx spec: this version is in use.
    sidecar = docker(
        "ps", "-q", "--filter", f"label=com.docker.swarm.service.name={EDGE_STACK}_certbotless"
    ).split()[0]
    listed = json.loads(docker("exec", sidecar, "certbotless", "list", "--json"))
    (row,) = [r for r in listed if r["name"] == DEMO_HOST]
    assert (row["serial"], row["in_use"], row["label_mismatches"]) == (answer.serial, True, [])


def test_plain_http_redirects_with_308(edge: None, pebble_root: str) -> None:
    wait_for_https(DEMO_HOST, pebble_root, timeout=240)
    status = docker(
        "run",
        "--rm",
        "--network",
        "host",
        "certbotless-test-base",
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{redirect_url}",
        "-H",
        f"Host: {DEMO_HOST}",
        "http://127.0.0.1/some/path",
    )
    assert status == f"308 https://{DEMO_HOST}/some/path"


def account_uri(logs: str) -> str | None:
    found = re.findall(r"(?:using the existing|registered a new) ACME account (\S+)", logs)
    return found[-1] if found else None


def account_key_secret_id() -> str:
    return docker("secret", "ls", "-q", "--filter", "label=certbotless.kind=account-key").strip()


def test_a_recreated_sidecar_keeps_its_account_and_reissues_nothing(
    edge: None, rig_env: Mapping[str, str], pebble_root: str
) -> None:
    wait_for_https(DEMO_HOST, pebble_root, timeout=240)
    serials_before = sorted(labels["certbotless.cert.serial"] for labels in stored_chain_labels())
    secret_before = account_key_secret_id()
    account_before = account_uri(sidecar_logs(tail=1000))
    assert secret_before and account_before, sidecar_logs()

    docker("service", "rm", f"{EDGE_STACK}_certbotless")
    deploy_edge(rig_env)
    deadline = time.monotonic() + 120
    logs = ""
    while time.monotonic() < deadline:
        logs = sidecar_logs(tail=1000)
        if account_uri(logs) and "pass done" in logs:
            break
        time.sleep(1)
    assert account_uri(logs) == account_before, logs
    assert "using the existing ACME account" in logs
    assert re.search(r"pass done in [\d.]+ s: issued 0, failed 0", logs), logs
    assert account_key_secret_id() == secret_before
    after = sorted(labels["certbotless.cert.serial"] for labels in stored_chain_labels())
    assert after == serials_before, "a restart must not re-issue valid certificates"


def sidecar_container() -> str:
    return docker(
        "ps", "-q", "--filter", f"label=com.docker.swarm.service.name={EDGE_STACK}_certbotless"
    ).split()[0]


def test_doctor_metrics_and_manual_commands_inside_the_running_sidecar(
    edge: None, pebble_root: str
) -> None:
    first = wait_for_https(DEMO_HOST, pebble_root, timeout=240)
    sidecar = sidecar_container()

    doctor = run(["docker", "exec", sidecar, "certbotless", "doctor"], check=False)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert doctor.stdout.count("ok  ") == 6, doctor.stdout

    metrics = docker(
        "exec", sidecar, "python3", "-c",
        "import urllib.request; print(urllib.request.urlopen("
        "'http://127.0.0.1:9402/metrics').read().decode())",
    )  # fmt: skip
    assert f'certbotless_certificate_days_left{{name="{DEMO_HOST}"}}' in metrics
    assert 'certbotless_acme_requests_total{outcome="ok"}' in metrics

    # `issue` through docker exec while the daemon runs: both work, one roll per change.
    issued = run(
        ["docker", "exec", sidecar, "certbotless", "issue", "extra.example.test",
         "--name", "extra", "--no-rollout"],
        check=False,
    )  # fmt: skip
    assert issued.returncode == 0, issued.stdout + issued.stderr
    for step in ("ordering", "asking the CA to validate", "validated, finalizing", "stored"):
        assert step in issued.stdout, issued.stdout
    assert re.search(r"extra: stored cbl-extra-\S+ serial [0-9a-f]+, expires ", issued.stdout)

    revoked = run(
        ["docker", "exec", sidecar, "certbotless", "revoke", DEMO_HOST, "--reason",
         "keyCompromise"],
        check=False,
    )  # fmt: skip
    assert revoked.returncode == 0, revoked.stdout + revoked.stderr
    assert f"{DEMO_HOST}: revoked serial {first.serial} (keyCompromise)" in revoked.stdout
    after = https_get(DEMO_HOST, pebble_root)
    assert after.serial != first.serial, "revoke re-issues a name a label still wants"


def test_a_new_labelled_service_gets_https_from_docker_events(
    edge: None, pebble_root: str, figure: Callable[[str], None]
) -> None:
    wait_for_https(DEMO_HOST, pebble_root, timeout=240)  # the edge is up and settled
    host = "events.example.test"
    started = time.monotonic()
    docker(
        "service", "create", "--detach", "--name", "cbl-events-app",
        "--network", "certbotless-edge", "--endpoint-mode", "dnsrr",
        "--label", f"certbotless.domains={host}", "--label", "certbotless.port=8000",
        "certbotless-demo-app:local",
    )  # fmt: skip
    try:
        answer = wait_for_https(host, pebble_root, timeout=120, every=30)
        seconds = time.monotonic() - started
    finally:
        docker("service", "rm", "cbl-events-app", check=False)
    assert json.loads(answer.body)["host"] == host
    figure(f"docker service create → HTTPS answering (edge already running): {seconds:.1f} s")
