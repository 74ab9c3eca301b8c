"""The ACME issuer against a real Pebble, answering HTTP-01 from the real responder."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)

from certbotless.acme.challenges import ChallengeResponder, TokenStore
from certbotless.acme.keys import load_account_key
from certbotless.acme.orders import AcmeIssuer, IssuanceError
from certbotless.model import CertSpec, KeyType
from rig.pebble import PebbleServer

pytestmark = pytest.mark.rig


@pytest.fixture(scope="module")
def issuer(
    pebble_for_acme: PebbleServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AcmeIssuer]:
    tokens = TokenStore(tmp_path_factory.mktemp("challenges"))
    responder = ChallengeResponder(tokens, "127.0.0.1", pebble_for_acme.http_port)
    responder.start()
    yield AcmeIssuer(
        pebble_for_acme.directory_url,
        load_account_key(None),
        tokens,
        email="ops@example.test",
        ca_bundle=Path(pebble_for_acme.ca_bundle),
    )
    responder.stop()


@pytest.mark.parametrize(
    ("key_type", "key_class"),
    [(KeyType.EC256, ec.EllipticCurvePrivateKey), (KeyType.RSA2048, rsa.RSAPrivateKey)],
)
def test_issues_a_certificate_for_all_names(
    issuer: AcmeIssuer, key_type: KeyType, key_class: type
) -> None:
    spec = CertSpec("a.example.test", ("a.example.test", "www.a.example.test"), key_type)
    issued = issuer.issue(spec)
    leaf = x509.load_pem_x509_certificate(issued.fullchain_pem)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(names.get_values_for_type(x509.DNSName)) == sorted(spec.domains)
    key = load_pem_private_key(issued.key_pem, password=None)
    assert isinstance(key, key_class)
    spki = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert key.public_key().public_bytes(*spki) == leaf.public_key().public_bytes(*spki)
    assert issued.fullchain_pem.count(b"BEGIN CERTIFICATE") >= 2
    assert not any(issuer.tokens.directory.iterdir()), "tokens must be cleaned up"


def test_unreachable_challenge_fails_with_the_cas_words(
    pebble_for_acme: PebbleServer, tmp_path: Path
) -> None:
    # Nothing answers HTTP-01 for this issuer's tokens: its store is not the responder's.
    lonely = AcmeIssuer(
        pebble_for_acme.directory_url,
        load_account_key(None),
        TokenStore(tmp_path),
        ca_bundle=Path(pebble_for_acme.ca_bundle),
    )
    with pytest.raises(IssuanceError, match="validation failed") as failure:
        lonely.issue(CertSpec("nobody.example.test", ("nobody.example.test",)))
    assert "urn:ietf:params:acme:error" in str(failure.value)
