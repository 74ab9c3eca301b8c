"""TLS-ALPN-01 (RFC 8737), for operators who cannot open port 80: the CA connects to port 443
offering ALPN `acme-tls/1` with the name in the SNI, and expects a self-signed certificate for
that name carrying, in a critical acmeIdentifier extension, the SHA-256 of the key
authorization. The front (HAProxy) routes those connections to the sidecar's
`alpn_responder.AlpnResponder`, which serves the certificates this solver puts in the store.

The installed `acme` library no longer knows the challenge type, so it is declared here.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import logging
import threading
from typing import Any

from acme import challenges
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from josepy.jwk import JWK

from certbotless.acme.challenges import AlpnCertificates
from certbotless.acme.errors import BadRequest
from certbotless.model import Challenge, ChallengeType
from certbotless.seams import Progress

log = logging.getLogger(__name__)

ACME_TLS_1 = "acme-tls/1"
# id-pe-acmeIdentifier (RFC 8737 §6.1).
ACME_IDENTIFIER = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31")
# The certificate only has to outlive the CA's validation; a day leaves room for clock skew.
VALIDITY = datetime.timedelta(days=1)


@challenges.ChallengeResponse.register
class TLSALPN01Response(challenges.KeyAuthorizationChallengeResponse):
    """ACME tls-alpn-01 challenge response (its JSON is `{}`, as every key authorization's)."""

    typ = ChallengeType.TLS_ALPN01.value


@challenges.Challenge.register
class TLSALPN01(challenges.KeyAuthorizationChallenge):
    """ACME tls-alpn-01 challenge."""

    response_cls = TLSALPN01Response
    typ = response_cls.typ

    def validation(self, account_key: JWK, **unused_kwargs: Any) -> bytes:
        """The digest the challenge certificate carries."""
        return hashlib.sha256(self.key_authorization(account_key).encode()).digest()


def challenge_certificate(domain: str, key_authorization: str) -> str:
    """The challenge certificate for `domain` and its key, PEM: self-signed (a fresh P-256 key),
    its only SAN the name (an IP address's as such, RFC 8738), and the critical acmeIdentifier
    extension: an ASN.1 OCTET STRING of the key authorization's SHA-256."""
    key = ec.generate_private_key(ec.SECP256R1())
    digest = hashlib.sha256(key_authorization.encode()).digest()
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName([_san(domain)]), critical=False)
        .add_extension(
            x509.UnrecognizedExtension(ACME_IDENTIFIER, b"\x04\x20" + digest), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return (certificate.public_bytes(serialization.Encoding.PEM) + key_pem).decode()


def _san(domain: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(domain))
    except ValueError:
        return x509.DNSName(domain)


def server_name(domain: str) -> str:
    """The SNI the CA sends for `domain`: an IP address's reverse name (RFC 8738 §6)."""
    try:
        return ipaddress.ip_address(domain).reverse_pointer
    except ValueError:
        return domain


class TlsAlpn01Solver:
    """`seams.Solver` for TLS-ALPN-01: the challenge certificate goes to the store the responder
    serves from. No self-check: the sidecar does not reach the front's port 443 from outside
    (so a certificate counts as visible once stored, like HTTP-01's without
    CERTBOTLESS_SELF_CHECK)."""

    challenge_type = ChallengeType.TLS_ALPN01

    def __init__(self, certificates: AlpnCertificates, progress: Progress = log.info) -> None:
        self.certificates = certificates
        self.progress = progress

    def present(self, challenge: Challenge) -> None:
        if challenge.challenge_type is not ChallengeType.TLS_ALPN01:
            raise BadRequest(
                f"{challenge.domain}: the TLS-ALPN-01 solver got a {challenge.challenge_type}"
            )
        if challenge.domain.startswith("*."):
            raise BadRequest(
                f"{challenge.domain}: TLS-ALPN-01 cannot prove a wildcard (RFC 8737 §3); "
                "use certbotless.challenge=dns-01 or mixed"
            )
        pem = challenge_certificate(challenge.domain, challenge.key_authorization)
        self.certificates.put(server_name(challenge.domain), pem)

    def wait_until_visible(
        self, challenge: Challenge, deadline: float, stop: threading.Event
    ) -> None:
        return

    def clean_up(self, challenge: Challenge) -> None:
        self.certificates.remove(server_name(challenge.domain))
