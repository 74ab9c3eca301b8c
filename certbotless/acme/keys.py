"""Private keys for certificates and for the ACME account."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from josepy.jwk import JWK, JWKEC

from certbotless.model import KeyType

_RSA_BITS = {KeyType.RSA2048: 2048, KeyType.RSA3072: 3072, KeyType.RSA4096: 4096}
_CURVES: dict[KeyType, ec.EllipticCurve] = {
    KeyType.EC256: ec.SECP256R1(),
    KeyType.EC384: ec.SECP384R1(),
}


def generate_private_key(key_type: KeyType) -> PrivateKeyTypes:
    if key_type in _CURVES:
        return ec.generate_private_key(_CURVES[key_type])
    return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS[key_type])


def private_key_pem(key: PrivateKeyTypes) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_account_key(path: Path | None) -> JWK:
    """The account key from a PEM file (a mounted secret); without one, a key for this process
    only (tests, benchmarks)."""
    if path is not None and path.is_file():
        return load_account_key_pem(path.read_bytes())
    return JWKEC(key=ec.generate_private_key(ec.SECP256R1()))


def load_account_key_pem(pem: bytes) -> JWK:
    key = serialization.load_pem_private_key(pem, password=None)
    return JWK.load(private_key_pem(key))
