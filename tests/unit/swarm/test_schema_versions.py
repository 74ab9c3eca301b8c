"""Stored state carries its schema version (issue 26, item 3): for each kind of record, one an
earlier release wrote (no version: schema 1) is read and written back in the current schema; one
a newer release wrote is not read, never written over nor deleted, and reported once; and what
this release writes reads back the same. Over the swarm fake of test_store_authenticity, through
the real StatusConfig, lease, claims ledger, store and gc."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest

from certbotless.acme.dns01 import Dns01Solver, DnsProblem, PropagationPolicy
from certbotless.model import (
    CertificateStatus,
    Challenge,
    ChallengeType,
    Condition,
    DnsRecord,
    FailureReason,
    ObjectKind,
    PastOrder,
)
from certbotless.passes.garbage import collect_garbage
from certbotless.seams import DnsProvider
from certbotless.swarm.api import Swarm
from certbotless.swarm.authenticity import MAC
from certbotless.swarm.claims import CLAIMS_PREFIX, SwarmClaimLedger, mac_purpose
from certbotless.swarm.lease import EXPIRES, HOLDER, LeaseBusy, SwarmPassLock
from certbotless.swarm.locks import FilePassLock
from certbotless.swarm.schema import (
    CURRENT_SCHEMA,
    OBJECT_SCHEMA,
    NewerSchema,
    RecordKind,
    schema_of,
)
from certbotless.swarm.status import (
    DNS_RECORDS_LABEL,
    ORDERS_LABEL,
    STATUS_CONFIG,
    STATUS_PREFIX,
    NewerDnsLedger,
    StatusConfig,
    SwarmDnsRecordLedger,
    SwarmOrderHistory,
    SwarmStatusStore,
    past_orders_to_json,
)
from certbotless.swarm.status_json import status_from_json, status_to_json
from certbotless.swarm.store import KIND, MANAGED, CertStore, certificate_labels
from tests.support.fakes import SETTINGS, FakeDnsProvider
from tests.unit.acme.test_dns01_logic import MemoryLookup
from tests.unit.swarm.test_store_authenticity import KEY, ObjectsSwarm, issued

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
LONG_AGO = "2026-11-01T10:00:00.123456789Z"
NEWER = "this one reads up to 1): left as it is; upgrade certbotless"


def status_config(swarm: ObjectsSwarm) -> StatusConfig:
    return StatusConfig(cast(Swarm, swarm))


def labels_of(swarm: ObjectsSwarm, name: str = STATUS_CONFIG) -> dict[str, str]:
    [item] = [item for _, item in swarm.items.values() if item["Spec"]["Name"] == name]
    return dict(item["Spec"]["Labels"])


def plant_status_labels(swarm: ObjectsSwarm, labels: dict[str, str]) -> None:
    """The status config as another release left it."""
    swarm.add(ObjectKind.CONFIG, STATUS_CONFIG, b"status",
              {MANAGED: "true", KIND: "status", **labels})  # fmt: skip


def told(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "newer certbotless" in r.getMessage()]


# --- the rule ---------------------------------------------------------------------------------


def test_a_record_naming_no_schema_is_schema_1_and_garbage_is_none() -> None:
    assert [schema_of(v) for v in (None, "", "1", 2, "12")] == [1, 1, 1, 2, 12]
    assert [schema_of(v) for v in ("0", "-1", "two", 1.5, True, "²")] == [None] * 6
    words = str(NewerSchema(RecordKind.STATUS, "status record shop", 3))
    assert words == ("status record shop was written by a newer certbotless (schema 3, this one "
                     "reads up to 1): left as it is; upgrade certbotless")  # fmt: skip


# --- status records ---------------------------------------------------------------------------


def failing(name: str = "shop") -> CertificateStatus:
    return CertificateStatus(
        name, domains=("shop.example.test",), condition=Condition.FAILING,
        reason=FailureReason.CA_UNREACHABLE, message="CA down", failures=2,
        last_failure=NOW, next_attempt=NOW + timedelta(minutes=10), updated=NOW,
    )  # fmt: skip


def unversioned(record: CertificateStatus) -> str:
    """The record as releases before schema versions wrote it."""
    value = json.loads(status_to_json(record))
    del value["schema"]
    return json.dumps(value)


def test_a_status_record_round_trips_with_its_schema() -> None:
    text = status_to_json(failing())
    assert json.loads(text)["schema"] == 1
    assert status_from_json("shop", text) == failing()


def test_an_older_status_record_is_read_and_written_back_in_the_current_schema() -> None:
    swarm = ObjectsSwarm()
    plant_status_labels(swarm, {STATUS_PREFIX + "shop": unversioned(failing())})
    store = SwarmStatusStore(status_config(swarm))
    assert store.load() == {"shop": failing()}
    store.save(store.load())
    assert json.loads(labels_of(swarm)[STATUS_PREFIX + "shop"])["schema"] == 1
    assert store.load() == {"shop": failing()}


def test_a_newer_status_record_is_left_as_it_is_and_reported_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    newer = json.dumps({"schema": 2, "state": "a form this release does not know"})
    swarm = ObjectsSwarm()
    plant_status_labels(swarm, {STATUS_PREFIX + "shop": newer,
                                STATUS_PREFIX + "gone": newer})  # fmt: skip
    store = SwarmStatusStore(status_config(swarm))
    assert store.load() == {}
    store.load()
    # A pass's records: one for the same name (not written over), and none for `gone` (not
    # wanted here any more: not deleted), beside one of its own.
    store.save({"shop": failing(), "blog": failing("blog")})
    labels = labels_of(swarm)
    assert labels[STATUS_PREFIX + "shop"] == newer and labels[STATUS_PREFIX + "gone"] == newer
    assert store.load() == {"blog": failing("blog")}
    assert sorted(told(caplog)) == [
        f"status record {name} was written by a newer certbotless (schema 2, {NEWER}"
        for name in ("gone", "shop")
    ]


# --- the order history ------------------------------------------------------------------------


ORDERS = [PastOrder(NOW, ("shop.example.test",), True), PastOrder(NOW, ("b.test",), False, True)]


def test_an_older_order_history_is_read_and_written_back_in_the_current_schema() -> None:
    swarm = ObjectsSwarm()
    plant_status_labels(swarm, {ORDERS_LABEL: past_orders_to_json(ORDERS)})
    history = SwarmOrderHistory(status_config(swarm))
    assert history.load() == ORDERS
    history.save(history.load())
    assert labels_of(swarm)[ORDERS_LABEL + ".schema"] == "1"
    assert history.load() == ORDERS  # the round trip


def test_a_newer_order_history_is_left_as_it_is_and_reported_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    newer = {ORDERS_LABEL: '{"orders": "another form"}', ORDERS_LABEL + ".schema": "2"}
    swarm = ObjectsSwarm()
    plant_status_labels(swarm, newer)
    history = SwarmOrderHistory(status_config(swarm))
    assert history.load() == [] and history.load() == []
    history.save(ORDERS)
    assert {k: v for k, v in labels_of(swarm).items() if k.startswith(ORDERS_LABEL)} == newer
    assert told(caplog) == [
        f"the order history (label {ORDERS_LABEL} of config {STATUS_CONFIG}) was written by a "
        f"newer certbotless (schema 2, {NEWER}"
    ]


# --- the DNS-01 ledger ------------------------------------------------------------------------


RECORD = DnsRecord("_acme-challenge.example.com.", "v1", "example.com.", "rfc2136")


def test_an_older_dns_ledger_is_read_and_written_back_in_the_current_schema() -> None:
    swarm = ObjectsSwarm()
    plant_status_labels(swarm, {DNS_RECORDS_LABEL: json.dumps([RECORD.to_json()])})
    ledger = SwarmDnsRecordLedger(status_config(swarm))
    assert ledger.load() == [RECORD]
    other = DnsRecord("_acme-challenge.b.example.com.", "v2", "example.com.", "rfc2136")
    ledger.save([*ledger.load(), other])
    assert labels_of(swarm)[DNS_RECORDS_LABEL + ".schema"] == "1"
    assert ledger.load() == [RECORD, other]  # the round trip
    ledger.save([])
    assert not [k for k in labels_of(swarm) if k.startswith(DNS_RECORDS_LABEL)]


def solver_over(ledger: SwarmDnsRecordLedger, zone: FakeDnsProvider) -> Dns01Solver:
    def providers(name: str) -> DnsProvider:
        return zone

    policy = PropagationPolicy(timeout=0.3, interval=0.1)
    return Dns01Solver(providers, ledger, MemoryLookup(zone), "rfc2136", policy, lambda _: None)


def test_a_newer_dns_ledger_is_left_as_it_is_and_dns01_publishes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    newer = {DNS_RECORDS_LABEL: '{"records": "another form"}', DNS_RECORDS_LABEL + ".schema": "3"}
    swarm = ObjectsSwarm()
    plant_status_labels(swarm, newer)
    ledger = SwarmDnsRecordLedger(status_config(swarm))
    assert ledger.load() == []
    ledger.save([])  # nothing to note: nothing written, nothing deleted
    with pytest.raises(NewerDnsLedger, match="DNS-01 cannot note its TXT records: the DNS-01 "
                       r"ledger .* \(schema 3, this one reads up to 1\)"):  # fmt: skip
        ledger.save([RECORD])
    # The solver: a record it cannot note is never published, and no clean-up is owed.
    zone = FakeDnsProvider()
    dns01 = solver_over(ledger, zone)
    challenge = Challenge("example.com", "t" * 43, "k1", ChallengeType.DNS01)
    with pytest.raises(DnsProblem, match="newer certbotless"):
        dns01.present(challenge)
    assert zone.calls == [] and dns01.withdraw_leftovers() == []
    assert {k: v for k, v in labels_of(swarm).items() if k.startswith(DNS_RECORDS_LABEL)} == newer
    assert len(told(caplog)) == 1


# --- the claims ledger ------------------------------------------------------------------------


CLAIMS = {"host:shop.example.test": "svc1", "certificate:shop": "svc1"}


def claims_on(swarm: ObjectsSwarm) -> SwarmClaimLedger:
    return SwarmClaimLedger(status_config(swarm), lambda: KEY)


def test_an_older_claims_ledger_is_read_and_written_back_in_the_current_schema() -> None:
    text = json.dumps(CLAIMS)
    swarm = ObjectsSwarm()
    plant_status_labels(swarm, {CLAIMS_PREFIX + "ledger": text,
                                CLAIMS_PREFIX + "mac": KEY.mac_text("claims", text)})  # fmt: skip
    ledger = claims_on(swarm)
    assert ledger.load() == CLAIMS
    ledger.save(ledger.load())
    assert labels_of(swarm)[CLAIMS_PREFIX + "schema"] == "1"
    assert ledger.load() == CLAIMS  # the round trip


def test_a_newer_signed_claims_ledger_is_left_as_it_is_and_reported_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    text = '{"claims": "another form"}'
    newer = {CLAIMS_PREFIX + "ledger": text, CLAIMS_PREFIX + "schema": "2",
             CLAIMS_PREFIX + "mac": KEY.mac_text(mac_purpose(2), text)}  # fmt: skip
    swarm = ObjectsSwarm()
    plant_status_labels(swarm, newer)
    ledger = claims_on(swarm)
    assert ledger.load() == {} and ledger.load() == {}
    ledger.save(CLAIMS)
    assert {k: v for k, v in labels_of(swarm).items() if k.startswith(CLAIMS_PREFIX)} == newer
    assert len(told(caplog)) == 1 and "the claims ledger (labels" in told(caplog)[0]


def test_a_schema_label_raised_by_hand_does_not_stop_the_sidecar_writing() -> None:
    """The MAC names the schema: a signed schema-1 ledger relabelled 2 is a forged one."""
    swarm = ObjectsSwarm()
    ledger = claims_on(swarm)
    ledger.save(CLAIMS)
    config = next(item for _, item in swarm.items.values()
                  if item["Spec"]["Name"] == STATUS_CONFIG)  # fmt: skip
    config["Spec"]["Labels"][CLAIMS_PREFIX + "schema"] = "2"
    assert ledger.load() == {}
    ledger.save({"host:blog.example.test": "svc2"})
    assert ledger.load() == {"host:blog.example.test": "svc2"}


# --- the pass lease ---------------------------------------------------------------------------


def lease_on(swarm: ObjectsSwarm, tmp_path: Path) -> SwarmPassLock:
    return SwarmPassLock(cast(Swarm, swarm), FilePassLock(tmp_path / "pass.lock"), "sidecar-a",
                         wait=timedelta(seconds=0))  # fmt: skip


def plant_lease(swarm: ObjectsSwarm, labels: dict[str, str]) -> None:
    swarm.add(ObjectKind.CONFIG, "cbl-pass-lease", b"lease",
              {MANAGED: "true", KIND: "pass-lease", **labels})  # fmt: skip


def test_an_older_lease_is_taken_and_written_back_in_the_current_schema(tmp_path: Path) -> None:
    swarm = ObjectsSwarm()
    plant_lease(swarm, {HOLDER: "", EXPIRES: ""})  # released by a release before schemas
    lease = lease_on(swarm, tmp_path)
    with lease.hold():
        assert lease.state().holder == "sidecar-a"  # the round trip
        assert labels_of(swarm, "cbl-pass-lease")["certbotless.lease.schema"] == "1"
    assert lease.state().holder == ""


def test_a_newer_lease_is_left_as_it_is_and_no_pass_runs(tmp_path: Path) -> None:
    swarm = ObjectsSwarm()
    newer = {HOLDER: "", EXPIRES: "", "certbotless.lease.schema": "2", "certbotless.lease.x": "y"}
    plant_lease(swarm, newer)
    lease = lease_on(swarm, tmp_path)
    ran = threading.Event()
    with (
        pytest.raises(
            LeaseBusy,
            match=r"the pass lease \(config cbl-pass-lease\) was written "
            r"by a newer certbotless \(schema 2, .* docker config rm cbl-pass-lease",
        ),
        lease.hold(),
    ):
        ran.set()
    assert not ran.is_set()
    assert lease.state().newer.startswith("the pass lease (config cbl-pass-lease) was written")
    assert labels_of(swarm, "cbl-pass-lease") == {MANAGED: "true", KIND: "pass-lease", **newer}


# --- stored objects' labels, and gc -----------------------------------------------------------


def signed(swarm: ObjectsSwarm, kind: ObjectKind, name: str, data: bytes,
           labels: dict[str, str]) -> str:  # fmt: skip
    """An object as a release made and signed it (a newer one: with its schema label)."""
    object_id = swarm.add(kind, name, data, labels)
    item = swarm.items[object_id][1]
    item["CreatedAt"] = LONG_AGO
    item["Spec"]["Labels"][MAC] = KEY.mac(kind, item)
    return object_id


def newer_pair(swarm: ObjectsSwarm, name: str, serial: int) -> tuple[str, str]:
    cert = issued(serial=serial)
    labels = {**certificate_labels(cert, name), OBJECT_SCHEMA: "2"}
    secret = signed(swarm, ObjectKind.SECRET, name, b"key", {**labels, KIND: "key"})
    config = signed(swarm, ObjectKind.CONFIG, name, cert.fullchain_pem, {**labels, KIND: "chain"})
    return config, secret


def test_what_the_store_makes_carries_the_schema_and_reads_back() -> None:
    swarm = ObjectsSwarm()
    store = CertStore(cast(Swarm, swarm), KEY)
    saved = store.save(issued())
    store.mark_refused(saved, "Swarm rolled it back")
    for object_id in (saved.config_id, saved.secret_id):
        assert swarm.items[object_id][1]["Spec"]["Labels"][OBJECT_SCHEMA] == "1"
    assert [(c.serial, c.refused) for c in store.inventory()] == [
        (saved.serial, "Swarm rolled it back")
    ]


def test_an_older_object_is_read_and_signed_in_the_current_schema() -> None:
    swarm = ObjectsSwarm()
    cert = issued(serial=0x111)
    labels = certificate_labels(cert, "cbl-shop-old")  # no schema label: a release before
    secret = signed(swarm, ObjectKind.SECRET, "cbl-shop-old", b"key", {**labels, KIND: "key"})
    # Unsigned (made before releases signed), mounted by the edge: adopted below.
    config = swarm.add(ObjectKind.CONFIG, "cbl-shop-old", cert.fullchain_pem,
                       {**labels, KIND: "chain"})  # fmt: skip
    store = CertStore(cast(Swarm, swarm), KEY)
    assert [c.serial for c in store.inventory()] == []
    store.untrusted()
    assert store.adopt({config, secret}) == ["cbl-shop-old"]
    assert [c.serial for c in store.inventory()] == ["111"]
    assert swarm.items[config][1]["Spec"]["Labels"][OBJECT_SCHEMA] == "1"


def test_objects_a_newer_release_made_are_never_read_signed_or_collected(
    caplog: pytest.LogCaptureFixture,
) -> None:
    swarm = ObjectsSwarm()
    store = CertStore(cast(Swarm, swarm), KEY)
    # Halves of pairs (their key secrets are gone): gc removes such a chain of its own.
    newer_half, newer_key = newer_pair(swarm, "cbl-shop-newer", 0x222)
    swarm.remove_secret("cbl-shop-newer")
    half = issued(serial=0x333)
    labels = {**certificate_labels(half, "cbl-shop-half"), KIND: "chain"}
    older_half = signed(swarm, ObjectKind.CONFIG, "cbl-shop-half", half.fullchain_pem, labels)
    # Ticket keys beyond the newest two, of either schema.
    ticket_key = {MANAGED: "true", KIND: "ticket-key"}
    signed(swarm, ObjectKind.SECRET, "cbl-tls-ticket-key-20261101", b"k" * 80,
           {**ticket_key, OBJECT_SCHEMA: "2"})  # fmt: skip
    signed(swarm, ObjectKind.SECRET, "cbl-tls-ticket-key-20261102", b"k" * 80, ticket_key)
    store.ensure_ticket_keys(datetime(2026, 12, 6).date())
    store.ensure_ticket_keys(datetime(2026, 12, 7).date())
    stack_file = swarm.add(ObjectKind.CONFIG, "certbotless_front_haproxy_cfg_0123abcd", b"cfg",
                           {KIND: "stack-file", OBJECT_SCHEMA: "2"})  # fmt: skip
    swarm.items[stack_file][1]["CreatedAt"] = LONG_AGO

    assert store.inventory() == []
    problems = {p.service: p.message for p in store.untrusted()}
    assert problems["config cbl-shop-newer"] == (
        f"config cbl-shop-newer (chain) was written by a newer certbotless (schema 2, {NEWER}"
    )
    removed = collect_garbage(store, set(), store.inventory(), set(), SETTINGS, dry_run=False)
    assert {r.target.name for r in removed} == {"cbl-shop-half", "cbl-tls-ticket-key-20261102"}
    assert older_half not in swarm.items
    assert newer_half in swarm.items and stack_file in swarm.items
    assert "cbl-tls-ticket-key-20261101" in {i["Spec"]["Name"] for _, i in swarm.items.values()}
    assert newer_key not in swarm.items  # removed by hand above, not by gc
    # Each is reported once, however often the store is listed.
    store.untrusted()
    store.inventory()
    assert len(told(caplog)) == len(set(told(caplog))) == 3


def test_every_kind_has_a_schema_this_release_writes() -> None:
    assert set(CURRENT_SCHEMA) == set(RecordKind)
    assert all(version >= 1 for version in CURRENT_SCHEMA.values())
