"""Reading stored versions back (labels cross-checked against the PEM), and what gc may remove."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from certbotless.model import (
    CertificateStatus,
    CertSpec,
    Condition,
    FailureReason,
    IssuedCert,
    KeyType,
    ObjectKind,
    ObjectRole,
    StoredCert,
    StoredObject,
)
from certbotless.swarm.status_json import status_from_json, status_to_json
from certbotless.swarm.store import (
    CERT_DOMAINS,
    CERT_KEY_SECRET,
    CERT_NAME,
    CERT_NOT_AFTER,
    CERT_SERIAL,
    certificate_labels,
    issuance_order,
    latest_per_name,
    plan_garbage,
    read_stored_cert,
    serial_hex,
)
from tests.support.factories import stored_cert

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def chain_pem(domains: list[str], serial: int = 0xABCDEF, days: int = 90) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test issuer")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(d) for d in domains]), critical=False
        )
        .add_extension(x509.AuthorityKeyIdentifier(b"\x01" * 20, None, None), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.PEM)


def labels_for(domains: list[str], serial: int = 0xABCDEF, days: int = 90) -> dict[str, str]:
    return {
        CERT_NAME: domains[0],
        CERT_DOMAINS: ",".join(domains),
        CERT_SERIAL: serial_hex(serial),
        CERT_NOT_AFTER: (NOW + timedelta(days=days)).isoformat(),
        CERT_KEY_SECRET: "cbl-key",
    }


def test_labels_that_match_the_certificate_are_clean() -> None:
    domains = ["b.example.test", "a.example.test"]
    pem = chain_pem(domains)
    issued = IssuedCert(CertSpec(domains[0], tuple(domains)), pem, b"key", "https://ca/dir")
    labels = certificate_labels(issued, "cbl-x")
    cert = read_stored_cert(labels, "cbl-x", "cfg1", pem, "sec1")
    assert cert is not None
    assert cert.mismatches == ()
    assert cert.domains == ("b.example.test", "a.example.test")
    assert cert.key_type is KeyType.EC256
    assert cert.ari_id.endswith("." + "AKvN7w")
    assert (cert.directory_url, cert.secret_name, cert.refused) == ("https://ca/dir", "cbl-x", "")


def test_certificates_certbotless_cannot_use_are_skipped_not_fatal() -> None:
    key = ec.generate_private_key(ec.SECP521R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "odd")])
    builder = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(NOW).not_valid_after(NOW + timedelta(days=1))
    )  # fmt: skip
    no_san = builder.sign(key, hashes.SHA256()).public_bytes(Encoding.PEM)
    p521 = (
        builder.add_extension(x509.SubjectAlternativeName([x509.DNSName("a.test")]), False)
        .sign(key, hashes.SHA256()).public_bytes(Encoding.PEM)
    )  # fmt: skip
    labels = labels_for(["a.test"])
    assert read_stored_cert(labels, "cbl-x", "cfg1", no_san, "sec1") is None
    assert read_stored_cert(labels, "cbl-x", "cfg1", p521, "sec1") is None


def test_a_version_swarm_refused_is_never_current() -> None:
    old, new = versions("a.example.test", 2)
    assert latest_per_name([old, new], NOW)["a.example.test"] is new
    refused = replace(new, refused="2026-11-24 10:00 UTC: Swarm rolled back the update")
    assert latest_per_name([old, refused], NOW)["a.example.test"] is old
    assert latest_per_name([refused], NOW) == {}, "with no usable version, the name is issued anew"


def test_status_records_round_trip_through_a_label() -> None:
    record = CertificateStatus(
        "a.example.test", ("a.example.test",), condition=Condition.FAILING,
        reason=FailureReason.RATE_LIMITED, message="validation failed: " + "x" * 2000,
        failures=3, last_failure=NOW, next_attempt=NOW + timedelta(minutes=20),
        refused=("ab1",), renew_at=NOW, renew_source="ari",
    )  # fmt: skip
    read = status_from_json("a.example.test", status_to_json(record))
    assert read == replace(record, message=record.message[:1000])
    assert status_from_json("a", "not json") is None
    assert status_from_json("a", '{"last_failure": "yesterday"}') is None
    assert status_from_json("a", '{"condition": "Sleeping"}') is None


def test_labels_that_lie_are_flagged_and_the_certificate_wins() -> None:
    domains = ["a.example.test"]
    labels = labels_for(["a.example.test", "evil.example.test"], serial=0x1234, days=365)
    cert = read_stored_cert(labels, "cbl-x", "cfg1", chain_pem(domains), "sec1")
    assert cert is not None
    flagged = {m.split(":")[0] for m in cert.mismatches}
    assert {CERT_DOMAINS, CERT_SERIAL, CERT_NOT_AFTER} <= flagged
    assert cert.domains == ("a.example.test",)
    assert cert.serial == serial_hex(0xABCDEF)
    assert cert.not_after == NOW + timedelta(days=90)


def test_unreadable_versions_are_skipped() -> None:
    labels = labels_for(["a.example.test"])
    assert read_stored_cert(labels, "cbl-x", "cfg1", b"not a pem", "sec1") is None
    unnamed = {k: v for k, v in labels.items() if k != CERT_NAME}
    assert read_stored_cert(unnamed, "cbl-x", "cfg1", chain_pem(["a.example.test"]), "s") is None


def versions(name: str, count: int, start: datetime = NOW) -> list[StoredCert]:
    return [
        replace(
            stored_cert(
                name=name, domains=(name,), issued=start + timedelta(days=i), version=f"{name}-{i}"
            ),
            created_at=(start + timedelta(days=i)).isoformat(),
        )
        for i in range(count)
    ]


def objects_of(certs: list[StoredCert]) -> list[StoredObject]:
    found = []
    for cert in certs:
        found.append(
            StoredObject(ObjectKind.CONFIG, cert.config_id, cert.config_name, "", ObjectRole.CHAIN)
        )
        found.append(
            StoredObject(ObjectKind.SECRET, cert.secret_id, cert.secret_name, "", ObjectRole.KEY)
        )
    return found


def test_gc_keeps_the_newest_versions_and_everything_referenced() -> None:
    certs = versions("a.example.test", 6)
    oldest_in_previous_spec = certs[0].secret_id
    removals = plan_garbage(
        certs,
        objects_of(certs),
        {oldest_in_previous_spec},
        {"a.example.test"},
        NOW,
        keep_versions=3,
        keep_expired=timedelta(0),
    )
    removed = {r.target.object_id for r in removals}
    assert removed == {c.config_id for c in certs[1:3]} | {c.secret_id for c in certs[1:3]}
    assert all("older than the newest 3" in r.reason for r in removals)


def test_gc_keeps_unwanted_certificates_until_they_expire() -> None:
    certs = versions("gone.example.test", 1)
    args: tuple[list[StoredCert], list[StoredObject], set[str], set[str]] = (
        certs,
        objects_of(certs),
        set(),
        set(),
    )
    assert plan_garbage(*args, NOW + timedelta(days=89), 3, timedelta(0)) == []
    assert plan_garbage(*args, NOW + timedelta(days=91), 3, timedelta(days=7)) == []
    expired = plan_garbage(*args, NOW + timedelta(days=98), 3, timedelta(days=7))
    assert {r.target.object_id for r in expired} == {certs[0].config_id, certs[0].secret_id}
    assert "no longer wanted" in expired[0].reason


def test_gc_removes_half_certificates_only_after_a_grace_period() -> None:
    lonely = StoredObject(ObjectKind.SECRET, "sec-x", "cbl-x", NOW.isoformat(), ObjectRole.KEY)
    assert (
        plan_garbage([], [lonely], set(), set(), NOW + timedelta(minutes=5), 3, timedelta(0)) == []
    )
    later = plan_garbage([], [lonely], set(), set(), NOW + timedelta(hours=2), 3, timedelta(0))
    assert [r.target for r in later] == [lonely]


def test_gc_keeps_recent_nginx_confs_and_the_referenced_one() -> None:
    confs = [
        StoredObject(
            ObjectKind.CONFIG,
            f"conf{i}",
            f"cbl-nginx-{i}",
            f"2026-11-2{i}T00:00:00Z",
            ObjectRole.NGINX_CONF,
        )
        for i in range(6)
    ]
    removals = plan_garbage([], confs, {"conf0"}, set(), NOW, 3, timedelta(0))
    assert {r.target.object_id for r in removals} == {"conf1", "conf2"}


def test_ip_address_certificates_list_their_addresses() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([])
    pem = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(7)
        .not_valid_before(NOW).not_valid_after(NOW + timedelta(days=6))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("shop.example.test"), x509.IPAddress(ip_address("192.0.2.10"))]
        ), critical=True)
        .sign(key, hashes.SHA256()).public_bytes(Encoding.PEM)
    )  # fmt: skip
    labels = {**labels_for(["shop.example.test"]), CERT_DOMAINS: "192.0.2.10,shop.example.test"}
    cert = read_stored_cert(labels, "cbl-x", "cfg1", pem, "sec1")
    assert cert is not None
    assert cert.domains == ("192.0.2.10", "shop.example.test"), "the labels' order is kept"
    assert not any(m.startswith(CERT_DOMAINS) for m in cert.mismatches)


DAY = timedelta(days=1)


def version(issued: datetime, lifetime: timedelta, tag: str, refused: str = "") -> StoredCert:
    cert = stored_cert(name="a.example.test", domains=("a.example.test",), issued=issued,
                       lifetime=lifetime, version=tag)  # fmt: skip
    return replace(cert, created_at=issued.isoformat(), refused=refused)


def test_the_version_in_use_is_the_newest_issued_even_when_it_expires_sooner() -> None:
    """Issue 14, item 1: a renewal shorter-lived than what it replaces is the one in use."""
    long_lived = version(NOW, 90 * DAY, "90d")
    short_renewal = version(NOW + 60 * DAY, 6 * DAY, "6d")
    now = NOW + 61 * DAY
    assert latest_per_name([short_renewal, long_lived], now)["a.example.test"] is short_renewal
    assert sorted([short_renewal, long_lived], key=issuance_order) == [long_lived, short_renewal]


def test_versions_issued_in_the_same_second_are_ordered_by_when_swarm_created_them() -> None:
    """Swarm's CreatedAt has its fraction trimmed ("…00.1Z" is after "…00.12Z" as text)."""
    first = replace(version(NOW, 90 * DAY, "zz"), created_at="2026-11-23T12:00:00.1Z")
    second = replace(version(NOW, 90 * DAY, "aa"), created_at="2026-11-23T12:00:00.12Z")
    assert latest_per_name([second, first], NOW)["a.example.test"] is second
    assert latest_per_name([first, second], NOW)["a.example.test"] is second


def test_an_expired_newest_version_gives_way_to_a_valid_older_one() -> None:
    older = version(NOW, 90 * DAY, "old")
    expired = version(NOW + 10 * DAY, 2 * DAY, "expired")
    assert latest_per_name([older, expired], NOW + 20 * DAY)["a.example.test"] is older
    # With nothing valid left, the newest issued is still the one in use (and due at once).
    assert latest_per_name([older, expired], NOW + 100 * DAY)["a.example.test"] is expired


def gc_of(certs: list[StoredCert], now: datetime, keep: int, wanted: bool = True) -> set[str]:
    """The config IDs gc removes, nothing referenced."""
    names = {"a.example.test"} if wanted else set()
    removals = plan_garbage(certs, objects_of(certs), set(), names, now, keep, timedelta(0))
    removed = {r.target.object_id for r in removals}
    pairs = {i for c in certs if c.config_id in removed for i in (c.config_id, c.secret_id)}
    assert removed == pairs, "chain and key go together"
    return {c.config_id for c in certs if c.config_id in removed}


def test_refused_versions_do_not_count_toward_the_versions_kept() -> None:
    """Issue 14, item 2 (reproduced): two refused versions newer than the one in use, and
    KEEP_VERSIONS=1, made gc remove the only usable version."""
    usable = version(NOW, 90 * DAY, "usable")
    refused = [
        version(NOW + i * DAY, 90 * DAY, f"refused{i}", refused="Swarm rolled back the update")
        for i in (60, 61)
    ]
    removed = gc_of([usable, *refused], NOW + 62 * DAY, keep=1)
    assert removed == {c.config_id for c in refused}
    removals = plan_garbage([usable, *refused], objects_of([usable, *refused]), set(),
                            {"a.example.test"}, NOW + 62 * DAY, 1, timedelta(0))  # fmt: skip
    assert all("Swarm refused it" in r.reason for r in removals)


def test_gc_keeps_the_newest_issued_version_not_the_longest_lived() -> None:
    long_lived = version(NOW, 90 * DAY, "90d")
    renewals = [version(NOW + d * DAY, 6 * DAY, f"6d-{d}") for d in (60, 64)]
    removed = gc_of([long_lived, *renewals], NOW + 65 * DAY, keep=1)
    assert removed == {long_lived.config_id, renewals[0].config_id}


def test_expired_versions_do_not_count_toward_the_versions_kept() -> None:
    usable = version(NOW, 90 * DAY, "usable")
    expired = [version(NOW + d * DAY, DAY, f"expired{d}") for d in (50, 52)]
    assert gc_of([usable, *expired], NOW + 60 * DAY, keep=1) == {c.config_id for c in expired}


def test_the_newest_usable_version_is_kept_whatever_the_setting() -> None:
    old, new = version(NOW, 90 * DAY, "old"), version(NOW + DAY, 90 * DAY, "new")
    assert gc_of([old, new], NOW + 2 * DAY, keep=0) == {old.config_id}
    assert gc_of([old, new], NOW + 2 * DAY, keep=0, wanted=False) == {old.config_id}
