"""The swarm as certificate store: chains in configs, keys in secrets, facts in labels."""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import secrets as random_tokens
from collections.abc import Collection, Iterable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from certbotless.acme.ari import ari_cert_id
from certbotless.acme.errors import AcmeError
from certbotless.model import (
    OBJECT_NAME_PREFIX,
    IssuedCert,
    KeyType,
    LabelProblem,
    ObjectKind,
    ObjectRole,
    Removal,
    StoredCert,
    StoredObject,
)
from certbotless.swarm.api import APIError, Json, Swarm, created_order
from certbotless.swarm.authenticity import AuthenticObjects, StoreKey, base_name
from certbotless.swarm.schema import stamped

NAME_PREFIX = OBJECT_NAME_PREFIX
MAX_OBJECT_NAME = 64
_UNSAFE_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_.-]")

MANAGED = "certbotless.managed"
KIND = "certbotless.kind"  # its value is an ObjectRole
CERT_NAME = "certbotless.cert.name"
CERT_DOMAINS = "certbotless.cert.domains"
CERT_SERIAL = "certbotless.cert.serial"
CERT_NOT_BEFORE = "certbotless.cert.not_before"
CERT_NOT_AFTER = "certbotless.cert.not_after"
CERT_FINGERPRINT = "certbotless.cert.sha256"
CERT_KEY_TYPE = "certbotless.cert.key_type"
CERT_ISSUER = "certbotless.cert.issuer"
CERT_KEY_SECRET = "certbotless.cert.key_secret"
CERT_ARI_ID = "certbotless.cert.ari_id"
CERT_DIRECTORY = "certbotless.cert.acme_directory"
# Set on a chain config when Swarm rolled back the update that mounted it: never current again.
CERT_REFUSED = "certbotless.cert.refused"
# On an nginx configuration file's config: where the edge mounts it (gc keeps versions per file).
NGINX_TARGET = "certbotless.nginx.target"

ACCOUNT_KEY_SECRET = "cbl-acme-account-key"
# On the account key secret: its public key's JWK thumbprint, so an import can tell whether a key
# is already the account's without reading the secret (Swarm never returns a secret's data).
ACCOUNT_THUMBPRINT = "certbotless.account.thumbprint"
_MAX_LABEL_TEXT = 1000
PLACEHOLDER_NAME = "cbl-placeholder"
# What garbage collection may remove (never the account key, the placeholder or the statuses).
_COLLECTABLE_ROLES = (
    ObjectRole.CHAIN,
    ObjectRole.KEY,
    ObjectRole.NGINX_CONF,
    ObjectRole.TICKET_KEY,
)
# TLS session ticket keys, one a day: nginx's 80-byte form (AES-256 and HMAC-SHA256 keys).
TICKET_KEY_PREFIX = "cbl-tls-ticket-key-"
TICKET_KEY_BYTES = 80
TICKET_KEYS_IN_USE = 2  # the current key encrypts, the previous one decrypts
# A config or secret a release's stack file makes (stacks/edge.yml): `certbotless_`, what it
# is, the first 8 hex digits of its content's SHA-256, and the label KIND=stack-file. Both must
# hold before gc removes one (tests/unit/test_stack_files.py keeps the stack files so).
STACK_FILE_NAME = re.compile(r"certbotless_[a-z0-9_]+_[0-9a-f]{8}")
# `docker stack deploy` creates the new configs before it updates the services: never remove
# one younger than this, which a deploy under way may be about to mount.
STACK_FILE_GRACE = timedelta(hours=1)
# A key secret whose chain config is missing may be a save in progress elsewhere; wait this long.
UNPAIRED_GRACE = timedelta(hours=1)

log = logging.getLogger(__name__)


class NotStored(AcmeError):
    """The CA issued a certificate, but the swarm did not store it."""


def object_name(cert_name: str, now: datetime) -> str:
    """A Swarm-legal, time-sortable, unique name for one version of a certificate: characters
    Swarm refuses become '-', and a name that had to change or be shortened keeps a hash of
    the original, so different certificates never share a name."""
    stamp = now.strftime("%Y%m%d%H%M%S") + random_tokens.token_hex(3)
    room = MAX_OBJECT_NAME - len(NAME_PREFIX) - 1 - len(stamp)
    slug = _UNSAFE_NAME_CHARS.sub("-", cert_name)
    if slug != cert_name or len(slug) > room:
        digest = hashlib.sha256(cert_name.encode()).hexdigest()[:8]
        slug = slug[: room - len(digest) - 1].rstrip(".-_") + "-" + digest
    return f"{NAME_PREFIX}{slug}-{stamp}"


def nginx_conf_name(text: str) -> str:
    return f"{NAME_PREFIX}nginx-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def serial_hex(serial: int) -> str:
    return format(serial, "x")


class CertStore:
    """`key`: the sidecar's MAC key (`swarm.authenticity`); None: nothing is authenticated."""

    def __init__(self, swarm: Swarm, key: StoreKey | None = None) -> None:
        self.swarm = swarm
        self.objects = AuthenticObjects(swarm, key)

    # --- certificates ---------------------------------------------------------------------------

    def save(self, issued: IssuedCert, now: datetime | None = None) -> StoredCert:
        """Key secret first, chain config second: a chain is only listed once its key exists."""
        name = object_name(issued.spec.name, now or datetime.now(UTC))
        labels = certificate_labels(issued, name)
        secret_id = self.objects.create(ObjectKind.SECRET, name, issued.key_pem,
                                        {**labels, KIND: ObjectRole.KEY})  # fmt: skip
        config_id = self.objects.create(ObjectKind.CONFIG, name, issued.fullchain_pem,
                                        {**labels, KIND: ObjectRole.CHAIN})  # fmt: skip
        stored = read_stored_cert(labels, name, config_id, issued.fullchain_pem, secret_id)
        assert stored is not None
        return stored

    def inventory(self) -> list[StoredCert]:
        """Every usable stored version (chain config with its key secret), read from the configs'
        labels and data alone; where labels and certificate disagree, the certificate wins and
        the difference is listed in `mismatches`."""
        secret_ids = {
            s["Spec"]["Name"]: s["ID"] for s in self.objects.secrets(f"{KIND}={ObjectRole.KEY}")
        }
        stored = []
        for config in self.objects.configs(f"{KIND}={ObjectRole.CHAIN}"):
            labels = config["Spec"].get("Labels") or {}
            secret_id = secret_ids.get(labels.get(CERT_KEY_SECRET, ""))
            if secret_id is None:
                continue  # its key is gone (or not yet made): unusable
            cert = read_stored_cert(
                labels,
                config["Spec"]["Name"],
                config["ID"],
                base64.b64decode(config["Spec"].get("Data", "")),
                secret_id,
                config.get("CreatedAt", ""),
            )
            if cert is not None:
                stored.append(cert)
        return sorted(stored, key=lambda c: (c.name, issuance_order(c)))

    def chain_pem(self, cert: StoredCert) -> bytes:
        return self.swarm.config_data(cert.config_id)

    def mark_refused(self, cert: StoredCert, reason: str) -> None:
        """Swarm rolled back the update that mounted this version; keep it out of use."""
        labels = stamped({**self.swarm.inspect_config_labels(cert.config_id),
                          CERT_REFUSED: _label_text(reason)})  # fmt: skip
        self.swarm.update_config_labels(cert.config_id, labels)

    # --- nginx configuration ----------------------------------------------------------------

    def ensure_nginx_confs(self, files: Mapping[str, str]) -> dict[str, tuple[str, str]]:
        """A config per file (target path → text), content-addressed, so an unchanged file never
        causes a roll: target → (config name, config id). One listing for all of them."""
        role = ObjectRole.NGINX_CONF
        existing = {base_name(item["Spec"]["Name"]): (item["Spec"]["Name"], str(item["ID"]))
                    for item in self.objects.configs(f"{KIND}={role}")}  # fmt: skip
        made = {}
        for target, text in files.items():
            name = nginx_conf_name(text)
            if name not in existing:
                labels = {MANAGED: "true", KIND: role, NGINX_TARGET: target}
                existing[name] = self._create(ObjectKind.CONFIG, role, name, text.encode(), labels)
            made[target] = existing[name]
        return made

    def ensure_placeholder(self, chain_pem: bytes, key_pem: bytes) -> tuple[str, str, str]:
        """A self-signed pair that stands in for certificates not issued yet, so an operator's
        nginx.conf can include every snippet from the start. Made once: (name, config id,
        secret id); later calls ignore the PEMs they are given."""
        role = ObjectRole.PLACEHOLDER
        secret_id = self._create_once(ObjectKind.SECRET, role, PLACEHOLDER_NAME, key_pem)[1]
        name, config_id = self._create_once(ObjectKind.CONFIG, role, PLACEHOLDER_NAME, chain_pem)
        return name, config_id, secret_id

    def ensure_ticket_keys(self, today: date) -> list[tuple[str, str]]:
        """The TLS session ticket keys the edge mounts, newest first, as (name, id): today's,
        made if missing, and the one before it, so that tickets issued yesterday still resume.
        A new key a day: a stolen one decrypts at most two days of sessions."""
        name = TICKET_KEY_PREFIX + today.strftime("%Y%m%d")
        self._create_once(ObjectKind.SECRET, ObjectRole.TICKET_KEY, name,
                          random_tokens.token_bytes(TICKET_KEY_BYTES))  # fmt: skip
        keys = sorted(((s["Spec"]["Name"], str(s["ID"]))
                       for s in self.objects.secrets(f"{KIND}={ObjectRole.TICKET_KEY}")
                       if base_name(s["Spec"]["Name"]) <= name), reverse=True)  # fmt: skip
        return keys[:TICKET_KEYS_IN_USE]

    # --- the ACME account key -----------------------------------------------------------------

    def account_key_secret(self, issuer: str = "") -> tuple[str, str] | None:
        """(name, id) of `issuer`'s account key secret in use (`account_key_secret_name`): the
        newest made (an import with `--replace-account` adds a version), or None."""
        versions = self._account_key_versions(issuer)
        return (versions[-1]["Spec"]["Name"], str(versions[-1]["ID"])) if versions else None

    def account_key_thumbprint(self, issuer: str = "") -> str:
        """The JWK thumbprint its label records for the account key in use ("" when unknown:
        secrets made before the label existed)."""
        versions = self._account_key_versions(issuer)
        labels = (versions[-1]["Spec"].get("Labels") or {}) if versions else {}
        return str(labels.get(ACCOUNT_THUMBPRINT, ""))

    def create_account_key_secret(
        self, key_pem: bytes, thumbprint: str = "", issuer: str = ""
    ) -> tuple[str, str] | None:
        """Make it: (name, id), or None when a concurrent start made it first (that one wins)."""
        name = account_key_secret_name(issuer)
        try:
            return name, self.objects.create(ObjectKind.SECRET, name, key_pem,
                                             _account_key_labels(thumbprint))  # fmt: skip
        except APIError as error:
            if error.status_code == 409:
                return None
            raise

    def add_account_key_version(
        self, key_pem: bytes, thumbprint: str, now: datetime | None = None, issuer: str = ""
    ) -> tuple[str, str]:
        """A newer account key secret beside the current one (secrets cannot change, and the one
        in use cannot be removed): (name, id). It becomes the one `account_key_secret` names."""
        stamp = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S") + random_tokens.token_hex(3)
        name = f"{account_key_secret_name(issuer)}-{stamp}"
        return name, self.objects.create(ObjectKind.SECRET, name, key_pem,
                                         _account_key_labels(thumbprint))  # fmt: skip

    def _account_key_versions(self, issuer: str = "") -> list[Json]:
        """The account key secrets of `issuer`, oldest first."""
        version = re.compile(re.escape(account_key_secret_name(issuer)) + r"(-\d{14}[0-9a-f]{6})?")
        versions = self.objects.account_keys(
            [secret for secret in self.swarm.secrets(f"{KIND}={ObjectRole.ACCOUNT_KEY}")
             if version.fullmatch(secret["Spec"]["Name"])]
        )  # fmt: skip
        return sorted(versions, key=lambda s: (created_order(s.get("CreatedAt", "")),
                                                s["Spec"]["Name"]))  # fmt: skip

    # --- garbage collection -------------------------------------------------------------------

    def collectable_objects(self) -> list[StoredObject]:
        """Every chain, key and nginx.conf object certbotless made (never the account key, never
        an object it cannot tell it made), and the configs and secrets stack files made under
        certbotless's reserved names; never one a newer certbotless made (`swarm.schema`)."""
        objects = _stack_file_objects(self.objects)
        for kind in (ObjectKind.CONFIG, ObjectKind.SECRET):
            for item in self.objects.listing(kind)(f"{MANAGED}=true"):
                labels = item["Spec"].get("Labels") or {}
                role = labels.get(KIND, "")
                if role in _COLLECTABLE_ROLES:
                    objects.append(
                        StoredObject(
                            kind,
                            item["ID"],
                            item["Spec"]["Name"],
                            item.get("CreatedAt", ""),
                            ObjectRole(role),
                            labels.get(NGINX_TARGET, ""),
                        )
                    )
        return objects

    def untrusted(self) -> list[LabelProblem]:  # see AuthenticObjects
        return self.objects.survey()

    def adopt(self, mounted: Collection[str]) -> list[str]:
        return self.objects.adopt(mounted)

    def remove(self, target: StoredObject) -> None:
        if target.kind == ObjectKind.SECRET:
            self.swarm.remove_secret(target.name)
        else:
            self.swarm.remove_config(target.name)

    def _create_once(
        self, kind: ObjectKind, role: ObjectRole, name: str, data: bytes
    ) -> tuple[str, str]:
        existing = self.objects.holder(kind, role, name)
        if existing is not None:
            return existing
        return self._create(kind, role, name, data, {MANAGED: "true", KIND: role})

    def _create(
        self, kind: ObjectKind, role: ObjectRole, name: str, data: bytes, labels: dict[str, str]
    ) -> tuple[str, str]:
        """(name, id): `name`, or another where an object certbotless did not make holds it."""
        try:
            return self.objects.create_named(kind, name, data, labels)
        except APIError as error:
            raced = self.objects.holder(kind, role, name) if error.status_code == 409 else None
            if raced is None:
                raise
            return raced  # a concurrent pass (e.g. `docker exec … issue`) made it first


def _stack_file_objects(objects: AuthenticObjects) -> list[StoredObject]:
    """The configs and secrets a release's stack file made (`docker stack deploy`: unsigned,
    known by their reserved names only), but those of a newer schema."""
    role = ObjectRole.STACK_FILE
    listings = {ObjectKind.CONFIG: objects.swarm.configs, ObjectKind.SECRET: objects.swarm.secrets}
    return [
        StoredObject(kind, item["ID"], item["Spec"]["Name"], item.get("CreatedAt", ""), role)
        for kind, listing in listings.items()
        for item in objects.readable(kind, listing(f"{KIND}={role}"))
        if STACK_FILE_NAME.fullmatch(item["Spec"]["Name"])
    ]


def account_key_secret_name(issuer: str = "") -> str:
    """An issuer's account key secret: the first's ("") is the one of releases before several
    issuers; the others' carry their name after a dot (which issuer names never contain)."""
    return f"{ACCOUNT_KEY_SECRET}.{issuer}" if issuer else ACCOUNT_KEY_SECRET


def _account_key_labels(thumbprint: str) -> dict[str, str]:
    labels = {MANAGED: "true", KIND: ObjectRole.ACCOUNT_KEY}
    return {**labels, ACCOUNT_THUMBPRINT: thumbprint} if thumbprint else labels


def certificate_labels(issued: IssuedCert, object_name: str) -> dict[str, str]:
    """Everything needed to list a stored version without mounting it."""
    leaf = x509.load_pem_x509_certificate(issued.fullchain_pem)
    return {
        MANAGED: "true",
        CERT_NAME: issued.spec.name,
        CERT_DOMAINS: ",".join(issued.spec.domains),
        **_certificate_facts(leaf, issued.spec.key_type),
        CERT_ISSUER: leaf.issuer.rfc4514_string()[:200],
        CERT_DIRECTORY: issued.directory_url,
        CERT_KEY_SECRET: object_name,
    }


def _certificate_facts(leaf: x509.Certificate, key_type: KeyType) -> dict[str, str]:
    """The labels whose values the certificate itself holds (all but its domains)."""
    return {
        CERT_SERIAL: serial_hex(leaf.serial_number),
        CERT_NOT_BEFORE: leaf.not_valid_before_utc.isoformat(),
        CERT_NOT_AFTER: leaf.not_valid_after_utc.isoformat(),
        CERT_FINGERPRINT: leaf.fingerprint(hashes.SHA256()).hex(),
        CERT_KEY_TYPE: key_type.value,
        CERT_ARI_ID: _ari_id_or_blank(leaf),
    }


def issuance_order(cert: StoredCert) -> tuple[datetime, tuple[datetime, int], str]:
    """Sort key of the versions of a certificate, oldest issued first: by notBefore, then by when
    Swarm created it, then by name. Never by expiry: a renewal may be shorter-lived than the
    version it replaces (another profile, another CA, shorter lifetimes)."""
    return cert.not_before, created_order(cert.created_at), cert.config_name


def usable(cert: StoredCert, now: datetime) -> bool:
    """Whether a version can be served: Swarm has not refused it and it has not expired (every
    listed version has its key: `CertStore.inventory` skips a chain whose key is gone)."""
    return not cert.refused and cert.not_after > now


def latest_per_name(stored: Iterable[StoredCert], now: datetime) -> dict[str, StoredCert]:
    """The version of each certificate to use: the newest issued that is usable, or, when every
    version has expired, the newest issued that Swarm has not refused (it is due at once)."""
    latest: dict[str, StoredCert] = {}
    for cert in sorted(stored, key=lambda c: (usable(c, now), issuance_order(c))):
        if not cert.refused:
            latest[cert.name] = cert  # the last one sorted wins
    return latest


def read_stored_cert(
    labels: dict[str, str],
    config_name: str,
    config_id: str,
    chain_pem: bytes,
    secret_id: str,
    created_at: str = "",
) -> StoredCert | None:
    """One stored version from its labels and its chain; the chain is the truth."""
    name = labels.get(CERT_NAME)
    if not name:
        log.warning("config %s has no %s label; ignoring it", config_name, CERT_NAME)
        return None
    try:
        leaf = x509.load_pem_x509_certificate(chain_pem)
        truth = {
            CERT_DOMAINS: ",".join(_domains(labels, leaf)),
            **_certificate_facts(leaf, key_type_of(leaf)),
        }
    except (ValueError, x509.ExtensionNotFound) as error:
        log.warning("config %s: not a certificate certbotless can use (%s); ignoring it",
                    config_name, error)  # fmt: skip
        return None
    mismatches = _mismatches(labels, truth)
    if mismatches:
        log.warning(
            "%s (%s): labels disagree with the certificate: %s",
            name,
            config_name,
            "; ".join(mismatches),
        )
    return StoredCert(
        name=name,
        domains=tuple(truth[CERT_DOMAINS].split(",")),
        serial=truth[CERT_SERIAL],
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        key_type=KeyType(truth[CERT_KEY_TYPE]),
        config_name=config_name,
        config_id=config_id,
        secret_name=labels.get(CERT_KEY_SECRET, ""),
        secret_id=secret_id,
        ari_id=truth[CERT_ARI_ID],
        directory_url=labels.get(CERT_DIRECTORY, ""),
        fingerprint=truth[CERT_FINGERPRINT],
        created_at=created_at,
        mismatches=mismatches,
        refused=labels.get(CERT_REFUSED, ""),
    )


def _domains(labels: dict[str, str], leaf: x509.Certificate) -> list[str]:
    """The certificate's names, in the labels' order when they name the same set (the first is
    the one listed first). Raises ExtensionNotFound for a certificate without names."""
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    pem_domains = san.get_values_for_type(x509.DNSName) + [
        str(address) for address in san.get_values_for_type(x509.IPAddress)
    ]
    label_domains = _label_domains(labels)
    return label_domains if set(label_domains) == set(pem_domains) else pem_domains


def _label_domains(labels: dict[str, str]) -> list[str]:
    return _split_domains(labels.get(CERT_DOMAINS, ""))


def _split_domains(text: str) -> list[str]:
    return [d for d in text.split(",") if d]


def _mismatches(labels: dict[str, str], truth: dict[str, str]) -> tuple[str, ...]:
    """Where the labels disagree with the certificate (domains in another order agree)."""
    return tuple(
        f"{label}: label says {labels.get(label)!r}, certificate says {value!r}"
        for label, value in truth.items()
        if labels.get(label) != value
        and not (
            label == CERT_DOMAINS and set(_label_domains(labels)) == set(_split_domains(value))
        )
    )


def plan_garbage(
    stored: Iterable[StoredCert],
    objects: Iterable[StoredObject],
    referenced: Collection[str],
    wanted_names: Collection[str],
    now: datetime,
    keep_versions: int,
    keep_expired: timedelta,
) -> list[Removal]:
    """What may go: never an object that any service's current or previous spec references
    (removing what a previous spec names breaks Swarm's rollback); of each certificate the
    newest `keep_versions` usable versions (refused and expired ones do not count; the newest
    usable one is always kept), and of each nginx configuration file the newest
    `keep_versions`; an expired version only once it has been expired for `keep_expired`, so a
    certificate whose label was removed by mistake loses nothing before."""
    objects = list(objects)
    by_id = {o.object_id: o for o in objects}
    removals: list[Removal] = []

    def remove(object_id: str, reason: str) -> None:
        if object_id in by_id and object_id not in referenced:
            removals.append(Removal(by_id.pop(object_id), reason))

    versions: dict[str, list[StoredCert]] = {}
    for cert in stored:
        versions.setdefault(cert.name, []).append(cert)
    paired = {object_id for cert in stored for object_id in (cert.config_id, cert.secret_id)}
    for name, certs in versions.items():
        keep = max(keep_versions, 1)
        for cert, reason in _surplus_versions(
            name, certs, now, keep, keep_expired, name in wanted_names
        ):
            if cert.config_id not in referenced and cert.secret_id not in referenced:
                remove(cert.config_id, reason)
                remove(cert.secret_id, reason)

    for conf, reason in _old_nginx_confs(objects, keep_versions):
        remove(conf.object_id, reason)
    keys = sorted((o for o in objects if o.role == ObjectRole.TICKET_KEY), key=lambda o: o.name)
    for key in keys[:-TICKET_KEYS_IN_USE]:
        remove(key.object_id, f"TLS session ticket key older than the newest {TICKET_KEYS_IN_USE}")
    for stale in _unused_stack_files(objects, now):
        remove(stale.object_id, "a stack file's earlier version, which no service mounts")
    for leftover in list(by_id.values()):
        if leftover.role in (ObjectRole.CHAIN, ObjectRole.KEY) and leftover.object_id not in paired:
            created = _parse_time(leftover.created_at)
            if created is not None and now - created > UNPAIRED_GRACE:
                remove(leftover.object_id, "half of a certificate (its pair is missing)")
    return removals


def _surplus_versions(
    name: str,
    certs: list[StoredCert],
    now: datetime,
    keep: int,
    keep_expired: timedelta,
    wanted: bool,
) -> Iterator[tuple[StoredCert, str]]:
    """The versions of one certificate gc may remove, with why (references aside): all but the
    newest `keep` usable ones, an expired one only once it has been expired for
    `keep_expired`."""
    newest_first = sorted(certs, key=issuance_order, reverse=True)
    kept = [cert for cert in newest_first if usable(cert, now)][:keep]
    for cert in newest_first:
        if cert in kept:
            continue
        if cert.refused:
            yield cert, f"{name}: Swarm refused it ({cert.refused})"
        elif usable(cert, now):
            yield cert, f"{name}: older than the newest {keep} usable versions"
        elif cert.not_after + keep_expired < now:
            unwanted = "" if wanted else " is no longer wanted and"
            yield cert, f"{name}{unwanted} expired {cert.not_after:%Y-%m-%d}"


def _unused_stack_files(objects: Iterable[StoredObject], now: datetime) -> list[StoredObject]:
    """Stack-file configs and secrets under the reserved names, older than the grace (whether a
    service mounts one is `plan_garbage`'s check, as for every object)."""
    return [
        item
        for item in objects
        if item.role == ObjectRole.STACK_FILE
        and STACK_FILE_NAME.fullmatch(item.name)
        and (created := _parse_time(item.created_at)) is not None
        and now - created > STACK_FILE_GRACE
    ]


def _old_nginx_confs(
    objects: Iterable[StoredObject], keep_versions: int
) -> list[tuple[StoredObject, str]]:
    """Versions of each nginx configuration file beyond its newest `keep_versions`."""
    by_target: dict[str, list[StoredObject]] = {}
    for item in objects:
        if item.role == ObjectRole.NGINX_CONF:
            by_target.setdefault(item.nginx_target, []).append(item)
    old = []
    for target, confs in by_target.items():
        confs.sort(key=lambda o: o.created_at, reverse=True)
        reason = f"{target or 'nginx.conf'}: older than the newest {keep_versions} versions"
        old += [(conf, reason) for conf in confs[keep_versions:]]
    return old


def key_type_of(leaf: x509.Certificate) -> KeyType:
    """Raises ValueError for a key certbotless never orders."""
    key = leaf.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size in (256, 384):
        return KeyType(f"ec{key.curve.key_size}")
    if isinstance(key, rsa.RSAPublicKey):
        return KeyType(f"rsa{key.key_size}")
    raise ValueError(f"unsupported certificate key {type(key).__name__}")


def _label_text(text: str) -> str:
    return text if len(text) <= _MAX_LABEL_TEXT else text[: _MAX_LABEL_TEXT - 1] + "…"


def _ari_id_or_blank(leaf: x509.Certificate) -> str:
    try:
        return ari_cert_id(leaf)
    except (x509.ExtensionNotFound, ValueError):
        return ""


def _parse_time(text: str) -> datetime | None:
    """Swarm's CreatedAt (UTC, with nanoseconds Python cannot parse), to the second."""
    match = re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", text)
    return datetime.fromisoformat(match.group(0)).replace(tzinfo=UTC) if match else None
