"""Private keys for certificates and for the ACME account."""

from __future__ import annotations

import logging
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from josepy.jwk import JWK, JWKEC

from certbotless.model import KeyType

log = logging.getLogger(__name__)

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
    """The account key from a mounted file; without one, a new key for this process only."""
    if path is not None and path.is_file():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        return JWK.load(private_key_pem(key))
    log.warning(
        "no account key file: using a new ACME account for this process; "
        "set CERTBOTLESS_ACCOUNT_KEY_FILE to keep one account across restarts"
    )
    return JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
