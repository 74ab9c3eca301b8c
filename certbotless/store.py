"""The swarm as certificate store: chains in configs, keys in secrets, facts in labels."""

from __future__ import annotations

import hashlib
import secrets as random_tokens
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from certbotless.acme.ari import ari_cert_id
from certbotless.model import IssuedCert, KeyType, StoredCert
from certbotless.swarm import APIError, Swarm

NAME_PREFIX = "cbl-"
MAX_OBJECT_NAME = 64

MANAGED = "certbotless.managed"
KIND = "certbotless.kind"
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

KIND_CHAIN = "chain"
KIND_KEY = "key"
KIND_NGINX_CONF = "nginx-conf"


def object_name(cert_name: str, now: datetime) -> str:
    """A Swarm-legal, time-sortable, unique name for one version of a certificate."""
    stamp = now.strftime("%Y%m%d%H%M%S") + random_tokens.token_hex(2)
    room = MAX_OBJECT_NAME - len(NAME_PREFIX) - 1 - len(stamp)
    slug = cert_name
    if len(slug) > room:
        digest = hashlib.sha256(cert_name.encode()).hexdigest()[:8]
        slug = slug[: room - len(digest) - 1].rstrip(".-_") + "-" + digest
    return f"{NAME_PREFIX}{slug}-{stamp}"


def nginx_conf_name(text: str) -> str:
    return f"{NAME_PREFIX}nginx-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def serial_hex(serial: int) -> str:
    return format(serial, "x")


class CertStore:
    def __init__(self, swarm: Swarm) -> None:
        self.swarm = swarm

    def save(self, issued: IssuedCert, now: datetime | None = None) -> StoredCert:
        """Key secret first, chain config second: a chain is only listed once its key exists."""
        leaf = x509.load_pem_x509_certificate(issued.fullchain_pem)
        name = object_name(issued.spec.name, now or datetime.now(UTC))
        labels = {
            MANAGED: "true",
            CERT_NAME: issued.spec.name,
            CERT_DOMAINS: ",".join(issued.spec.domains),
            CERT_SERIAL: serial_hex(leaf.serial_number),
            CERT_NOT_BEFORE: leaf.not_valid_before_utc.isoformat(),
            CERT_NOT_AFTER: leaf.not_valid_after_utc.isoformat(),
            CERT_FINGERPRINT: leaf.fingerprint(hashes.SHA256()).hex(),
            CERT_KEY_TYPE: issued.spec.key_type.value,
            CERT_ISSUER: leaf.issuer.rfc4514_string()[:200],
            CERT_ARI_ID: ari_cert_id(leaf),
            CERT_DIRECTORY: issued.directory_url,
        }
        secret_id = self.swarm.create_secret(name, issued.key_pem, {**labels, KIND: KIND_KEY})
        config_id = self.swarm.create_config(
            name, issued.fullchain_pem, {**labels, KIND: KIND_CHAIN, CERT_KEY_SECRET: name}
        )
        return _stored_cert(labels, name, config_id, name, secret_id)

    def inventory(self) -> list[StoredCert]:
        secret_ids = {s["Spec"]["Name"]: s["ID"] for s in self.swarm.secrets(f"{KIND}={KIND_KEY}")}
        stored = []
        for config in self.swarm.configs(f"{KIND}={KIND_CHAIN}"):
            labels = config["Spec"].get("Labels") or {}
            secret_name = labels.get(CERT_KEY_SECRET, "")
            if secret_name not in secret_ids:
                continue  # its key is gone: unusable
            stored.append(
                _stored_cert(
                    labels,
                    config["Spec"]["Name"],
                    config["ID"],
                    secret_name,
                    secret_ids[secret_name],
                )
            )
        return sorted(stored, key=lambda c: (c.name, c.not_after, c.config_name))

    def ensure_nginx_conf(self, text: str) -> tuple[str, str]:
        """Content-addressed, so an unchanged configuration never causes a roll."""
        name = nginx_conf_name(text)
        existing = self._nginx_conf_id(name)
        if existing is not None:
            return name, existing
        labels = {MANAGED: "true", KIND: KIND_NGINX_CONF}
        try:
            return name, self.swarm.create_config(name, text.encode(), labels)
        except APIError as error:
            raced = self._nginx_conf_id(name) if error.status_code == 409 else None
            if raced is None:
                raise
            return name, raced  # a concurrent pass (e.g. `docker exec … issue`) made it first

    def _nginx_conf_id(self, name: str) -> str | None:
        for config in self.swarm.configs(f"{KIND}={KIND_NGINX_CONF}"):
            if config["Spec"]["Name"] == name:
                return str(config["ID"])
        return None


def latest_per_name(stored: list[StoredCert]) -> dict[str, StoredCert]:
    latest: dict[str, StoredCert] = {}
    for cert in stored:
        best = latest.get(cert.name)
        if best is None or (cert.not_after, cert.config_name) > (best.not_after, best.config_name):
            latest[cert.name] = cert
    return latest


def _stored_cert(
    labels: dict[str, str], config_name: str, config_id: str, secret_name: str, secret_id: str
) -> StoredCert:
    return StoredCert(
        name=labels[CERT_NAME],
        domains=tuple(labels[CERT_DOMAINS].split(",")),
        serial=labels[CERT_SERIAL],
        not_before=datetime.fromisoformat(labels[CERT_NOT_BEFORE]),
        not_after=datetime.fromisoformat(labels[CERT_NOT_AFTER]),
        key_type=KeyType(labels[CERT_KEY_TYPE]),
        config_name=config_name,
        config_id=config_id,
        secret_name=secret_name,
        secret_id=secret_id,
        ari_id=labels.get(CERT_ARI_ID, ""),
        directory_url=labels.get(CERT_DIRECTORY, ""),
    )
