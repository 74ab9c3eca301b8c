"""ACME Renewal Information (RFC 9773): certificate identifiers and when to renew."""

from __future__ import annotations

import base64
import random
from datetime import datetime, timedelta

from cryptography import x509

RENEW_AT_REMAINING_FRACTION = 1 / 3
# RFC 9773 §4.3.3: without Retry-After, ask again in about six hours.
DEFAULT_ARI_RECHECK = timedelta(hours=6)


def ari_cert_id(cert: x509.Certificate) -> str:
    """base64url(AKI keyIdentifier) "." base64url(DER serial), RFC 9773 §4.1."""
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    if aki.key_identifier is None:
        raise ValueError("certificate has no authority key identifier, so no ARI identifier")
    serial = cert.serial_number
    serial_der = serial.to_bytes((serial.bit_length() + 8) // 8, "big", signed=True)
    return f"{_b64url(aki.key_identifier)}.{_b64url(serial_der)}"


def ari_cert_id_from_pem(chain_pem: bytes) -> str:
    return ari_cert_id(x509.load_pem_x509_certificate(chain_pem))


def lifetime_renewal_time(not_before: datetime, not_after: datetime) -> datetime:
    return not_after - (not_after - not_before) * RENEW_AT_REMAINING_FRACTION


def time_in_window(start: datetime, end: datetime, rng: random.Random | None = None) -> datetime:
    """A uniformly random moment in the CA's window, so that renewals of many clients spread."""
    span = max((end - start).total_seconds(), 0.0)
    return start + timedelta(seconds=(rng or random).uniform(0, span))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")
