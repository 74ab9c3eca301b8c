"""The whole loop on a real swarm.

Label → Pebble certificate → secret/config → nginx rolled → HTTPS.
"""

import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from rig.stacks import (
    DEMO_HOST,
    DEMO_STACK,
    EDGE_STACK,
    HttpsAnswer,
    container_logs,
    deploy_demo_app,
    deploy_edge,
    docker,
    https_get,
    purge_managed_objects,
    remove_stacks,
    service_logs,
    sidecar_container,
    sidecar_logs,
    stored_chain_labels,
    wait_for_https,
    wait_for_serial,
)
from rig.state import RigError, run
from rig.traffic import KeepAliveLoop, NewConnectionLoop, Target
from tests.support.webhook import WebhookReceiver, webhook_receiver

pytestmark = pytest.mark.rig


@pytest.fixture(scope="module")
def alerts(rig_env: Mapping[str, str]) -> Iterator[WebhookReceiver]:
    """The sidecar's webhook, on the gateway address its container reaches."""
    with webhook_receiver(rig_env["CBL_RIG_GATEWAY"]) as receiver:
        yield receiver


@pytest.fixture(scope="module")
def edge_env(rig_env: Mapping[str, str], alerts: WebhookReceiver) -> dict[str, str]:
    """What the edge stack is deployed with here: the rig's CA, and alerts to `alerts`."""
    return {**rig_env, "CBL_RIG_ALERT_WEBHOOK": alerts.url}


@pytest.fixture(scope="module")
def edge(edge_env: dict[str, str]) -> Iterator[None]:
    remove_stacks([DEMO_STACK, EDGE_STACK])
    purge_managed_objects()
    deploy_edge(edge_env)
    yield
    remove_stacks([DEMO_STACK, EDGE_STACK])


@pytest.fixture
def served(edge: None, pebble_root: str) -> HttpsAnswer:
    """The demo app over HTTPS (deployed here when a test runs without the first one)."""
    if DEMO_STACK not in docker("stack", "ls", "--format", "{{.Name}}").split():
        deploy_demo_app()
    return wait_for_https(DEMO_HOST, pebble_root, timeout=240)


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
    figure(f"labelled app deployed → HTTPS answering: {answer.answering_since - started:.1f} s")

    assert json.loads(answer.body)["host"] == DEMO_HOST
    assert json.loads(answer.body)["forwarded_proto"] == "https"
    stored = [
        labels for labels in stored_chain_labels() if labels["certbotless.cert.name"] == DEMO_HOST
    ]
    assert len(stored) == 1, stored
    assert stored[0]["certbotless.cert.serial"] == answer.serial

    # `list` inside the sidecar reads the swarm and the nginx spec: this version is in use.
    listed = json.loads(docker("exec", sidecar_container(), "certbotless", "list", "--json"))
    (row,) = [r for r in listed if r["name"] == DEMO_HOST]
    assert (row["serial"], row["in_use"], row["label_mismatches"]) == (answer.serial, True, [])


def test_plain_http_redirects_with_308(served: HttpsAnswer) -> None:
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
    served: HttpsAnswer, edge_env: dict[str, str]
) -> None:
    serials_before = sorted(labels["certbotless.cert.serial"] for labels in stored_chain_labels())
    secret_before = account_key_secret_id()
    account_before = account_uri(sidecar_logs(tail=1000))
    assert secret_before and account_before, sidecar_logs()

    docker("service", "rm", f"{EDGE_STACK}_certbotless")
    deploy_edge(edge_env)
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


def restart_sidecar(*update: str) -> str:
    """`docker service update` the sidecar; its new container, once its first pass is done."""
    before = sidecar_container()
    docker("service", "update", "--detach", *update, f"{EDGE_STACK}_certbotless")
    deadline = time.monotonic() + 120
    while (restarted := sidecar_container()) == before or "pass done" not in container_logs(
        restarted
    ):
        assert time.monotonic() < deadline, sidecar_logs()
        time.sleep(1)
    return restarted


def test_doctor_metrics_and_manual_commands_inside_the_running_sidecar(
    served: HttpsAnswer, pebble_root: str
) -> None:
    first = served
    sidecar = sidecar_container()

    doctor = run(["docker", "exec", sidecar, "certbotless", "doctor"], check=False)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    # Every check passes, the pass lease, the store's objects and the alert channels included.
    assert doctor.stdout.count("ok  ") == 10 and "FAIL" not in doctor.stdout, doctor.stdout
    assert "certificate store: every object with certbotless's labels is its own" in doctor.stdout
    assert "challenge path from outside (DNS, port 80): 1 of 1 domains checked" in doctor.stdout

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
    renewed = re.search(rf"{re.escape(DEMO_HOST)}: stored \S+ serial ([0-9a-f]+), ", revoked.stdout)
    assert renewed and renewed.group(1) != first.serial, (
        "revoke re-issues a name a label still wants: " + revoked.stdout
    )
    # The old task drains for 2 s after the roll and may still answer through the front.
    wait_for_serial(DEMO_HOST, pebble_root, renewed.group(1))


def demo_app(name: str, labels: Mapping[str, str]) -> None:
    """A service of the demo app's image on the edge network, labelled `labels`."""
    given = [arg for label, value in labels.items() for arg in ("--label", f"{label}={value}")]
    docker("service", "create", "--detach", "--name", name, "--network", "certbotless-edge",
           "--endpoint-mode", "dnsrr", *given, "certbotless-demo-app:local")  # fmt: skip


def test_a_new_labelled_service_gets_https_from_docker_events(
    served: HttpsAnswer, pebble_root: str, figure: Callable[[str], None]
) -> None:
    host = "events.example.test"
    started = time.monotonic()
    demo_app("cbl-events-app", {"certbotless.domains": host, "certbotless.port": "8000"})
    try:
        answer = wait_for_https(host, pebble_root, timeout=120, every=30)
        seconds = answer.answering_since - started
    finally:
        docker("service", "rm", "cbl-events-app", check=False)
    assert json.loads(answer.body)["host"] == host
    figure(f"docker service create → HTTPS answering (edge already running): {seconds:.1f} s")


def test_an_ip_address_gets_its_certificate_and_is_served_without_sni(
    served: HttpsAnswer, pebble_root: str
) -> None:
    # No certbotless.profile: an address is ordered under `shortlived` by default.
    demo_app("cbl-ip-app", {"certbotless.domains": "127.0.0.1", "certbotless.port": "8000"})
    try:
        # Verified against Pebble's root with the address as the name: no SNI is sent.
        answer = wait_for_https("127.0.0.1", pebble_root, timeout=120)
        assert json.loads(answer.body)["host"] == "127.0.0.1"
        names = answer.peer["subjectAltName"]
        assert isinstance(names, tuple) and ("IP Address", "127.0.0.1") in names
        assert https_get(DEMO_HOST, pebble_root).status == 200, "named hosts still get theirs"
    finally:
        docker("service", "rm", "cbl-ip-app", check=False)


def test_a_tls_alpn_01_certificate_is_issued_through_the_front_on_port_443(
    served: HttpsAnswer, pebble_root: str, figure: Callable[[str], None]
) -> None:
    """The CA (the rig's Pebble, validating on the swarm's published 443) reaches the front,
    which passes its acme-tls/1 ClientHello over the acme-tls network to the sidecar."""
    host = "alpn.example.test"
    started = time.monotonic()
    demo_app(
        "cbl-alpn-app",
        {
            "certbotless.domains": host,
            "certbotless.port": "8000",
            "certbotless.challenge": "tls-alpn-01",
        },
    )
    try:
        answer = wait_for_https(host, pebble_root, timeout=120, every=30)
        seconds = answer.answering_since - started
    finally:
        docker("service", "rm", "cbl-alpn-app", check=False)
    assert json.loads(answer.body)["host"] == host
    assert f"{host}: TLS-ALPN-01 certificate ready" in sidecar_logs(400)
    assert f"{host}: checking the edge serves the challenge" not in sidecar_logs(400)
    figure(f"TLS-ALPN-01 on the swarm: docker service create → HTTPS answering: {seconds:.1f} s")


def served_refs() -> tuple[set[str], set[str]]:
    """The config and secret IDs the nginx service's current and previous specs mount."""
    service = json.loads(docker("service", "inspect", f"{EDGE_STACK}_nginx"))[0]

    def ids(spec: dict[str, Any]) -> set[str]:
        container = spec["TaskTemplate"]["ContainerSpec"]
        return {r["ConfigID"] for r in container.get("Configs") or []} | {
            r["SecretID"] for r in container.get("Secrets") or []
        }

    return ids(service["Spec"]), ids(service.get("PreviousSpec") or service["Spec"])


def passes_done() -> int:
    return sidecar_logs(tail=5000).count("pass done")


def wait_until_settled(quiet: float = 5.0, timeout: float = 120) -> None:
    """Until the daemon has nothing left to do: no pass and no roll for `quiet` seconds (what an
    earlier test changed is rolled by then)."""
    deadline = time.monotonic() + timeout
    seen = (served_refs(), passes_done())
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = (served_refs(), passes_done())
        if now == seen:
            return
        seen = now
    raise AssertionError(f"the daemon did not settle within {timeout:.0f} s:\n{sidecar_logs()}")


def test_issue_through_docker_exec_rolls_once_while_the_daemon_runs(
    served: HttpsAnswer, pebble_root: str
) -> None:
    before = served
    wait_until_settled()
    mounted_before, _ = served_refs()
    passes_before = passes_done()
    issued = run(["docker", "exec", sidecar_container(), "certbotless", "issue", DEMO_HOST],
                 check=False)  # fmt: skip
    assert issued.returncode == 0, issued.stdout + issued.stderr
    for step in ("ordering", "validated, finalizing", "stored", "rolling",
                 "every task serves the new certificates", "nginx rolled: yes"):  # fmt: skip
        assert step in issued.stdout, issued.stdout
    serial = re.search(rf"{re.escape(DEMO_HOST)}: serial ([0-9a-f]+), valid until ", issued.stdout)
    assert serial and serial.group(1) != before.serial, issued.stdout
    wait_for_serial(DEMO_HOST, pebble_root, serial.group(1))
    mounted_after, previous = served_refs()
    assert previous == mounted_before, "the issue's roll replaced what was mounted before"
    # The roll's service events wake the daemon; its pass finds nothing left to roll.
    deadline = time.monotonic() + 60
    while passes_done() <= passes_before and time.monotonic() < deadline:
        time.sleep(1)
    assert passes_done() > passes_before, sidecar_logs()
    assert served_refs() == (mounted_after, previous), "one roll for one change"


def test_renew_is_a_one_shot_pass_and_its_dry_run_stores_nothing(served: HttpsAnswer) -> None:
    wait_until_settled()
    sidecar = sidecar_container()
    renewed = run(["docker", "exec", sidecar, "certbotless", "renew"], check=False)
    assert renewed.returncode == 0, renewed.stdout + renewed.stderr
    assert "issued 0, failed 0" in renewed.stdout
    stored = sorted(labels["certbotless.cert.serial"] for labels in stored_chain_labels())
    dry = run(["docker", "exec", sidecar, "certbotless", "renew", "--dry-run"], check=False)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "dry run: the CA issued it (not stored, not rolled)" in dry.stderr  # the log
    assert re.search(r"issued [1-9]\d*, failed 0", dry.stdout), dry.stdout
    assert sorted(labels["certbotless.cert.serial"] for labels in stored_chain_labels()) == stored


def test_failures_and_label_problems_are_listed_and_alerted_until_fixed(
    served: HttpsAnswer, alerts: WebhookReceiver
) -> None:
    too_many = ",".join(f"n{i}.crowd.example.test" for i in range(101))
    demo_app(
        "cbl-crowd-app",
        {
            "certbotless.domains": too_many,
            "certbotless.name": "crowd",
            "certbotless.port": "http",
        },
    )
    try:
        problem = alerts.wait_for(lambda b: b["kind"] == "label_problem", timeout=60)
        assert "certbotless.port" in problem["text"] and problem["state"] == "firing"
        docker("service", "update", "--detach", "--label-add", "certbotless.port=8000",
               "cbl-crowd-app")  # fmt: skip
        failed = alerts.wait_for(lambda b: b["key"] == "renewal_failed:crowd", timeout=60)
        assert "at most 100" in failed["text"]
        alerts.wait_for(lambda b: b["kind"] == "label_problem" and b["state"] == "resolved", 60)
        listed = json.loads(docker("exec", sidecar_container(), "certbotless", "list", "--json"))
        (row,) = [r for r in listed if r["name"] == "crowd"]
        assert (row["status"], row["serial"]) == ("failed", None)
        assert "at most 100" in row["failure"]["error"]

        # A restart (or a move to another manager) repeats no alert: they are noted in the swarm.
        restart_sidecar("--force")
        time.sleep(2)  # the alert worker sends right after the pass

        docker("service", "update", "--detach", "--label-add",
               "certbotless.domains=crowd.example.test", "cbl-crowd-app")  # fmt: skip
        alerts.wait_for(
            lambda b: b["key"] == "renewal_failed:crowd" and b["state"] == "resolved", 90
        )
        listed = json.loads(docker("exec", sidecar_container(), "certbotless", "list", "--json"))
        (row,) = [r for r in listed if r["name"] == "crowd"]
        assert (row["status"], row["failure"], row["domains"]) == (
            "ok", None, ["crowd.example.test"],
        )  # fmt: skip
        assert sum(b["key"] == "renewal_failed:crowd" and b["state"] == "firing"
                   for b in alerts.bodies) == 1, "one message per problem"  # fmt: skip
    finally:
        docker("service", "rm", "cbl-crowd-app", check=False)


def status_record(name: str) -> dict[str, Any] | None:
    """A certificate's status record, as the swarm keeps it (a label of the cbl-status config)."""
    labels = json.loads(
        docker("config", "inspect", "cbl-status", "--format", "{{json .Spec.Labels}}")
    )
    text = labels.get(f"certbotless.status.{name}")
    return None if text is None else dict(json.loads(text))


def test_a_restarted_sidecar_keeps_each_failures_count_and_next_attempt(
    served: HttpsAnswer,
) -> None:
    """The status record lives in the swarm: a new sidecar task neither forgets a failure nor
    retries it before its time."""
    too_many = ",".join(f"n{i}.held.example.test" for i in range(101))
    demo_app(
        "cbl-held-app",
        {
            "certbotless.domains": too_many,
            "certbotless.name": "held",
            "certbotless.port": "8000",
        },
    )
    try:
        deadline = time.monotonic() + 60
        while (before := status_record("held")) is None or before["condition"] != "Failing":
            assert time.monotonic() < deadline, sidecar_logs()
            time.sleep(1)
        assert (before["failures"], before["reason"]) == (1, "BadRequest"), before
        assert before["next_attempt"] > before["last_failure"], before

        restarted = restart_sidecar("--force")
        # Its first pass held the name back (the next attempt is minutes away) and changed
        # nothing in the record.
        assert status_record("held") == before
        listed = json.loads(docker("exec", restarted, "certbotless", "list", "--json"))
        (row,) = [r for r in listed if r["name"] == "held"]
        assert row["status"] == "failed" and "at most 100" in row["failure"]["error"]
        ordered = [line for line in container_logs(restarted).splitlines()
                   if "held: new" in line or "held: ordering" in line]  # fmt: skip
        assert ordered == [], "a name backing off is not ordered again by a new task"
    finally:
        docker("service", "rm", "cbl-held-app", check=False)


def test_a_stack_deploy_of_the_edge_gets_its_certificates_back_within_seconds(
    served: HttpsAnswer, edge_env: dict[str, str], pebble_root: str, figure: Callable[[str], None]
) -> None:
    """`docker stack deploy` of the edge (to change anything in the stack file) puts back the
    stack's nginx spec, without the certificates certbotless mounted: the sidecar sees the
    update and re-attaches them."""
    nginx = f"{EDGE_STACK}_nginx"

    def mounted() -> bool:
        shown = "{{json .Spec.TaskTemplate.ContainerSpec.Configs}}"
        configs = json.loads(docker("service", "inspect", nginx, "--format", shown))
        return any(c["ConfigName"].startswith("cbl-") for c in configs or [])

    began = time.monotonic()
    try:
        deploy_edge(edge_env)
    except RigError as error:
        # The sidecar re-attached the certificates between the CLI's read of nginx's spec and
        # its update of it (the sidecar reacts to the stack's first updated service): Swarm
        # refuses the stale update, and deploying again is what an operator does.
        assert "out of sequence" in str(error), error
        deploy_edge(edge_env)
    assert not mounted(), "what a deploy does: the stack's spec names no certificate"
    deadline = began + 60
    while not mounted():
        assert time.monotonic() < deadline, sidecar_logs()
        time.sleep(0.1)
    reattached = time.monotonic() - began
    # Then the roll onto them converges, and the host is served its certificate again.
    while True:
        try:
            state = docker("service", "inspect", nginx, "--format", "{{.UpdateStatus.State}}")
            if state.strip() == "completed" and https_get(DEMO_HOST, pebble_root).serial == (
                served.serial
            ):
                break
        except OSError:
            pass  # nothing served for the host at this moment
        assert time.monotonic() < deadline, sidecar_logs()
        time.sleep(0.2)
    took = time.monotonic() - began
    figure(f"docker stack deploy of the edge → certificates re-attached {reattached:.1f} s, "
           f"the roll converged and served {took:.1f} s")  # fmt: skip
    assert reattached < 15, (reattached, sidecar_logs()[-6000:])


def test_sigterm_abandons_orders_cleanly_and_the_next_task_finishes_the_work(
    served: HttpsAnswer, figure: Callable[[str], None]
) -> None:
    names = [f"stop{i}" for i in range(24)]
    labels = [arg for n in names
              for arg in ("--label", f"certbotless.certificate.{n}={n}.example.test")]  # fmt: skip
    # Two orders at a time: SIGTERM lands while most wait for a worker, however late the log
    # line that triggers it arrives (at 8 at a time, all 24 were done once before it did).
    sidecar = restart_sidecar("--env-add", "CERTBOTLESS_CONCURRENCY=2")
    # Follow the sidecar's log, so SIGTERM lands right after its first order starts.
    follow = subprocess.Popen(
        ["docker", "logs", "--follow", "--since", "1s", sidecar],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        docker("service", "create", "--detach", "--name", "cbl-stop-app",
               "--network", "certbotless-edge", *labels, "certbotless-demo-app:local")  # fmt: skip
        assert follow.stdout is not None
        for line in follow.stdout:
            if ": ordering stop" in line:
                break
        stopped_at = time.monotonic()
        docker("kill", "--signal", "TERM", sidecar)
        exit_code = docker("wait", sidecar).strip()
        seconds = time.monotonic() - stopped_at
        assert exit_code == "0" and seconds < 60
        logs = container_logs(sidecar)
        assert "abandoning orders" in logs and "stopped" in logs, logs[-3000:]
        abandoned = set(re.findall(r"(stop[0-9]+): abandoned", logs))
        assert abandoned, "orders waiting for a worker are never started\n" + logs[-3000:]
        figure(
            f"SIGTERM during a pass of {len(names)} orders: exit 0 after {seconds:.1f} s, "
            f"{len(abandoned)} orders abandoned"
        )
        # Never half stored: each key secret has its chain config, and the other way round.
        keys = docker("secret", "ls", "--format", "{{.Name}}", "--filter",
                      "label=certbotless.kind=key").split()  # fmt: skip
        chains = docker("config", "ls", "--format", "{{.Name}}", "--filter",
                        "label=certbotless.kind=chain").split()  # fmt: skip
        assert sorted(keys) == sorted(chains)
        # Swarm starts the next task, which orders what was abandoned.
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            stored = {labels["certbotless.cert.name"] for labels in stored_chain_labels()}
            if set(names) <= stored:
                break
            time.sleep(2)
        assert set(names) <= stored, sidecar_logs()
    finally:
        follow.kill()
        docker("service", "rm", "cbl-stop-app", check=False)


@pytest.fixture
def client_namespace() -> Iterator[tuple[str, str]]:
    """A network namespace of the test's own, a client host on its own /30: (namespace, the
    host's address on the link). Its own address, .2, is what the edge must report."""
    suffix = f"{time.monotonic_ns() % 100000:05d}"
    namespace, outside, inside = f"cbl-client-{suffix}", f"cblh{suffix}", f"cblc{suffix}"
    host_address, client_address = "10.251.77.1", "10.251.77.2"
    for command in (
        ["ip", "netns", "add", namespace],
        ["ip", "link", "add", outside, "type", "veth", "peer", "name", inside],
        ["ip", "link", "set", inside, "netns", namespace],
        ["ip", "addr", "add", f"{host_address}/30", "dev", outside],
        ["ip", "link", "set", outside, "up"],
        ["ip", "netns", "exec", namespace, "ip", "addr", "add", f"{client_address}/30", "dev",
         inside],
        ["ip", "netns", "exec", namespace, "ip", "link", "set", inside, "up"],
        ["ip", "netns", "exec", namespace, "ip", "link", "set", "lo", "up"],
    ):  # fmt: skip
        run(command)
    try:
        yield namespace, host_address
    finally:
        run(["ip", "link", "del", outside], check=False)
        run(["ip", "netns", "del", namespace], check=False)


def test_the_app_sees_the_clients_own_address_through_the_front_and_nobody_can_forge_it(
    served: HttpsAnswer, pebble_root: str, client_namespace: tuple[str, str]
) -> None:
    namespace, edge_address = client_namespace
    answer = run(
        ["ip", "netns", "exec", namespace, "curl", "-sS", "--max-time", "10",
         "--cacert", pebble_root, "--resolve", f"{DEMO_HOST}:443:{edge_address}",
         "-H", "X-Forwarded-For: 203.0.113.66", "-H", "X-Real-IP: 203.0.113.66",
         f"https://{DEMO_HOST}/"]
    )  # fmt: skip
    assert json.loads(answer.stdout)["forwarded_for"] == "10.251.77.2", answer.stdout
    # nginx's access log names the client too, not the front.
    deadline = time.monotonic() + 10
    while "10.251.77.2 " not in (logs := service_logs(f"{EDGE_STACK}_nginx")):
        assert time.monotonic() < deadline, logs[-2000:]
        time.sleep(0.5)

    # A container on the edge network that reaches nginx directly and sends its own PROXY
    # header is not the front: nginx keeps that container's own address.
    forged = docker(
        "run", "--rm", "--network", "certbotless-edge", "certbotless-demo-app:local",
        "python3", "-c", FORGED_PROXY_HEADER_CLIENT, f"tasks.{EDGE_STACK}_nginx", DEMO_HOST,
    )  # fmt: skip
    assert "203.0.113.66" not in forged and '"forwarded_for": "10.' in forged, forged


# PROXY protocol v2, PROXY command, TCP over IPv4, claiming 203.0.113.66:4242 → 10.0.0.1:443,
# then a request over TLS.
FORGED_PROXY_HEADER_CLIENT = """
import socket, ssl, sys
header = (b"\\r\\n\\r\\n\\x00\\r\\nQUIT\\n" + bytes((0x21, 0x11, 0, 12))
          + socket.inet_aton("203.0.113.66") + socket.inet_aton("10.0.0.1")
          + (4242).to_bytes(2, "big") + (443).to_bytes(2, "big"))
tls = ssl.create_default_context()
tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
with socket.create_connection((sys.argv[1], 443), timeout=10) as raw:
    raw.sendall(header)
    with tls.wrap_socket(raw, server_hostname=sys.argv[2]) as connection:
        connection.sendall(f"GET / HTTP/1.1\\r\\nHost: {sys.argv[2]}\\r\\n"
                           "Connection: close\\r\\n\\r\\n".encode())
        print(connection.makefile("rb").read().decode(errors="replace"))
"""


def test_five_forced_rotations_through_the_front_drop_no_request(
    served: HttpsAnswer, pebble_root: str, figure: Callable[[str], None]
) -> None:
    wait_until_settled()
    target = Target("127.0.0.1", 443, DEMO_HOST, ca_file=Path(pebble_root))
    serials = [served.serial]
    with (
        NewConnectionLoop(target, max_requests=20000, max_seconds=300, interval=0.01) as fresh,
        KeepAliveLoop(target, max_requests=20000, max_seconds=300, interval=0.01) as kept,
    ):
        for _ in range(5):
            renewed = run(["docker", "exec", sidecar_container(), "certbotless", "renew",
                           "--force"], check=False)  # fmt: skip
            assert renewed.returncode == 0, renewed.stdout + renewed.stderr
            assert "nginx rolled: yes" in renewed.stdout, renewed.stdout
            (serial,) = re.findall(rf"{re.escape(DEMO_HOST)}: stored \S+ serial ([0-9a-f]+)",
                                   renewed.stderr)  # fmt: skip
            serials.append(wait_for_serial(DEMO_HOST, pebble_root, serial).serial)
        time.sleep(1)  # requests after the last roll, too
    assert len(set(serials)) == 6, serials
    for loop in (fresh, kept):
        assert loop.requests > 100 and loop.failed == 0, (loop.failed, loop.errors)
    figure(
        f"5 forced rotations on one node, through the front: {fresh.failed} of {fresh.requests} "
        f"new-connection requests failed, {kept.failed} of {kept.requests} keep-alive ones "
        f"({kept.closes_absorbed} closes absorbed by a retry); longest gap {fresh.outage:.2f} s"
    )
