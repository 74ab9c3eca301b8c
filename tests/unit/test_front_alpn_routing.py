"""The front's TLS-ALPN-01 routing (haproxy/haproxy.cfg), run by a real HAProxy on loopback: a
ClientHello offering ALPN `acme-tls/1` reaches the sidecar's responder, every other one nginx
(a real nginx, behind the PROXY protocol as on the swarm)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from certbotless.acme.tls_alpn01 import ACME_TLS_1, TlsAlpn01Solver
from certbotless.model import Challenge, ChallengeType
from tests.support.edge_nginx import HOST, answer_tls
from tests.support.front import Front, front_on_loopback, handshake, has_acme_identifier

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None, reason="needs haproxy")


@pytest.fixture
def front(tmp_path: Path) -> Iterator[Front]:
    with front_on_loopback(tmp_path) as running:
        yield running


def test_acme_tls_1_goes_to_the_responder_and_everything_else_to_nginx(front: Front) -> None:
    TlsAlpn01Solver(front.tokens.alpn).present(
        Challenge(HOST, "t" * 43, "t" * 43 + ".thumbprint", ChallengeType.TLS_ALPN01)
    )
    agreed, certificate = handshake(front.https_port, [ACME_TLS_1])
    assert agreed == ACME_TLS_1 and has_acme_identifier(certificate)
    for alpn in (["h2", "http/1.1"], ["http/1.1"], []):
        agreed, certificate = handshake(front.https_port, alpn)
        assert not has_acme_identifier(certificate), f"ALPN {alpn} reached the responder"
        assert agreed != ACME_TLS_1
    status, _, _ = answer_tls(front.https_port)  # a whole request, to nginx through PROXY v2
    assert status == 200
