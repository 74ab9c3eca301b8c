"""`certbotless import-traefik`: Traefik's acme.json read, checked and stored without an order."""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import json
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from certbotless import cli
from certbotless.acme.keys import private_key_pem
from certbotless.model import KeyType, ObjectRole, PastOrder
from certbotless.ops.account_key import (
    AccountKeyAction,
    AccountKeyExists,
    install_account_key,
    key_thumbprint,
    plan_account_key,
)
from certbotless.ops.traefik_import import (
    V1_RESOLVER,
    AcmeJsonError,
    choose_account,
    import_certificates,
    other_accounts,
    parse_acme_json,
)
from certbotless.settings import LETSENCRYPT_PRODUCTION, LETSENCRYPT_STAGING, Settings
from certbotless.swarm.api import Json
from certbotless.swarm.store import ACCOUNT_KEY_SECRET, ACCOUNT_THUMBPRINT, KIND, CertStore
from tests.support.fakes import FakeOrders
from tests.support.traefik_fixtures import (
    LE_ACCOUNT_URI,
    NOW,
    STAGING_ACCOUNT_URI,
    FixtureCa,
    account_entry,
    account_key,
    acme_json,
    certificate_entry,
    traditional_pem,
)

SIDECAR = "edge_certbotless"
KEY_FILE = "/run/secrets/certbotless-account-key"


@pytest.fixture(scope="module")
def ca() -> FixtureCa:
    return FixtureCa()


@pytest.fixture(scope="module")
def accounts() -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]:
    return account_key(), account_key()


@pytest.fixture(scope="module")
def two_resolvers(ca: FixtureCa, accounts: tuple[rsa.RSAPrivateKey, ...]) -> dict[str, Any]:
    """v2/v3: `le` (production, two certificates), `staging` (one)."""
    shop = ca.issue(["shop.example.com", "www.shop.example.com"])
    api = ca.issue(["api.example.com"], key=rsa.generate_private_key(65537, 2048))
    test = ca.issue(["test.example.com"])
    return {
        "le": {
            "Account": account_entry(accounts[0], LE_ACCOUNT_URI),
            "Certificates": [
                certificate_entry("shop.example.com", ["www.shop.example.com"], *shop),
                certificate_entry("api.example.com", [], *api),
            ],
        },
        "staging": {
            "Account": account_entry(accounts[1], STAGING_ACCOUNT_URI),
            "Certificates": [certificate_entry("test.example.com", [], *test)],
        },
    }


def test_v3_resolvers_give_their_accounts_and_certificates(two_resolvers: dict[str, Any]) -> None:
    parsed = parse_acme_json(acme_json(two_resolvers), NOW, LETSENCRYPT_PRODUCTION)
    assert parsed.skipped == ()
    assert [(a.resolver, a.email, a.directory_url) for a in parsed.accounts] == [
        ("le", "ops@example.com", LETSENCRYPT_PRODUCTION),
        ("staging", "ops@example.com", LETSENCRYPT_STAGING),
    ]
    by_name = {c.issued.spec.name: c for c in parsed.certificates}
    assert sorted(by_name) == ["api.example.com", "shop.example.com", "test.example.com"]
    shop = by_name["shop.example.com"]
    assert shop.issued.spec.domains == ("shop.example.com", "www.shop.example.com")
    assert shop.issued.spec.key_type == KeyType.EC256
    assert by_name["api.example.com"].issued.spec.key_type == KeyType.RSA2048
    assert shop.issued.directory_url == LETSENCRYPT_PRODUCTION
    assert by_name["test.example.com"].issued.directory_url == LETSENCRYPT_STAGING
    assert len(x509.load_pem_x509_certificates(shop.issued.fullchain_pem)) == 2, "with its chain"
    assert shop.issued.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert parsed.accounts[0].key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")


def test_the_configured_cas_account_is_taken_and_the_others_named(
    two_resolvers: dict[str, Any],
) -> None:
    parsed = parse_acme_json(acme_json(two_resolvers), NOW, LETSENCRYPT_STAGING)
    chosen = choose_account(parsed, LETSENCRYPT_STAGING)
    assert chosen is not None and chosen.resolver == "staging"
    assert [a.resolver for a in other_accounts(parsed, chosen)] == ["le"]
    # Pebble or another CA: known only when it is the one certbotless is set to.
    pebble = "https://pebble:14000/dir"
    document = copy.deepcopy(two_resolvers)
    document["le"]["Account"]["Registration"]["uri"] = "https://pebble:14000/my-account/1"
    parsed = parse_acme_json(acme_json(document), NOW, pebble)
    assert parsed.accounts[0].directory_url == pebble
    assert (
        parse_acme_json(acme_json(document), NOW, LETSENCRYPT_PRODUCTION).accounts[0].directory_url
        == ""
    )


def test_a_traefik_v1_file_is_one_resolver(ca: FixtureCa, accounts: tuple[Any, ...]) -> None:
    chain, key = ca.issue(["old.example.com", "www.old.example.com"])
    document = {
        "Account": account_entry(accounts[0], LE_ACCOUNT_URI),
        "Certificates": [
            certificate_entry("www.old.example.com", ["old.example.com"], chain, key, v1=True)
        ],
        "HTTPChallenges": {},
    }
    parsed = parse_acme_json(acme_json(document), NOW, LETSENCRYPT_PRODUCTION)
    assert [a.resolver for a in parsed.accounts] == [V1_RESOLVER]
    (cert,) = parsed.certificates
    assert cert.issued.spec.domains == ("www.old.example.com", "old.example.com")
    assert cert.issued.spec.name == "www.old.example.com", "named by its main domain"


def test_unusable_certificates_are_skipped_one_line_each(ca: FixtureCa) -> None:
    good = ca.issue(["good.example.com"])
    other_key = traditional_pem(ec.generate_private_key(ec.SECP256R1()))
    expired = ca.issue(["gone.example.com"], not_before=NOW - timedelta(days=100))
    wildcard = ca.issue(["*.example.com"])
    document = {
        "le": {
            "Account": None,
            "Certificates": [
                certificate_entry("good.example.com", [], *good),
                certificate_entry("mismatch.example.com", [], good[0], other_key),
                certificate_entry("gone.example.com", [], *expired),
                certificate_entry("*.example.com", [], *wildcard),
                certificate_entry("other.example.com", [], *good),
                {"domain": {"main": "junk.example.com"}, "certificate": "!!", "key": "a2V5"},
                {"domain": {"main": "text.example.com"}, "certificate": "aGVsbG8=", "key": ""},
                "not an object",
            ],
        },
        "empty": {"Account": None, "Certificates": None},
    }
    parsed = parse_acme_json(acme_json(document), NOW, LETSENCRYPT_PRODUCTION)
    assert [c.issued.spec.name for c in parsed.certificates] == ["good.example.com"]
    assert [str(s) for s in parsed.skipped] == [
        "resolver le: certificate mismatch.example.com: its key does not match its certificate",
        "resolver le: certificate gone.example.com: expired "
        f"{NOW - timedelta(days=10):%Y-%m-%d %H:%M} UTC",
        "resolver le: certificate *.example.com: *.example.com is a wildcard, which HTTP-01 "
        "cannot renew; certbotless serves each hostname by its own name",
        "resolver le: certificate other.example.com: domain.main other.example.com is not "
        "among the certificate's names (good.example.com)",
        "resolver le: certificate junk.example.com: its certificate is not base64",
        "resolver le: certificate text.example.com: its certificate is not a PEM certificate chain",
        "resolver le: certificate #8: is not a JSON object",
    ]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "is not JSON"),
        (b"Traefik was here", "is not JSON"),
        (b"\xff\xfe\x00garbage", "is not text"),
        (b"[1, 2]", "is not a JSON object of certificate resolvers"),
        (b"{}", "holds no certificate resolver"),
    ],
)
def test_a_file_that_is_no_acme_json_is_one_clear_error(data: bytes, words: str) -> None:
    with pytest.raises(AcmeJsonError, match=words):
        parse_acme_json(data, NOW, LETSENCRYPT_PRODUCTION)


def test_no_shape_of_json_ever_raises_anything_but_a_clear_error(ca: FixtureCa) -> None:
    """Every field of a file replaced by values of the wrong type, one at a time (an EC account
    key: parsing RSA keys is slow, and the shape is what is tried here)."""
    document = {
        "le": {
            "Account": account_entry(ec.generate_private_key(ec.SECP256R1()), LE_ACCOUNT_URI),
            "Certificates": [certificate_entry("a.example.com", ["b.example.com"],
                                               *ca.issue(["a.example.com", "b.example.com"]))],
        }
    }  # fmt: skip
    oddities: list[Any] = [None, 7, "x", [], {}, [None], {"a": 1}, True, "!!!", "aGk="]
    for index, path in enumerate(_leaf_paths(document)):
        for odd in (oddities[index % len(oddities)], oddities[(index + 3) % len(oddities)]):
            changed = copy.deepcopy(document)
            _set(changed, path, odd)
            with contextlib.suppress(AcmeJsonError):
                parse_acme_json(acme_json(changed), NOW, LETSENCRYPT_PRODUCTION)


def _leaf_paths(node: Any, path: tuple[Any, ...] = ()) -> Any:
    yield path
    children = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for key, child in children:
        yield from _leaf_paths(child, (*path, key))


def _set(document: Any, path: tuple[Any, ...], value: Any) -> None:
    if not path:
        return
    for key in path[:-1]:
        document = document[key]
    document[path[-1]] = value


# --- storing: certificates through the store, the account key as its secret -------------------


@dataclass
class MemorySwarm:
    """The few Docker calls CertStore and mount_secret make, in memory."""

    objects: dict[str, list[Json]] = field(default_factory=lambda: {"secret": [], "config": []})
    sidecar: Json = field(
        default_factory=lambda: {
            "ID": "svc1",
            "Version": {"Index": 1},
            "Spec": {"Name": SIDECAR, "TaskTemplate": {"ContainerSpec": {"Secrets": []}}},
        }
    )

    def create_secret(self, name: str, data: bytes, labels: dict[str, str]) -> str:
        return self._create("secret", name, data, labels)

    def create_config(self, name: str, data: bytes, labels: dict[str, str]) -> str:
        return self._create("config", name, data, labels)

    def secrets(self, label: str) -> list[Json]:
        return self._matching("secret", label)

    def configs(self, label: str) -> list[Json]:
        return self._matching("config", label)

    def inspect_service(self, name: str) -> Json:
        assert name == SIDECAR
        return copy.deepcopy(self.sidecar)

    def update_service(self, service: Json, spec: Json) -> None:
        self.sidecar = {**self.sidecar, "Spec": spec}

    def mounted(self) -> list[tuple[str, str]]:
        refs = self.sidecar["Spec"]["TaskTemplate"]["ContainerSpec"]["Secrets"]
        return [(ref["SecretName"], ref["File"]["Name"]) for ref in refs]

    def _create(self, kind: str, name: str, data: bytes, labels: dict[str, str]) -> str:
        object_id = f"{kind}-{sum(len(v) for v in self.objects.values()) + 1}"
        created = f"2026-11-23T12:00:{len(self.objects[kind]):02d}.5Z"
        spec = {"Name": name, "Labels": labels, "Data": base64.b64encode(data).decode()}
        self.objects[kind].append({"ID": object_id, "CreatedAt": created, "Spec": spec})
        return object_id

    def _matching(self, kind: str, label: str) -> list[Json]:
        key, _, value = label.partition("=")
        return [o for o in self.objects[kind] if o["Spec"]["Labels"].get(key) == value]


def store_with(swarm: MemorySwarm) -> CertStore:
    return CertStore(swarm)  # type: ignore[arg-type]


def test_certificates_are_stored_as_versions_once_and_recent_ones_count_as_orders(
    two_resolvers: dict[str, Any],
) -> None:
    parsed = parse_acme_json(acme_json(two_resolvers), NOW, LETSENCRYPT_PRODUCTION)
    store, orders = store_with(MemorySwarm()), FakeOrders()
    earlier = PastOrder(NOW - timedelta(days=1), ("x.example.com",), issued=True)
    orders.orders.append(earlier)
    first = import_certificates(parsed.certificates, store, orders, NOW)
    assert len(first.stored) == 3 and first.already_stored == ()
    listed = {cert.name: cert for cert in store.inventory()}
    for cert in parsed.certificates:
        stored = listed[cert.issued.spec.name]
        assert (stored.serial, stored.domains, stored.not_after) == (
            cert.serial, cert.issued.spec.domains, cert.not_after,
        )  # fmt: skip
        assert stored.directory_url == cert.issued.directory_url
        assert stored.mismatches == ()
    # Issued 10 days ago: outside the week the rate limits look at.
    assert orders.orders == [earlier]

    fresh = [replace(c, not_before=NOW - timedelta(days=2)) for c in parsed.certificates]
    again = import_certificates(fresh, store, orders, NOW)
    assert again.stored == () and len(again.already_stored) == 3, "nothing stored twice"
    assert len(store.inventory()) == 3


def test_recent_certificates_join_the_weeks_orders_once(ca: FixtureCa) -> None:
    chain, key = ca.issue(["new.example.com"], not_before=NOW - timedelta(days=2))
    document = {"le": {"Certificates": [certificate_entry("new.example.com", [], chain, key)]}}
    parsed = parse_acme_json(acme_json(document), NOW, LETSENCRYPT_PRODUCTION)
    orders = FakeOrders()
    import_certificates(parsed.certificates, store_with(MemorySwarm()), orders, NOW)
    assert orders.orders == [PastOrder(NOW - timedelta(days=2), ("new.example.com",), issued=True)]


def settings(own_service: str | None = SIDECAR) -> Settings:
    return Settings(own_service=own_service, account_key_file=Path(KEY_FILE))


def pem_of(key: rsa.RSAPrivateKey) -> bytes:
    return private_key_pem(key)


def test_the_account_key_is_stored_once_and_replaced_only_when_asked(
    accounts: tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey],
) -> None:
    swarm = MemorySwarm()
    store = store_with(swarm)
    first, second = pem_of(accounts[0]), pem_of(accounts[1])
    action = plan_account_key(settings(), store, first, replace=False)
    assert action == AccountKeyAction.CREATE
    install_account_key(settings(), swarm, store, first, action)  # type: ignore[arg-type]
    assert store.account_key_secret() == (ACCOUNT_KEY_SECRET, "secret-1")
    assert swarm.mounted() == [(ACCOUNT_KEY_SECRET, KEY_FILE)]
    assert swarm.objects["secret"][0]["Spec"]["Labels"][ACCOUNT_THUMBPRINT] == key_thumbprint(first)

    assert plan_account_key(settings(), store, first, replace=False) == AccountKeyAction.KEEP
    with pytest.raises(AccountKeyExists, match="run again with --replace-account"):
        plan_account_key(settings(), store, second, replace=False)

    action = plan_account_key(settings(), store, second, replace=True)
    assert action == AccountKeyAction.REPLACE
    said = install_account_key(settings(), swarm, store, second, action)  # type: ignore[arg-type]
    newest = store.account_key_secret()
    assert newest is not None and newest[0].startswith(ACCOUNT_KEY_SECRET + "-")
    assert swarm.mounted() == [(newest[0], KEY_FILE)], "the new key where the old one was"
    assert f"mounted it into service {SIDECAR}" in said
    assert plan_account_key(settings(), store, second, replace=False) == AccountKeyAction.KEEP


def test_without_its_own_service_the_import_says_how_to_mount_the_new_key(
    accounts: tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey],
) -> None:
    swarm = MemorySwarm()
    store = store_with(swarm)
    swarm.create_secret(ACCOUNT_KEY_SECRET, b"old", {KIND: ObjectRole.ACCOUNT_KEY})
    key_pem = pem_of(accounts[0])
    said = install_account_key(
        settings(None), swarm, store, key_pem, AccountKeyAction.REPLACE  # type: ignore[arg-type]
    )  # fmt: skip
    assert f"docker service update --secret-rm {ACCOUNT_KEY_SECRET} --secret-add" in said
    assert swarm.mounted() == []


# --- the command ------------------------------------------------------------------------------


def run_import(
    tmp_path: Path, data: bytes, swarm: MemorySwarm, *flags: str
) -> tuple[int, FakeOrders]:
    path = tmp_path / "acme.json"
    path.write_bytes(data)
    app = SimpleNamespace(
        settings=settings(), swarm=swarm, store=store_with(swarm), orders=FakeOrders()
    )
    args = argparse.Namespace(
        acme_json=path, dry_run="--dry-run" in flags, replace_account="--replace-account" in flags
    )
    return cli.import_traefik(app, args), app.orders  # type: ignore[arg-type]


def test_the_command_imports_everything_and_a_dry_run_nothing(
    tmp_path: Path, two_resolvers: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    swarm = MemorySwarm()
    code, _ = run_import(tmp_path, acme_json(two_resolvers), swarm, "--dry-run")
    out = capsys.readouterr().out
    assert code == 0 and swarm.objects == {"secret": [], "config": []}
    assert "the account of resolver le (ops@example.com, " in out
    assert "would become certbotless's ACME account" in out
    assert "not imported: the account of resolver staging" in out
    assert out.count("would import ") == 3

    code, _ = run_import(tmp_path, acme_json(two_resolvers), swarm)
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.count("imported ") == 3
    assert len(swarm.objects["config"]) == 3 and len(swarm.objects["secret"]) == 4


def test_skips_fail_the_command_but_not_its_dry_run(
    tmp_path: Path, ca: FixtureCa, capsys: pytest.CaptureFixture[str]
) -> None:
    good = ca.issue(["good.example.com"])
    expired = ca.issue(["gone.example.com"], not_before=NOW - timedelta(days=100))
    document = {
        "le": {
            "Certificates": [
                certificate_entry("good.example.com", [], *good),
                certificate_entry("gone.example.com", [], *expired),
            ]
        }
    }
    # Skipped for having expired in the past, whatever today is: NOW is in late 2026.
    swarm = MemorySwarm()
    assert run_import(tmp_path, acme_json(document), swarm, "--dry-run")[0] == 0
    code, _ = run_import(tmp_path, acme_json(document), swarm)
    out = capsys.readouterr().out
    assert code == 1
    assert "skipped resolver le: certificate gone.example.com: expired" in out
    assert "holds no usable account: certbotless keeps its own" in out


def test_an_existing_account_refuses_the_import_before_anything_is_stored(
    tmp_path: Path, two_resolvers: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    swarm = MemorySwarm()
    swarm.create_secret(ACCOUNT_KEY_SECRET, b"its own", {KIND: ObjectRole.ACCOUNT_KEY})
    code, _ = run_import(tmp_path, acme_json(two_resolvers), swarm)
    err = capsys.readouterr().err
    assert code == 1 and swarm.objects["config"] == []
    assert "already has an ACME account key (secret cbl-acme-account-key)" in err
    assert "--replace-account" in err
    code, _ = run_import(tmp_path, acme_json(two_resolvers), swarm, "--replace-account")
    assert code == 0 and len(swarm.objects["config"]) == 3


@pytest.mark.parametrize("data", [b"", b"{not json", json.dumps([1]).encode(), b"\xff\xfe"])
def test_garbage_is_one_line_and_no_traceback(
    tmp_path: Path, data: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run_import(tmp_path, data, MemorySwarm())
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("certbotless: ") and "Traceback" not in err


def test_a_missing_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app = SimpleNamespace(settings=settings(), swarm=None, store=None, orders=None)
    args = argparse.Namespace(acme_json=tmp_path / "nope.json", dry_run=False,
                              replace_account=False)  # fmt: skip
    assert cli.import_traefik(app, args) == 2  # type: ignore[arg-type]
    assert "cannot read" in capsys.readouterr().err


def test_the_parser_knows_the_command() -> None:
    args = cli.build_parser().parse_args(["import-traefik", "acme.json", "--dry-run"])
    assert (args.command, args.acme_json, args.dry_run) == ("import-traefik", Path("acme.json"),
                                                            True)  # fmt: skip
    assert cli.COMMANDS["import-traefik"] is cli.import_traefik
