"""Traefik acme.json files made in the test: a CA of our own, certificates with their keys, and
accounts, laid out as Traefik v2/v3 (pkg/provider/acme/local_store.go) or v1.7 writes them."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
LE_ACCOUNT_URI = "https://acme-v02.api.letsencrypt.org/acme/acct/123456"
STAGING_ACCOUNT_URI = "https://acme-staging-v02.api.letsencrypt.org/acme/acct/654321"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def traditional_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    """As Traefik (lego's certcrypto.PEMEncode) writes keys: SEC1 "EC PRIVATE KEY", PKCS#1 RSA."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


@dataclass
class FixtureCa:
    """An intermediate that signs leaves; the chain is leaf + intermediate, as an ACME CA's."""

    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    serials: int = 0x1000

    def __post_init__(self) -> None:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test intermediate")])
        self.name = name
        self.certificate = self._build(name, self.key.public_key(), [], NOW - timedelta(days=30),
                                       NOW + timedelta(days=900), ca=True)  # fmt: skip

    def issue(
        self,
        domains: list[str],
        key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | None = None,
        not_before: datetime = NOW - timedelta(days=10),
        days: int = 90,
    ) -> tuple[bytes, bytes]:
        """(chain PEM, key PEM as Traefik stores it)."""
        key = key or ec.generate_private_key(ec.SECP256R1())
        self.serials += 1
        leaf = self._build(
            x509.Name([]), key.public_key(), domains, not_before, not_before + timedelta(days=days)
        )
        chain = leaf.public_bytes(serialization.Encoding.PEM) + self.certificate.public_bytes(
            serialization.Encoding.PEM
        )
        return chain, traditional_pem(key)

    def _build(
        self,
        subject: x509.Name,
        public_key: Any,
        domains: list[str],
        not_before: datetime,
        not_after: datetime,
        ca: bool = False,
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.name)
            .public_key(public_key)
            .serial_number(self.serials)
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if domains:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(d) for d in domains]), critical=False
            )
        signer: CertificateIssuerPrivateKeyTypes = self.key
        return builder.sign(signer, hashes.SHA256())


def account_key() -> rsa.RSAPrivateKey:
    # Traefik makes 4096-bit keys; 2048 keeps the tests quick and the encoding is the same.
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def account_entry(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, uri: str, email: str = "ops@example.com"
) -> dict[str, Any]:
    """Traefik's Account: PrivateKey is x509.MarshalPKCS1PrivateKey, base64 (Go's []byte)."""
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    body = {"status": "valid", "contact": [f"mailto:{email}"]}
    return {
        "Email": email,
        "Registration": {"body": body, "uri": uri},
        "PrivateKey": b64(der),
        "KeyType": "4096",
    }


def certificate_entry(
    main: str, sans: list[str], chain: bytes, key: bytes, v1: bool = False
) -> dict[str, Any]:
    if v1:  # Traefik 1.7: capitalised, no store
        return {"Domain": {"Main": main, "SANs": sans}, "Certificate": b64(chain), "Key": b64(key)}
    domain: dict[str, Any] = {"main": main, **({"sans": sans} if sans else {})}
    return {"domain": domain, "certificate": b64(chain), "key": b64(key), "Store": "default"}


def acme_json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, indent=2).encode()
