"""`certbotless account rollover`: the new key stored before the CA is told, the old secret
retired only once the new key works, and nothing lost when the CA refuses."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import pytest
from acme import messages
from josepy.jwk import JWK

from certbotless.acme.errors import CaProblem
from certbotless.acme.keys import load_account_key_pem
from certbotless.model import ObjectKind, ObjectRole
from certbotless.ops.account_key import key_thumbprint
from certbotless.ops.account_rollover import RETIRED, RolloverFailed, roll_over_account_key
from certbotless.swarm.api import Json
from certbotless.swarm.store import ACCOUNT_KEY_SECRET, KIND, CertStore
from tests.unit.ops.test_traefik_import import KEY_FILE, MemorySwarm, settings

ACCOUNT = "https://ca.test/acct/1"


class RollingSwarm(MemorySwarm):
    def remove_secret(self, name: str) -> None:
        self.objects["secret"] = [s for s in self.objects["secret"] if s["Spec"]["Name"] != name]

    def update_object_labels(self, kind: ObjectKind, item: Json, labels: dict[str, str]) -> None:
        item["Spec"]["Labels"] = labels

    def own_service_name(self) -> str | None:
        return None


@dataclass
class FakeSession:
    """The CA's side: which key the account signs with."""

    refuse: bool = False
    keys: list[JWK] = field(default_factory=list)

    def existing_account(self) -> str | None:
        return ACCOUNT

    def change_key(self, new_key: JWK) -> str:
        if self.refuse:
            problem = messages.Error.with_code("malformed", detail="no")
            raise CaProblem("the CA says", problem)
        self.keys.append(new_key)
        return ACCOUNT


def swarm_with_a_key() -> tuple[RollingSwarm, CertStore]:
    swarm = RollingSwarm()
    swarm.create_secret(ACCOUNT_KEY_SECRET, b"old", {KIND: ObjectRole.ACCOUNT_KEY})
    return swarm, CertStore(swarm)  # type: ignore[arg-type]


def test_the_new_key_is_stored_mounted_and_the_old_secret_retired() -> None:
    swarm, store = swarm_with_a_key()
    session = FakeSession()
    said = roll_over_account_key(settings(), swarm, store, session)  # type: ignore[arg-type]
    newest = store.account_key_secret()
    assert newest is not None and newest[0].startswith(ACCOUNT_KEY_SECRET + "-")
    stored = next(s for s in swarm.objects["secret"] if s["Spec"]["Name"] == newest[0])
    pem = base64.b64decode(stored["Spec"]["Data"])
    assert key_thumbprint(pem) == session.keys[0].thumbprint().hex(), "the key the CA was given"
    assert load_account_key_pem(pem).thumbprint() == session.keys[0].thumbprint()
    assert swarm.mounted() == [(newest[0], KEY_FILE)]
    old = next(s for s in swarm.objects["secret"] if s["Spec"]["Name"] == ACCOUNT_KEY_SECRET)
    assert RETIRED in old["Spec"]["Labels"]
    assert any("account URL is unchanged" in line for line in said)


def test_a_refused_key_change_keeps_the_old_key_as_the_only_one() -> None:
    swarm, store = swarm_with_a_key()
    with pytest.raises(RolloverFailed, match="keeps its current key"):
        roll_over_account_key(settings(), swarm, store, FakeSession(refuse=True))  # type: ignore[arg-type]
    assert [s["Spec"]["Name"] for s in swarm.objects["secret"]] == [ACCOUNT_KEY_SECRET]
    assert RETIRED not in swarm.objects["secret"][0]["Spec"]["Labels"]
    assert swarm.mounted() == []


def test_without_its_own_service_it_says_how_to_mount_the_new_key() -> None:
    swarm, store = swarm_with_a_key()
    said = roll_over_account_key(settings(None), swarm, store, FakeSession())  # type: ignore[arg-type]
    assert any(f"--secret-rm {ACCOUNT_KEY_SECRET} --secret-add" in line for line in said)


def test_another_issuers_account_is_rolled_with_its_own_secret_and_file() -> None:
    """`--issuer zerossl`: that issuer's key secret (`cbl-acme-account-key.zerossl`) gets a new
    version, mounted at its own file; the first issuer's secret is untouched."""
    swarm, store = swarm_with_a_key()
    theirs = f"{ACCOUNT_KEY_SECRET}.zerossl"
    swarm.create_secret(theirs, b"old", {KIND: ObjectRole.ACCOUNT_KEY})
    roll_over_account_key(settings(), swarm, store, FakeSession(), owner="zerossl")  # type: ignore[arg-type]
    newest = store.account_key_secret("zerossl")
    assert newest is not None and newest[0].startswith(theirs + "-")
    assert swarm.mounted() == [(newest[0], KEY_FILE + ".zerossl")]
    first = store.account_key_secret()
    assert first is not None and first[0] == ACCOUNT_KEY_SECRET
    labels = {s["Spec"]["Name"]: s["Spec"]["Labels"] for s in swarm.objects["secret"]}
    assert RETIRED in labels[theirs] and RETIRED not in labels[ACCOUNT_KEY_SECRET]
