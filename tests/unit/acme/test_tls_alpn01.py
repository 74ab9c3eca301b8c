"""TLS-ALPN-01 (RFC 8737): the challenge certificate, the solver, and the responder on a real
socket: the pending names' certificates over `acme-tls/1`, nothing else, within its bounds."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from acme import messages
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from certbotless.acme.alpn_responder import AlpnResponder, AlpnResponderLimits
from certbotless.acme.challenges import TokenStore
from certbotless.acme.errors import BadRequest
from certbotless.acme.solvers import ChallengeSolvers
from certbotless.acme.tls_alpn01 import (
    ACME_IDENTIFIER,
    ACME_TLS_1,
    TLSALPN01,
    TlsAlpn01Solver,
    challenge_certificate,
)
from certbotless.labels.settle import discover
from certbotless.model import Challenge, ChallengeMode, ChallengeType, ServiceInfo
from tests.support.fakes import FakeSolver

NAME = "shop.example.test"
KEY_AUTHORIZATION = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.thumbprint"
CHALLENGE = Challenge(NAME, "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA", KEY_AUTHORIZATION,
                      ChallengeType.TLS_ALPN01)  # fmt: skip


def certificate_of(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def acme_identifier(certificate: x509.Certificate) -> x509.Extension[x509.UnrecognizedExtension]:
    extension = certificate.extensions.get_extension_for_oid(ACME_IDENTIFIER)
    assert isinstance(extension.value, x509.UnrecognizedExtension)
    return extension  # type: ignore[return-value]  # the value's type, checked above


def test_the_challenge_certificate_is_rfc_8737s() -> None:
    certificate = certificate_of(challenge_certificate(NAME, KEY_AUTHORIZATION))
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.value.get_values_for_type(x509.DNSName) == [NAME]
    assert len(list(san.value)) == 1
    identifier = acme_identifier(certificate)
    assert identifier.critical
    digest = hashlib.sha256(KEY_AUTHORIZATION.encode()).digest()
    assert identifier.value.value == b"\x04\x20" + digest  # a DER OCTET STRING of the digest
    assert certificate.issuer == certificate.subject
    assert isinstance(certificate.public_key(), ec.EllipticCurvePublicKey)
    certificate.verify_directly_issued_by(certificate)  # self-signed


def test_an_ip_address_is_named_as_one() -> None:
    certificate = certificate_of(challenge_certificate("192.0.2.7", KEY_AUTHORIZATION))
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("192.0.2.7")]


def test_the_ca_s_tls_alpn_01_challenge_is_read() -> None:
    body = messages.ChallengeBody.from_json({
        "type": "tls-alpn-01", "url": "https://ca.test/chall/1", "status": "pending",
        "token": "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA",
    })  # fmt: skip
    assert isinstance(body.chall, TLSALPN01)
    assert json.loads(json.dumps(body.chall.response_cls(key_authorization="a.b").to_json())) == {}


def test_a_certificate_asks_for_it_by_label() -> None:
    service = ServiceInfo("shop", {"certbotless.domains": NAME, "certbotless.port": "80",
                                   "certbotless.challenge": "tls-alpn-01"})  # fmt: skip
    (spec,) = discover([service]).specs
    assert spec.challenge is ChallengeMode.TLS_ALPN01
    assert spec.challenge_for(False) is ChallengeType.TLS_ALPN01


@pytest.mark.parametrize(
    ("labels", "refused"),
    [
        ({"certbotless.domains": "*.example.test"}, "only DNS-01 proves wildcards"),
        ({"certbotless.domains": NAME, "certbotless.dns-provider": "rfc2136"}, "needs"),
    ],
)
def test_what_tls_alpn_01_cannot_do_is_refused(labels: dict[str, str], refused: str) -> None:
    service = ServiceInfo("shop", {"certbotless.port": "80",
                                   "certbotless.challenge": "tls-alpn-01", **labels})  # fmt: skip
    discovery = discover([service])
    assert not discovery.specs
    assert refused in discovery.problems[0].message


def test_the_solver_stores_the_certificate_until_the_last_user_is_done(tmp_path: Path) -> None:
    store = TokenStore(tmp_path).alpn
    solver = TlsAlpn01Solver(store)
    solver.present(CHALLENGE)
    solver.present(CHALLENGE)  # another order for the same name
    path = store.file_for(NAME.upper())
    assert path is not None and path.stat().st_mode & 0o077 == 0
    solver.clean_up(CHALLENGE)
    assert store.file_for(NAME) is not None
    solver.clean_up(CHALLENGE)
    assert store.file_for(NAME) is None


def test_the_solvers_hand_it_tls_alpn_01_or_say_it_is_off(tmp_path: Path) -> None:
    store = TokenStore(tmp_path).alpn
    ChallengeSolvers(FakeSolver(), None, TlsAlpn01Solver(store)).present(CHALLENGE)
    assert store.file_for(NAME) is not None
    with pytest.raises(BadRequest, match="CERTBOTLESS_TLS_ALPN_LISTEN"):
        ChallengeSolvers(FakeSolver()).present(CHALLENGE)


def test_a_wildcard_is_refused_by_the_solver(tmp_path: Path) -> None:
    with pytest.raises(BadRequest, match="wildcard"):
        TlsAlpn01Solver(TokenStore(tmp_path).alpn).present(
            Challenge("*.example.test", "t" * 43, "k", ChallengeType.TLS_ALPN01)
        )


@pytest.fixture
def responder(tmp_path: Path) -> Iterator[tuple[TokenStore, AlpnResponder]]:
    tokens = TokenStore(tmp_path / "challenges")
    limits = AlpnResponderLimits(handshake_seconds=1.0, max_waiting_per_client=8)
    server = AlpnResponder(tokens.alpn, "127.0.0.1", 0, limits)
    server.start()
    yield tokens, server
    server.stop()


def hello(
    port: int, server_name: str | None, alpn: tuple[str, ...] = (ACME_TLS_1,)
) -> tuple[str | None, x509.Certificate]:
    """The protocol agreed and the certificate shown, as the CA's validation sees them."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols(list(alpn))
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    with context.wrap_socket(raw, server_hostname=server_name) as tls:
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return tls.selected_alpn_protocol(), x509.load_der_x509_certificate(der)


def test_a_pending_name_is_answered_with_its_certificate(
    responder: tuple[TokenStore, AlpnResponder],
) -> None:
    tokens, server = responder
    TlsAlpn01Solver(tokens.alpn).present(CHALLENGE)
    agreed, certificate = hello(server.port, NAME)
    assert agreed == ACME_TLS_1
    digest = acme_identifier(certificate).value.value
    assert digest[2:] == hashlib.sha256(KEY_AUTHORIZATION.encode()).digest()


@pytest.mark.parametrize("server_name", [None, "other.example.test", NAME])
def test_anything_not_pending_is_refused_without_a_certificate(
    responder: tuple[TokenStore, AlpnResponder], server_name: str | None
) -> None:
    tokens, server = responder
    solver = TlsAlpn01Solver(tokens.alpn)
    solver.present(Challenge("pending.example.test", "t" * 43, "k", ChallengeType.TLS_ALPN01))
    if server_name == NAME:  # withdrawn once the CA has decided
        solver.present(CHALLENGE)
        solver.clean_up(CHALLENGE)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        hello(server.port, server_name)


def test_a_client_that_does_not_offer_acme_tls_1_is_closed_at_once(
    responder: tuple[TokenStore, AlpnResponder],
) -> None:
    tokens, server = responder
    TlsAlpn01Solver(tokens.alpn).present(CHALLENGE)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.set_alpn_protocols(["h2", "http/1.1"])
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    with context.wrap_socket(raw, server_hostname=NAME) as tls:
        assert tls.selected_alpn_protocol() is None
        tls.sendall(b"GET / HTTP/1.1\r\n\r\n")
        try:
            answer = tls.recv(1)
        except (ssl.SSLError, ConnectionError):  # closed without a close_notify
            answer = b""
        assert answer == b""


def test_a_silent_connection_is_closed_after_the_handshake_time(
    responder: tuple[TokenStore, AlpnResponder],
) -> None:
    _, server = responder
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as silent:
        started = time.monotonic()
        assert silent.recv(1) == b""
        assert 0.9 <= time.monotonic() - started < 3


def test_idle_connections_beyond_a_client_s_share_do_not_keep_the_ca_out(
    responder: tuple[TokenStore, AlpnResponder],
) -> None:
    tokens, server = responder
    TlsAlpn01Solver(tokens.alpn).present(CHALLENGE)
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(40)]
    try:
        time.sleep(0.8)  # their grace, and a sweep
        closed = threading.Event()
        for connection in idle:
            connection.settimeout(0.05)
            try:
                if connection.recv(1) == b"":
                    closed.set()
            except TimeoutError:
                pass
        assert closed.is_set(), "the oldest beyond the client's share were closed"
        assert len(server.waiting) <= 8 + 1
        assert hello(server.port, NAME)[0] == ACME_TLS_1
    finally:
        for connection in idle:
            connection.close()
