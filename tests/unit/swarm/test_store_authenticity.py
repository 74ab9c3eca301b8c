"""The store trusts only what certbotless made: a MAC label over each object's identity, keyed
with the sidecar's key. Forged, copied and tampered labels are ignored and reported, never
removed; objects of earlier releases are adopted only while the edge mounts them."""

from __future__ import annotations

import base64
import itertools
from datetime import date
from pathlib import Path
from typing import Any, cast

import pytest
from docker.errors import APIError

from certbotless.model import CertSpec, IssuedCert, ObjectKind
from certbotless.ops.doctor import store_check
from certbotless.swarm.api import Swarm
from certbotless.swarm.authenticity import MAC, NOT_MADE_HERE, StoreKey, read_store_key
from certbotless.swarm.store import (
    ACCOUNT_KEY_SECRET,
    CERT_KEY_SECRET,
    CERT_NAME,
    KIND,
    MANAGED,
    CertStore,
    certificate_labels,
    nginx_conf_name,
)
from tests.unit.swarm.test_store_records import chain_pem

KEY = StoreKey(b"k" * 32)
HOST = "shop.example.test"
Item = dict[str, Any]


class ObjectsSwarm:
    """Configs and secrets as the Docker API lists them (a secret's data never comes back),
    with label-only updates."""

    def __init__(self) -> None:
        self.items: dict[str, tuple[ObjectKind, Item]] = {}
        self._ids = itertools.count(1)

    def add(self, kind: ObjectKind, name: str, data: bytes, labels: dict[str, str]) -> str:
        """What anyone may do: create an object with any labels (a tenant's stack file)."""
        number = next(self._ids)
        object_id = f"{kind.value}-{number}"
        spec: Item = {"Name": name, "Labels": dict(labels)}
        if kind == ObjectKind.CONFIG:
            spec["Data"] = base64.b64encode(data).decode()
        created = f"2026-12-01T00:{number // 60:02d}:{number % 60:02d}.5Z"  # in creation order
        self.items[object_id] = (kind, {"ID": object_id, "CreatedAt": created, "Spec": spec,
                                        "Version": {"Index": 1}})  # fmt: skip
        return object_id

    def create_config(self, name: str, data: bytes, labels: dict[str, str]) -> str:
        return self.add(ObjectKind.CONFIG, name, data, labels)

    def create_secret(self, name: str, data: bytes, labels: dict[str, str]) -> str:
        return self.add(ObjectKind.SECRET, name, data, labels)

    def configs(self, label: str) -> list[Item]:
        return self._listed(ObjectKind.CONFIG, label)

    def secrets(self, label: str) -> list[Item]:
        return self._listed(ObjectKind.SECRET, label)

    def inspect_object(self, kind: ObjectKind, object_id: str) -> Item:
        return self.items[object_id][1]

    def update_object_labels(self, kind: ObjectKind, item: Item, labels: dict[str, str]) -> None:
        self.items[item["ID"]][1]["Spec"]["Labels"] = dict(labels)

    def inspect_config_labels(self, config_id: str) -> dict[str, str]:
        return dict(self.items[config_id][1]["Spec"]["Labels"])

    def update_config_labels(
        self, config_id: str, labels: dict[str, str], read: Item | None = None
    ) -> None:
        self.items[config_id][1]["Spec"]["Labels"] = dict(labels)

    def remove_config(self, name: str) -> None:  # by name, as certbotless removes
        self._remove(ObjectKind.CONFIG, name)

    def remove_secret(self, name: str) -> None:
        self._remove(ObjectKind.SECRET, name)

    def _remove(self, kind: ObjectKind, name: str) -> None:
        [object_id] = [i for i, (k, item) in self.items.items()
                       if k == kind and item["Spec"]["Name"] == name]  # fmt: skip
        del self.items[object_id]

    def _listed(self, kind: ObjectKind, label: str) -> list[Item]:
        key, has_value, value = label.partition("=")
        return [
            item
            for item_kind, item in self.items.values()
            if item_kind == kind
            and key in item["Spec"]["Labels"]
            and (not has_value or item["Spec"]["Labels"][key] == value)
        ]


def store_on(swarm: ObjectsSwarm, key: StoreKey | None = KEY) -> CertStore:
    return CertStore(cast(Swarm, swarm), key)


def issued(name: str = HOST, serial: int = 0x1234) -> IssuedCert:
    return IssuedCert(CertSpec(name, (HOST,)), chain_pem([HOST], serial), b"key")


def plant_pair(swarm: ObjectsSwarm, name: str, serial: int, mac: str = "") -> tuple[str, str]:
    """A tenant's chain config and key secret with certbotless's labels (and `mac`, if any)."""
    cert = issued(serial=serial)
    labels = {**certificate_labels(cert, name), **({MAC: mac} if mac else {})}
    secret_id = swarm.add(ObjectKind.SECRET, name, b"their key", {**labels, KIND: "key"})
    config_id = swarm.add(ObjectKind.CONFIG, name, cert.fullchain_pem, {**labels, KIND: "chain"})
    return config_id, secret_id


def test_what_certbotless_saves_is_signed_and_listed() -> None:
    swarm = ObjectsSwarm()
    store = store_on(swarm)
    saved = store.save(issued())
    for object_id in (saved.config_id, saved.secret_id):
        kind, item = swarm.items[object_id]
        assert KEY.verifies(kind, item)
    assert [c.serial for c in store.inventory()] == [saved.serial]
    assert store.untrusted() == []


def test_planted_objects_are_ignored_reported_and_never_collected() -> None:
    swarm = ObjectsSwarm()
    store = store_on(swarm)
    real = store.save(issued())
    forged = plant_pair(swarm, "shop_forged", 0x666)
    assert [c.serial for c in store.inventory()] == [real.serial]
    problems = store.untrusted()
    assert {p.service for p in problems} == {"config shop_forged", "secret shop_forged"}
    for object_id, problem in zip(forged, sorted(problems, key=lambda p: p.service), strict=True):
        assert object_id in problem.message and NOT_MADE_HERE in problem.message
    collectable = {o.object_id for o in store.collectable_objects()}
    assert collectable == {real.config_id, real.secret_id}


def test_a_mac_made_with_another_key_is_rejected() -> None:
    swarm = ObjectsSwarm()
    config_id, _ = plant_pair(swarm, "shop_forged", 0x666)
    kind, item = swarm.items[config_id]
    item["Spec"]["Labels"][MAC] = StoreKey(b"guess" * 8).mac(kind, item)
    assert store_on(swarm).inventory() == []


def test_a_mac_copied_onto_another_object_is_rejected() -> None:
    """Same name pattern, same labels, same content: only the ID differs, and the MAC with it."""
    swarm = ObjectsSwarm()
    store = store_on(swarm)
    real = store.save(issued())
    real_labels = swarm.items[real.config_id][1]["Spec"]["Labels"]
    swarm.remove_config(real.config_name)  # gone (gc), so its name is free again
    _, copy = swarm.items[swarm.add(ObjectKind.CONFIG, real.config_name,
                                    issued().fullchain_pem, real_labels)]  # fmt: skip
    assert copy["Spec"]["Labels"][MAC] == real_labels[MAC]
    assert store.inventory() == []
    assert [p.service for p in store.untrusted()] == [f"config {real.config_name}"]


def test_a_signed_chain_whose_content_or_identity_labels_change_is_rejected() -> None:
    swarm = ObjectsSwarm()
    store = store_on(swarm)
    real = store.save(issued())
    _, item = swarm.items[real.config_id]
    other_chain = base64.b64encode(chain_pem([HOST], 0x999)).decode()
    for change in ({"Data": other_chain}, {"Labels": {**item["Spec"]["Labels"], CERT_NAME: "x"}},
                   {"Labels": {**item["Spec"]["Labels"], CERT_KEY_SECRET: "x"}}):  # fmt: skip
        before = dict(item["Spec"])
        item["Spec"].update(change)
        assert not KEY.verifies(ObjectKind.CONFIG, item), change
        item["Spec"] = before
    assert KEY.verifies(ObjectKind.CONFIG, item)


def test_labels_certbotless_adds_later_keep_the_mac_valid() -> None:
    swarm = ObjectsSwarm()
    store = store_on(swarm)
    real = store.save(issued())
    store.mark_refused(real, "Swarm rolled it back")
    assert [c.refused for c in store.inventory()] == ["Swarm rolled it back"]


def test_earlier_releases_objects_are_adopted_only_while_the_edge_mounts_them() -> None:
    swarm = ObjectsSwarm()
    mounted = plant_pair(swarm, "cbl-shop-old", 0x111)  # made by a release that did not sign
    older = plant_pair(swarm, "cbl-shop-older", 0x110)
    forged_mac = plant_pair(swarm, "shop_forged", 0x666, mac="0" * 64)
    store = store_on(swarm)
    assert len(store.untrusted()) == 6
    adopted = store.adopt({*mounted, *forged_mac})
    assert adopted == ["cbl-shop-old", "cbl-shop-old"]  # its config and its secret
    assert [c.serial for c in store.inventory()] == ["111"]
    left = {p.service for p in store.untrusted()}
    assert left == {"config cbl-shop-older", "secret cbl-shop-older",
                    "config shop_forged", "secret shop_forged"}  # fmt: skip
    assert not {*older, *forged_mac} & {o.object_id for o in store.collectable_objects()}


def test_without_the_key_nothing_is_told_apart_or_signed() -> None:
    swarm = ObjectsSwarm()
    store = store_on(swarm, key=None)
    saved = store.save(issued())
    assert MAC not in swarm.items[saved.config_id][1]["Spec"]["Labels"]
    plant_pair(swarm, "shop_forged", 0x666)
    assert len(store.inventory()) == 2 and store.untrusted() == []


class RefusingLabels(ObjectsSwarm):
    def update_object_labels(self, kind: ObjectKind, item: Item, labels: dict[str, str]) -> None:
        raise APIError("refused")


def test_an_unsignable_object_is_removed_again() -> None:
    swarm = RefusingLabels()
    with pytest.raises(APIError, match="refused"):
        store_on(swarm).save(issued())
    assert swarm.items == {}


class NamesUnique(ObjectsSwarm):
    """Swarm refuses a second object of a kind with a name in use (409)."""

    def add(self, kind: ObjectKind, name: str, data: bytes, labels: dict[str, str]) -> str:
        if any(k == kind and i["Spec"]["Name"] == name for k, i in self.items.values()):
            raise APIError("name conflicts", response=cast(Any, Conflict()))
        return super().add(kind, name, data, labels)


class Conflict:
    status_code = 409
    reason = "Conflict"
    url = ""


def test_a_planted_name_blocks_nothing_certbotless_makes_another() -> None:
    swarm = NamesUnique()
    today = date(2026, 12, 7)
    swarm.add(ObjectKind.SECRET, "cbl-tls-ticket-key-20261207", b"known to them",
              {MANAGED: "true", KIND: "ticket-key"})  # fmt: skip
    store = store_on(swarm)
    [(name, key_id)] = store.ensure_ticket_keys(today)
    assert name.startswith("cbl-tls-ticket-key-20261207-r") and len(name) == 35
    assert store.ensure_ticket_keys(today) == [(name, key_id)]  # made once, found again
    conf = {"/etc/nginx/nginx.conf": "events {}"}
    planted = nginx_conf_name("events {}")
    swarm.add(ObjectKind.CONFIG, planted, b"theirs", {MANAGED: "true", KIND: "nginx-conf"})
    made = store.ensure_nginx_confs(conf)
    assert made["/etc/nginx/nginx.conf"][0].startswith(planted + "-r")
    assert store.ensure_nginx_confs(conf) == made  # content-addressed still: no new roll


def test_the_key_file(tmp_path: Path) -> None:
    assert read_store_key(tmp_path / "absent") is None
    (tmp_path / "short").write_bytes(b"x" * 8)
    assert read_store_key(tmp_path / "short") is None  # not a key certbotless made
    (tmp_path / "key").write_bytes(b"x" * 32)
    assert read_store_key(tmp_path / "key") == StoreKey(b"x" * 32)
    assert "x" * 8 not in repr(read_store_key(tmp_path / "key"))


def test_managed_label_alone_does_not_make_an_object_collectable() -> None:
    swarm = ObjectsSwarm()
    swarm.add(ObjectKind.CONFIG, "cbl-nginx-0123", b"events {}", {MANAGED: "true",
                                                                   KIND: "nginx-conf"})  # fmt: skip
    assert store_on(swarm).collectable_objects() == []


def test_the_doctor_names_what_certbotless_did_not_make() -> None:
    swarm = ObjectsSwarm()
    forged = plant_pair(swarm, "shop_forged", 0x666)
    check = store_check(store_on(swarm))
    assert not check.ok and all(object_id in check.detail for object_id in forged)
    assert store_check(store_on(ObjectsSwarm())).ok
    assert not store_check(store_on(swarm, key=None)).ok  # cannot tell: says so


def test_an_account_key_version_a_tenant_planted_is_never_the_accounts() -> None:
    """Anyone's stack file may make a secret named like a newer account key version, with its
    labels: taken, its key would make the ACME account the tenant's. Only a version certbotless
    signed counts, or one made before the store key (by a release before signing: signed now)."""
    swarm = ObjectsSwarm()
    legacy = swarm.add(ObjectKind.SECRET, ACCOUNT_KEY_SECRET, b"k", {KIND: "account-key"})
    swarm.add(ObjectKind.SECRET, "cbl-store-key-20261201", b"s" * 32, {KIND: "store-key"})
    store = CertStore(cast(Swarm, swarm), KEY)
    assert store.account_key_secret() == (ACCOUNT_KEY_SECRET, legacy)
    assert MAC in swarm.items[legacy][1]["Spec"]["Labels"], "the legacy key is signed now"
    planted = f"{ACCOUNT_KEY_SECRET}-20991231235959abcdef"
    planted_id = swarm.add(ObjectKind.SECRET, planted, b"tenant's", {KIND: "account-key"})
    assert store.account_key_secret() == (ACCOUNT_KEY_SECRET, legacy)
    assert [p.message for p in store.objects.problems()] == [
        f"secret {planted} (ID {planted_id}) is {NOT_MADE_HERE} (docker secret rm {planted_id})"
    ]
    made = store.add_account_key_version(b"rolled", "thumb")
    assert store.account_key_secret() == made, "a version certbotless made is signed, and used"
