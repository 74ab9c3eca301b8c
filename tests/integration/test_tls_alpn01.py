"""TLS-ALPN-01 (RFC 8737) end to end on loopback: a Pebble of the test's own validates on the
port of a real front (haproxy/haproxy.cfg in HAProxy), which passes the CA's `acme-tls/1`
ClientHellos to the sidecar's responder, with nginx behind it for everything else."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509

from certbotless.acme.challenges import TokenStore
from certbotless.acme.errors import ValidationFailed
from certbotless.acme.http01 import EdgeHttp01Solver
from certbotless.acme.issuer import AcmeIssuer
from certbotless.acme.keys import load_account_key
from certbotless.acme.solvers import ChallengeSolvers
from certbotless.acme.tls_alpn01 import TlsAlpn01Solver
from certbotless.model import CertSpec, ChallengeMode, IssuedCert
from rig.pebble import PebbleServer
from tests.conftest import loopback_pebble
from tests.support.edge_nginx import HOST, answer_tls
from tests.support.front import Front, front_on_loopback
from tests.support.ports import unused_port

pytestmark = pytest.mark.rig


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    with front_on_loopback(tmp_path_factory.mktemp("front"), unused_port()) as running:
        yield running


@pytest.fixture(scope="module")
def pebble(rig_env: dict[str, str], front: Front) -> Iterator[PebbleServer]:
    """Validating TLS-ALPN-01 on the front's port (every name is 127.0.0.1 to it)."""
    server = loopback_pebble(rig_env, "pebble-tls-alpn-tests", 14160,
                             config={"tlsPort": front.https_port})  # fmt: skip
    server.start()
    yield server
    server.stop()


def issuer(pebble: PebbleServer, tokens: TokenStore) -> AcmeIssuer:
    solvers = ChallengeSolvers(EdgeHttp01Solver(tokens), None, TlsAlpn01Solver(tokens.alpn))
    return AcmeIssuer(pebble.directory_url, load_account_key(None), solvers,
                      ca_bundle=Path(pebble.ca_bundle))  # fmt: skip


def names_in(issued: IssuedCert) -> set[str]:
    leaf = x509.load_pem_x509_certificate(issued.fullchain_pem)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return set(san.value.get_values_for_type(x509.DNSName))


def test_a_certificate_is_issued_through_the_front_by_tls_alpn_01(
    pebble: PebbleServer, front: Front, figure: Callable[[str], None]
) -> None:
    names = (HOST, "www." + HOST)
    spec = CertSpec("alpn", names, challenge=ChallengeMode.TLS_ALPN01)
    started = time.monotonic()
    [(_, issued)] = list(issuer(pebble, front.tokens).issue_many([spec], print))
    seconds = time.monotonic() - started
    assert isinstance(issued, IssuedCert), issued
    assert names_in(issued) == set(names)
    assert not any((front.tokens.directory / "tls-alpn-01").iterdir()), "withdrawn"
    assert answer_tls(front.https_port)[0] == 200, "nginx still serves behind the front"
    figure(f"TLS-ALPN-01, two names, Pebble through the real front (HAProxy) to the responder: "
           f"{seconds:.2f} s from ordering to the certificate")  # fmt: skip


def test_a_certificate_the_front_s_responder_does_not_hold_fails_validation(
    pebble: PebbleServer, tmp_path: Path
) -> None:
    """Presented where the responder behind the front does not look (another container's
    store): the responder refuses the CA's handshake, and the failure says so, by name."""
    elsewhere = TokenStore(tmp_path / "challenges")
    spec = CertSpec("alpn-missing", ("missing." + HOST,), challenge=ChallengeMode.TLS_ALPN01)
    [(_, outcome)] = list(issuer(pebble, elsewhere).issue_many([spec], print))
    assert isinstance(outcome, ValidationFailed), outcome
    assert "missing." + HOST in str(outcome) and "tls-alpn-01" in str(outcome)
