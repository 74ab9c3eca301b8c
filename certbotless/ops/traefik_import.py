"""Traefik's acme.json read into certbotless's model: its ACME account key and its certificates
with their keys, checked (key matches, not expired, a name certbotless can renew), then stored
as certificate versions without placing an order.

acme.json (Traefik v2 and v3, pkg/provider/acme/local_store.go) maps each certificate resolver's
name to `{"Account": {"Email", "Registration": {"uri", "body"}, "PrivateKey": base64 DER,
"KeyType"}, "Certificates": [{"domain": {"main", "sans"}, "certificate": base64 PEM chain, "key":
base64 PEM, "Store"}]}`. Traefik v1.7 wrote one such object at the top level (`"Domain":
{"Main", "SANs"}`); it is read as one resolver. Keys are matched without regard to case.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import idna
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from certbotless.acme.keys import private_key_pem
from certbotless.labels.values import CERTIFICATE_NAME_RE
from certbotless.model import CertSpec, IssuedCert, PastOrder
from certbotless.ops.account_key import AccountKeyAction
from certbotless.passes.budget import KEPT_FOR
from certbotless.seams import CertificateStore, OrderHistory
from certbotless.settings import LETSENCRYPT_PRODUCTION, LETSENCRYPT_STAGING
from certbotless.swarm.store import key_type_of, serial_hex

V1_RESOLVER = "(Traefik v1)"  # v1.7 kept one account and its certificates at the top level
# The CAs a registration URI names without doubt; others only when they are the configured one.
_KNOWN_CAS = {urlsplit(url).netloc: url for url in (LETSENCRYPT_PRODUCTION, LETSENCRYPT_STAGING)}


class AcmeJsonError(ValueError):
    """The file as a whole is not a Traefik acme.json certbotless can read."""


class _Unusable(ValueError):
    """One account or certificate that cannot be imported; its message says why."""


@dataclass(frozen=True)
class TraefikAccount:
    resolver: str
    email: str
    registration_uri: str
    key_pem: bytes = field(repr=False)  # PKCS#8 PEM, as certbotless stores account keys
    directory_url: str  # "" when acme.json does not tell which CA


@dataclass(frozen=True)
class TraefikCertificate:
    resolver: str
    issued: IssuedCert
    serial: str
    not_before: datetime
    not_after: datetime
    fingerprint: str  # SHA-256 of the leaf, as the store's labels record it


@dataclass(frozen=True)
class Skipped:
    """Something in acme.json that is not imported, and why (one line for the operator)."""

    resolver: str
    what: str
    reason: str

    def __str__(self) -> str:
        return f"resolver {self.resolver}: {self.what}: {self.reason}"


@dataclass(frozen=True)
class AcmeJson:
    accounts: tuple[TraefikAccount, ...]
    certificates: tuple[TraefikCertificate, ...]
    skipped: tuple[Skipped, ...]


@dataclass(frozen=True)
class ImportedCertificates:
    stored: tuple[TraefikCertificate, ...]
    already_stored: tuple[TraefikCertificate, ...]  # the same certificate is stored already


def parse_acme_json(data: bytes, now: datetime, configured_directory: str) -> AcmeJson:
    """Every account and usable certificate in an acme.json; unusable ones in `skipped`.
    Raises AcmeJsonError when the file is no acme.json at all."""
    resolvers = _resolvers(_load_json(data))
    accounts: list[TraefikAccount] = []
    certificates: list[TraefikCertificate] = []
    skipped: list[Skipped] = []
    for resolver, stored in resolvers.items():
        if not isinstance(stored, dict):
            if stored is not None:
                skipped.append(Skipped(resolver, "resolver", "is not a JSON object; ignored"))
            continue
        account = None
        try:
            account = _account(resolver, _get(stored, "account"), configured_directory)
        except _Unusable as problem:
            skipped.append(Skipped(resolver, "account", str(problem)))
        if account is not None:
            accounts.append(account)
        directory = account.directory_url if account is not None else ""
        for what, entry in _certificate_entries(_get(stored, "certificates")):
            try:
                certificates.append(_certificate(resolver, entry, now, directory))
            except _Unusable as problem:
                skipped.append(Skipped(resolver, what, str(problem)))
    return AcmeJson(tuple(accounts), tuple(certificates), tuple(skipped))


def choose_account(parsed: AcmeJson, directory: str) -> TraefikAccount | None:
    """The one account certbotless takes (it has one): a resolver's of the configured CA before
    others, then the one with the most certificates, then the first in the file."""

    def rank(index_account: tuple[int, TraefikAccount]) -> tuple[bool, int, int]:
        index, account = index_account
        count = sum(c.resolver == account.resolver for c in parsed.certificates)
        return account.directory_url == directory, count, -index

    return max(enumerate(parsed.accounts), key=rank)[1] if parsed.accounts else None


def import_certificates(
    certificates: Iterable[TraefikCertificate],
    store: CertificateStore,
    orders: OrderHistory,
    now: datetime,
) -> ImportedCertificates:
    """Store each certificate not stored yet as a version, and note the recent ones as orders
    of this account, so the CA's rate limits count them as they did for Traefik."""
    have = {cert.fingerprint for cert in store.inventory() if cert.fingerprint}
    stored, already = [], []
    for cert in certificates:
        if cert.fingerprint in have:
            already.append(cert)
            continue
        store.save(cert.issued)
        have.add(cert.fingerprint)
        stored.append(cert)
    recent = [
        PastOrder(cert.not_before, tuple(sorted(cert.issued.spec.domains)), issued=True)
        for cert in stored
        if cert.not_before > now - KEPT_FOR
    ]
    if recent:
        past = orders.load()
        orders.save([*past, *(order for order in recent if order not in past)])
    return ImportedCertificates(tuple(stored), tuple(already))


def directory_of(registration_uri: str, configured_directory: str) -> str:
    """The CA's directory URL, from the host of the account's registration URI: the configured
    CA when the host is its host, Let's Encrypt's when it is theirs, otherwise unknown ("")."""
    host = urlsplit(registration_uri).netloc
    if not host:
        return ""
    if host == urlsplit(configured_directory).netloc:
        return configured_directory
    return _KNOWN_CAS.get(host, "")


def _load_json(data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise AcmeJsonError("is not text (UTF-8 JSON): give Traefik's acme.json") from None
    except json.JSONDecodeError as error:
        raise AcmeJsonError(
            f"is not JSON ({error.msg} at line {error.lineno}, column {error.colno}): give "
            "Traefik's acme.json as Traefik wrote it"
        ) from None


def _resolvers(document: Any) -> dict[str, Any]:
    """Resolver name → its stored data; v1.7's single top-level store as one resolver."""
    if not isinstance(document, dict):
        raise AcmeJsonError(
            "is not a JSON object of certificate resolvers: give Traefik's acme.json"
        )
    if _get(document, "account") is not None or _get(document, "certificates") is not None:
        return {V1_RESOLVER: document}
    if not document:
        raise AcmeJsonError(
            "holds no certificate resolver: Traefik has not written an account or certificate "
            "to it yet"
        )
    return document


def _get(entry: Mapping[str, Any], key: str) -> Any:
    """A field by its name in any case (Go writes untagged fields capitalised, tagged ones as
    tagged, and v1.7 used other capitals)."""
    return next((value for name, value in entry.items() if name.lower() == key), None)


def _text(entry: Mapping[str, Any], key: str) -> str:
    value = _get(entry, key)
    return value.strip() if isinstance(value, str) else ""


def _base64(entry: Mapping[str, Any], key: str) -> bytes:
    value = _get(entry, key)
    if not isinstance(value, str) or not value.strip():
        raise _Unusable(f"has no {key}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _Unusable(f"its {key} is not base64") from None


def _account(resolver: str, entry: Any, configured_directory: str) -> TraefikAccount | None:
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise _Unusable("is not a JSON object")
    der = _base64(entry, "privatekey")
    try:
        key = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError):
        raise _Unusable("its PrivateKey is not a DER private key") from None
    registration = _get(entry, "registration")
    uri = _text(registration, "uri") if isinstance(registration, dict) else ""
    return TraefikAccount(
        resolver, _text(entry, "email"), uri, private_key_pem(key),
        directory_of(uri, configured_directory),
    )  # fmt: skip


def _certificate_entries(entries: Any) -> Iterator[tuple[str, Any]]:
    """(how to name it in a message, the entry) for each certificate of a resolver."""
    if entries is None:
        return
    if not isinstance(entries, list):
        yield "certificates", None
        return
    for index, entry in enumerate(entries, start=1):
        domain = _get(entry, "domain") if isinstance(entry, dict) else None
        main = _text(domain, "main") if isinstance(domain, dict) else ""
        yield f"certificate {main or f'#{index}'}", entry


def _certificate(resolver: str, entry: Any, now: datetime, directory: str) -> TraefikCertificate:
    if not isinstance(entry, dict):
        raise _Unusable("is not a JSON object")
    chain = _load_chain(_base64(entry, "certificate"))
    leaf = chain[0]
    key = _load_key(_base64(entry, "key"))
    if _public_der(key) != leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise _Unusable("its key does not match its certificate")
    if leaf.not_valid_after_utc <= now:
        raise _Unusable(f"expired {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
    try:
        key_type = key_type_of(leaf)
    except ValueError:
        raise _Unusable("its key type is not one certbotless orders (EC P-256/P-384, RSA "
                        "2048/3072/4096), so it could not be renewed alike") from None  # fmt: skip
    domains = _domains(entry, leaf)
    spec = CertSpec(domains[0], domains, key_type)
    return TraefikCertificate(
        resolver,
        IssuedCert(spec, b"".join(_pem(c) for c in chain), private_key_pem(key), directory),
        serial_hex(leaf.serial_number),
        leaf.not_valid_before_utc,
        leaf.not_valid_after_utc,
        leaf.fingerprint(hashes.SHA256()).hex(),
    )


def _load_chain(pem: bytes) -> list[x509.Certificate]:
    try:
        chain = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise _Unusable("its certificate is not a PEM certificate chain") from None
    return chain


def _load_key(pem: bytes) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise _Unusable("its key is not an unencrypted PEM private key") from None


def _public_der(key: PrivateKeyTypes) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _domains(entry: Mapping[str, Any], leaf: x509.Certificate) -> tuple[str, ...]:
    """The certificate's names, its `domain.main` first: the certificate name certbotless gives
    a service whose first domain that is (discovery.py)."""
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise _Unusable("its certificate names no domain (no subjectAltName)") from None
    names = [name.lower() for name in san.get_values_for_type(x509.DNSName)]
    names += [str(address) for address in san.get_values_for_type(x509.IPAddress)]
    wildcards = [name for name in names if name.startswith("*.")]
    if wildcards:
        raise _Unusable(f"{wildcards[0]} is a wildcard, which HTTP-01 cannot renew; certbotless "
                        "serves each hostname by its own name")  # fmt: skip
    domain = _get(entry, "domain")
    main = _ascii(_text(domain, "main") if isinstance(domain, dict) else "")
    if main and main not in names:
        raise _Unusable(f"domain.main {main} is not among the certificate's names "
                        f"({', '.join(names)})")  # fmt: skip
    first = main or (names[0] if names else "")
    if not CERTIFICATE_NAME_RE.fullmatch(first):
        raise _Unusable(f"{first or 'its first name'} is not a name certbotless can give a "
                        "certificate")  # fmt: skip
    return (first, *(name for name in names if name != first))


def _ascii(name: str) -> str:
    """A hostname as certificates carry it (IDNA, lowercase); unchanged when not a hostname."""
    try:
        return idna.encode(name.lower(), uts46=True).decode("ascii") if name else ""
    except idna.IDNAError:
        return name.lower()


def describe_account(account: TraefikAccount) -> str:
    ca = account.directory_url or "CA unknown"
    who = ", ".join(part for part in (account.email, account.registration_uri, ca) if part)
    return f"the account of resolver {account.resolver} ({who})"


def describe_certificate(cert: TraefikCertificate) -> str:
    spec = cert.issued.spec
    return (
        f"{spec.name} ({', '.join(spec.domains)}) from resolver {cert.resolver}: "
        f"{spec.key_type}, serial {cert.serial}, valid until {cert.not_after:%Y-%m-%d %H:%M} UTC"
    )


def other_accounts(parsed: AcmeJson, chosen: TraefikAccount) -> list[TraefikAccount]:
    """The accounts not taken, each key once (resolvers may share one account)."""
    taken = {chosen.key_pem}
    others = []
    for account in parsed.accounts:
        if account.key_pem not in taken:
            taken.add(account.key_pem)
            others.append(account)
    return others


def import_plan(
    parsed: AcmeJson, account: TraefikAccount | None, action: AccountKeyAction | None,
    dry_run: bool,
) -> Iterator[str]:  # fmt: skip
    """What `certbotless import-traefik` does (or would do) with acme.json's account and
    certificates, line by line."""
    if account is None:
        yield "acme.json holds no usable account: certbotless keeps its own"
    else:
        verb = "would become" if dry_run else "becomes"
        outcome = {
            AccountKeyAction.CREATE: f"{verb} certbotless's ACME account",
            AccountKeyAction.REPLACE: f"{verb} certbotless's ACME account, replacing its key",
            AccountKeyAction.KEEP: "is certbotless's ACME account already",
            None: "is not imported (see above)",
        }[action]
        yield f"{describe_account(account)} {outcome}"
        for other in other_accounts(parsed, account):
            yield f"not imported: {describe_account(other)} (certbotless uses one account)"
    if dry_run:
        for cert in parsed.certificates:
            yield f"would import {describe_certificate(cert)}"
    for skipped in parsed.skipped:
        yield f"skipped {skipped}"
