"""The store key: made once, mounted into the sidecar's own service beside the account key, and
after a `docker stack deploy` dropped the mount, the oldest store key secret is mounted again (one
planted later cannot be older)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from certbotless.ops.store_key import StoreKeyMounted, resolve_store_key, store_key_file
from certbotless.settings import Settings
from certbotless.swarm.api import Swarm
from certbotless.swarm.authenticity import StoreKey

ACCOUNT_KEY_REF = {
    "File": {"Name": "/run/secrets/certbotless-account-key", "UID": "0", "GID": "0", "Mode": 256},
    "SecretID": "account-id",
    "SecretName": "cbl-acme-account-key",
}


class OwnService:
    """The sidecar's service and the swarm's secrets, as resolve_store_key sees them."""

    def __init__(self) -> None:
        self.made: list[dict[str, Any]] = []
        self.spec: dict[str, Any] = {
            "Name": "edge_certbotless",
            "TaskTemplate": {"ContainerSpec": {"Secrets": [dict(ACCOUNT_KEY_REF)]}},
        }

    def own_service_name(self) -> str:
        return "edge_certbotless"

    def secrets(self, label: str) -> list[dict[str, Any]]:
        key, _, value = label.partition("=")
        return [s for s in self.made if s["Spec"]["Labels"].get(key) == value]

    def create_secret(self, name: str, data: bytes, labels: dict[str, str]) -> str:
        assert len(data) == 32
        created = f"2026-12-07T00:00:{len(self.made):02}Z"
        self.made.append({"ID": f"id-{name}", "CreatedAt": created,
                          "Spec": {"Name": name, "Labels": labels}})  # fmt: skip
        return f"id-{name}"

    def inspect_service(self, name: str) -> dict[str, Any]:
        return {"Spec": self.spec, "Version": {"Index": 1}}

    def update_service(self, service: dict[str, Any], spec: dict[str, Any]) -> None:
        self.spec = spec

    def mounted(self) -> dict[str, str]:
        refs = self.spec["TaskTemplate"]["ContainerSpec"]["Secrets"]
        return {ref["File"]["Name"]: ref["SecretName"] for ref in refs}


def settings(tmp_path: Path) -> Settings:
    return Settings(account_key_file=tmp_path / "certbotless-account-key")


def test_the_first_start_makes_the_key_and_mounts_it_beside_the_account_key(
    tmp_path: Path,
) -> None:
    swarm = OwnService()
    with pytest.raises(StoreKeyMounted):
        resolve_store_key(settings(tmp_path), cast(Swarm, swarm), True)
    [made] = swarm.made
    assert made["Spec"]["Labels"]["certbotless.kind"] == "store-key"
    assert swarm.mounted() == {
        "/run/secrets/certbotless-account-key": "cbl-acme-account-key",  # kept
        str(tmp_path / "certbotless-store-key"): made["Spec"]["Name"],
    }


def test_after_the_mount_is_dropped_the_oldest_key_secret_is_mounted_again(
    tmp_path: Path,
) -> None:
    swarm = OwnService()
    with pytest.raises(StoreKeyMounted):
        resolve_store_key(settings(tmp_path), cast(Swarm, swarm), True)
    first = swarm.made[0]["Spec"]["Name"]
    # A tenant's stack file plants a secret with the store key's label; a stack deploy of the
    # edge drops the sidecar's mount.
    swarm.create_secret("cbl-store-key-planted", b"p" * 32, dict(swarm.made[0]["Spec"]["Labels"]))
    swarm.spec["TaskTemplate"]["ContainerSpec"]["Secrets"] = [dict(ACCOUNT_KEY_REF)]
    with pytest.raises(StoreKeyMounted):
        resolve_store_key(settings(tmp_path), cast(Swarm, swarm), True)
    assert len(swarm.made) == 2, "no new key: the one signing the store is mounted again"
    assert swarm.mounted()[str(store_key_file(settings(tmp_path)))] == first


def test_a_mounted_key_is_used_and_one_off_commands_make_none(tmp_path: Path) -> None:
    swarm = OwnService()
    assert resolve_store_key(settings(tmp_path), cast(Swarm, swarm), False) is None
    store_key_file(settings(tmp_path)).write_bytes(b"s" * 32)
    assert resolve_store_key(settings(tmp_path), cast(Swarm, swarm), True) == StoreKey(b"s" * 32)
    assert swarm.made == []


def test_the_mounted_key_is_the_store_key_and_any_other_labelled_one_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A store key secret a tenant labelled before certbotless's first start is older than the
    one the operator made and named in the stack file: the mounted one is the key."""
    swarm = OwnService()
    labels = {"certbotless.managed": "true", "certbotless.kind": "store-key"}
    swarm.create_secret("cbl-store-key-planted", b"p" * 32, labels)
    own = swarm.create_secret("cbl-store-key-own", b"o" * 32, labels)
    path = store_key_file(settings(tmp_path))
    swarm.spec["TaskTemplate"]["ContainerSpec"]["Secrets"].append(
        {"File": {"Name": str(path)}, "SecretID": own, "SecretName": "cbl-store-key-own"}
    )
    path.write_bytes(b"o" * 32)
    key = resolve_store_key(settings(tmp_path), cast(Swarm, swarm), True)
    assert key == StoreKey(b"o" * 32)
    [warning] = [r.getMessage() for r in caplog.records if "store key's label" in r.getMessage()]
    assert "cbl-store-key-planted" in warning and "not made by certbotless" in warning
