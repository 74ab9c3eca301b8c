"""The swarm as certificate store, and rolls that verify themselves, on the real dockerd.

A test nginx service of its own (host ports 8080/8443, no `certbotless.edge` label) so that no
sidecar interferes; certificates come from the real Pebble.
"""

import base64
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from certbotless.acme.challenges import TokenStore
from certbotless.acme.http01 import EdgeHttp01Solver
from certbotless.acme.issuer import AcmeIssuer, IssuerOptions
from certbotless.acme.keys import load_account_key
from certbotless.edge.deployer import edge_references
from certbotless.edge.mounts import NGINX_CONF_TARGET
from certbotless.edge.render import render_nginx_conf
from certbotless.edge.rollout import (
    RolledBack,
    ServedCertificates,
    check_in_edge_image,
    roll_service,
)
from certbotless.edge.validation import NginxConfigError
from certbotless.model import CertSpec, IssuedCert, ObjectRole, Route, StoredCert
from certbotless.swarm.api import Swarm
from certbotless.swarm.store import (
    CERT_SERIAL,
    KIND,
    MAX_OBJECT_NAME,
    CertStore,
    latest_per_name,
    plan_garbage,
)
from rig.pebble import PebbleServer
from rig.stacks import EDGE_NETWORK, docker, ensure_edge_network

pytestmark = pytest.mark.rig

SERVICE = "cbl-rolltest"
HTTPS_PORT = 8443
HOSTS = ("roll-a.example.test", "roll-b.example.test")
SWARM_NAME = re.compile(r"^[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?$")
ROUTES = tuple(Route("cbl-rolltest-app", (host,), 8000) for host in HOSTS)


@pytest.fixture(scope="module")
def store() -> CertStore:
    return CertStore(Swarm())


@pytest.fixture(scope="module")
def issuer(pebble_for_acme: PebbleServer, acme_tokens: TokenStore) -> AcmeIssuer:
    return AcmeIssuer(
        pebble_for_acme.directory_url,
        load_account_key(None),
        EdgeHttp01Solver(acme_tokens),
        ca_bundle=Path(pebble_for_acme.ca_bundle),
        options=IssuerOptions(concurrency=4),
    )


def issue_and_store(issuer: AcmeIssuer, store: CertStore, *names: str) -> list[StoredCert]:
    saved = []
    for spec, outcome in issuer.issue_many([CertSpec(name, (name,)) for name in names]):
        assert isinstance(outcome, IssuedCert), f"{spec.name}: {outcome}"
        saved.append(store.save(outcome))
    return saved


def conf_for(store: CertStore, current: dict[str, StoredCert]) -> dict[str, tuple[str, str]]:
    return store.ensure_nginx_confs(
        render_nginx_conf(ROUTES, current, "certbotless:8402", "/etc/nginx/certs")
    )


def served() -> ServedCertificates:
    return ServedCertificates("127.0.0.1", HTTPS_PORT)


def service_refs(field: str = "Spec") -> dict[str, str]:
    service = Swarm().inspect_service(SERVICE)
    container = service[field]["TaskTemplate"]["ContainerSpec"]
    refs = {r["File"]["Name"]: r["SecretID"] for r in container.get("Secrets") or []}
    refs.update({r["File"]["Name"]: r["ConfigID"] for r in container.get("Configs") or []})
    return refs


@pytest.fixture(scope="module")
def rolltest(store: CertStore) -> Iterator[None]:
    """The test nginx service, first with no certificates (it answers nothing on 443)."""
    docker("service", "rm", SERVICE, check=False)
    ensure_edge_network()
    name, _ = conf_for(store, {})[NGINX_CONF_TARGET]
    docker(
        "service", "create", "--detach", "--name", SERVICE,
        "--network", EDGE_NETWORK,
        "--publish", f"mode=host,target=443,published={HTTPS_PORT}",
        "--publish", "mode=host,target=80,published=8080",
        "--config", f"source={name},target=/etc/nginx/nginx.conf,mode=0444",
        "--stop-signal", "SIGQUIT",
        "--update-order", "stop-first", "--update-delay", "0s", "--update-monitor", "1s",
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


def roll_to(store: CertStore, current: dict[str, StoredCert], **options: Any) -> float:
    wanted = edge_references(ROUTES, current, conf_for(store, current), "/etc/nginx/certs")
    return roll_service(Swarm(), SERVICE, wanted, 120, served=served(), **options).seconds


def test_names_fit_swarm_and_labels_round_trip(issuer: AcmeIssuer, store: CertStore) -> None:
    long_name = ".".join(["x" * 40, "y" * 40, "example.test"])
    odd_name = "xn--bcher-kva.a-b--c.example.test"
    saved = issue_and_store(issuer, store, long_name, odd_name)
    listed = {c.config_id: c for c in store.inventory()}
    for cert in saved:
        assert len(cert.config_name) <= MAX_OBJECT_NAME and SWARM_NAME.match(cert.config_name)
        assert cert.secret_name == cert.config_name
        read_back = listed[cert.config_id]
        assert read_back.mismatches == ()
        assert replace(read_back, created_at="") == replace(cert, created_at="")
        assert read_back.ari_id and read_back.directory_url == issuer.directory_url
        assert read_back.secret_id == cert.secret_id


def test_a_label_that_disagrees_with_its_certificate_is_flagged(
    issuer: AcmeIssuer, store: CertStore
) -> None:
    (good,) = issue_and_store(issuer, store, "liar.example.test")
    api = Swarm().api
    config = api.inspect_config(good.config_id)
    labels = dict(config["Spec"]["Labels"], **{CERT_SERIAL: "1234"})
    name = good.config_name[:-6] + "beefed"
    secret = api.create_secret(name, b"unused", labels={**labels, KIND: "key"})
    lying = api.create_config(
        name, base64.b64decode(config["Spec"]["Data"]),
        labels={**labels, "certbotless.cert.key_secret": name, KIND: ObjectRole.CHAIN},
    )  # fmt: skip
    try:
        (flagged,) = [c for c in store.inventory() if c.config_id == lying["ID"]]
        assert flagged.serial == good.serial, "the certificate wins"
        assert any(m.startswith(CERT_SERIAL) and "1234" in m for m in flagged.mismatches)
    finally:
        api.remove_config(lying["ID"])
        api.remove_secret(secret["ID"])


def test_several_certificates_roll_in_one_update_and_are_verified_served(
    issuer: AcmeIssuer, store: CertStore, rolltest: None, figure: Any
) -> None:
    first = {c.name: c for c in issue_and_store(issuer, store, *HOSTS)}
    roll_to(store, first)
    second = {c.name: c for c in issue_and_store(issuer, store, *HOSTS)}
    before = service_refs()
    seconds = roll_to(store, second)
    after = service_refs()
    previous = service_refs("PreviousSpec")
    for host in HOSTS:
        chain = f"/etc/nginx/certs/{host}/fullchain.pem"
        key = f"/etc/nginx/certs/{host}/privkey.pem"
        # One update swapped both certificates: the previous spec holds both old versions.
        assert (previous[chain], previous[key]) == (first[host].config_id, first[host].secret_id)
        assert (after[chain], after[key]) == (second[host].config_id, second[host].secret_id)
        assert set(served().serials(host).values()) == {second[host].serial}
    assert before == previous
    figure(f"rollout of 2 certificates, update call → new serials served: {seconds:.1f} s")


class ConcurrentlyUpdatedSwarm(Swarm):
    """Someone else updates the service just before our first update lands."""

    calls = 0

    def update_service(self, service: dict[str, Any], spec: dict[str, Any]) -> None:
        self.calls += 1
        if self.calls == 1:
            docker("service", "update", "--detach", "--label-add", "other=team", SERVICE)
        super().update_service(service, spec)


def test_update_out_of_sequence_is_retried_without_losing_the_other_change(
    issuer: AcmeIssuer, store: CertStore, rolltest: None
) -> None:
    fresh = {c.name: c for c in issue_and_store(issuer, store, *HOSTS)}
    swarm = ConcurrentlyUpdatedSwarm()
    wanted = edge_references(ROUTES, fresh, conf_for(store, fresh), "/etc/nginx/certs")
    roll_service(swarm, SERVICE, wanted, 120, served=served())
    assert swarm.calls == 2
    assert Swarm().inspect_service(SERVICE)["Spec"]["Labels"].get("other") == "team"


def test_a_roll_swarm_refuses_is_rolled_back_and_reported(
    issuer: AcmeIssuer, store: CertStore, rolltest: None
) -> None:
    good = latest_per_name(store.inventory(), datetime.now(UTC))
    serving = {host: good[host].serial for host in HOSTS}
    a_new, b_new = (issuer.issue(CertSpec(h, (h,))) for h in HOSTS)
    # A chain with someone else's key: nginx -t with stand-ins passes, the real nginx cannot start.
    broken = store.save(IssuedCert(a_new.spec, a_new.fullchain_pem, b_new.key_pem))
    with pytest.raises(
        RolledBack, match="rolled back: the previous certificates serve again"
    ) as refused:
        roll_to(store, {**good, HOSTS[0]: broken})
    assert refused.value.rotated == (broken.config_id,)
    for host in HOSTS:
        assert set(served().serials(host).values()) == {serving[host]}
    kept = {c.config_id for c in store.inventory()}
    assert broken.config_id in kept and good[HOSTS[0]].config_id in kept, "nothing deleted"


def test_gc_keeps_what_current_and_previous_specs_reference(
    issuer: AcmeIssuer, store: CertStore, rolltest: None
) -> None:
    swarm = Swarm()
    for _ in range(2):
        roll_to(store, {c.name: c for c in issue_and_store(issuer, store, *HOSTS)})
    in_use = set(service_refs().values()) | set(service_refs("PreviousSpec").values())
    env = {**os.environ, "CERTBOTLESS_GC_KEEP_VERSIONS": "1", "CERTBOTLESS_SELF_CHECK": "false",
           "CERTBOTLESS_LOCK_FILE": "/tmp/cbl-gc-test.lock"}  # fmt: skip
    dry = subprocess.run(
        [".venv/bin/certbotless", "gc", "--dry-run"], env=env, capture_output=True, text=True
    )
    assert dry.returncode == 0, dry.stderr
    doomed = plan_garbage(
        store.inventory(), store.collectable_objects(), swarm.referenced_object_ids(),
        set(), datetime.now(UTC), 1, timedelta(0),
    )  # fmt: skip
    roll_versions = [r for r in doomed if r.target.name.startswith("cbl-roll-")]
    assert roll_versions, "older roll-a/roll-b versions are collectable"
    assert not {r.target.object_id for r in doomed} & in_use
    for removal in roll_versions:
        assert f"would remove {removal.target.kind} {removal.target.name}" in dry.stdout
    existing = {c.config_id for c in store.inventory()}
    assert {r.target.object_id for r in roll_versions if r.target.kind == "config"} <= existing
    for removal in roll_versions:
        store.remove(removal.target)
    # Swarm can still roll back to the previous spec: nothing it names was removed.
    docker("service", "rollback", "--detach", SERVICE)
    deadline = time.monotonic() + 60
    state = ""
    while time.monotonic() < deadline:
        status = swarm.inspect_service(SERVICE).get("UpdateStatus", {})
        state = status.get("State", "")
        if state == "rollback_completed":
            break
        time.sleep(0.5)
    assert state == "rollback_completed", json.dumps(status)


def test_gc_after_refused_rolls_keeps_the_only_usable_version(
    issuer: AcmeIssuer, store: CertStore, rolltest: None, figure: Any
) -> None:
    """Issue 14, item 2 (reproduced on main): two rolls Swarm refuses leave two refused versions
    newer than the one in use. Once no spec names that one (here two updates of the edge that
    drop certbotless's references, as `docker stack deploy` does), gc with KEEP_VERSIONS=1
    removed it, the only usable version. Refused versions do not count: they go, it stays."""
    swarm = Swarm()
    good = {c.name: c for c in issue_and_store(issuer, store, *HOSTS)}
    roll_to(store, good)
    refused = []
    for _ in range(2):
        a_new, b_new = (issuer.issue(CertSpec(h, (h,))) for h in HOSTS)
        broken = store.save(IssuedCert(a_new.spec, a_new.fullchain_pem, b_new.key_pem))
        with pytest.raises(RolledBack):
            roll_to(store, {**good, HOSTS[0]: broken})
        store.mark_refused(broken, "Swarm rolled back the update (swarm test)")
        refused.append(broken)
    usable = good[HOSTS[0]]
    in_use = latest_per_name(store.inventory(), datetime.now(UTC))[HOSTS[0]]
    assert in_use.config_id == usable.config_id
    # Neither the spec nor the previous spec names roll-a's versions any more.
    roll_to(store, {HOSTS[1]: good[HOSTS[1]]})
    docker("service", "update", "--detach", "--label-add", "cbl-test=dropped", SERVICE)
    referenced = swarm.referenced_object_ids()
    assert not {usable.config_id, usable.secret_id, *(c.config_id for c in refused)} & referenced
    env = {**os.environ, "CERTBOTLESS_GC_KEEP_VERSIONS": "1", "CERTBOTLESS_SELF_CHECK": "false",
           "CERTBOTLESS_LOCK_FILE": "/tmp/cbl-gc-test.lock"}  # fmt: skip
    dry = subprocess.run(
        [".venv/bin/certbotless", "gc", "--dry-run"], env=env, capture_output=True, text=True
    )
    assert dry.returncode == 0, dry.stderr
    # `gc` prints "would remove <kind> <name>: <why>" per object.
    assert f"would remove config {usable.config_name}:" not in dry.stdout, dry.stdout
    assert f"would remove secret {usable.secret_name}:" not in dry.stdout, dry.stdout
    for cert in refused:
        assert f"would remove config {cert.config_name}:" in dry.stdout, dry.stdout
    refused_ids = {object_id for c in refused for object_id in (c.config_id, c.secret_id)}
    for wanted in (set(), set(HOSTS)):  # whether or not a label still asks for roll-a
        doomed = plan_garbage(
            store.inventory(), store.collectable_objects(), referenced, wanted,
            datetime.now(UTC), 1, timedelta(0),
        )  # fmt: skip
        removed = {r.target.object_id for r in doomed}
        assert not {usable.config_id, usable.secret_id} & removed
        assert refused_ids <= removed
    for removal in doomed:
        if removal.target.object_id in refused_ids:
            store.remove(removal.target)
    # What gc kept still rolls and serves.
    roll_to(store, good)
    assert set(served().serials(HOSTS[0]).values()) == {usable.serial}
    figure("gc after 2 refused rolls, KEEP_VERSIONS=1, no spec naming the version in use: "
           "the usable version kept, the 2 refused ones removed")  # fmt: skip


def test_the_edge_image_checks_the_real_files_before_any_roll(
    issuer: AcmeIssuer, store: CertStore, rolltest: None
) -> None:
    good = {c.name: c for c in issue_and_store(issuer, store, *HOSTS)}
    conf = conf_for(store, good)
    files = render_nginx_conf(ROUTES, good, "certbotless:8402", "/etc/nginx/certs")
    service = Swarm().inspect_service(SERVICE)
    warnings = check_in_edge_image(
        Swarm(), service, edge_references(ROUTES, good, conf, "/etc/nginx/certs"), files, 60
    )
    assert warnings == ()
    a_new, b_new = (issuer.issue(CertSpec(h, (h,))) for h in HOSTS)
    broken = store.save(IssuedCert(a_new.spec, a_new.fullchain_pem, b_new.key_pem))
    wanted = edge_references(ROUTES, {**good, HOSTS[0]: broken}, conf, "/etc/nginx/certs")
    before = Swarm().inspect_service(SERVICE)["Version"]["Index"]
    with pytest.raises(NginxConfigError, match="key values mismatch"):
        check_in_edge_image(Swarm(), service, wanted, files, 60)
    assert Swarm().inspect_service(SERVICE)["Version"]["Index"] == before, "nothing rolled"
    assert not docker("service", "ls", "-q", "--filter", "name=cbl-nginx-check").strip()
