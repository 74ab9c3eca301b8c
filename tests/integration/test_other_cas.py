"""The ACME engine against a CA that is not Pebble: Caddy's `acme_server` (Smallstep's CA), which
leaves a failed challenge's authorization pending, answers HTTP 500 to an account it lost, and
refuses to revoke another account's certificate."""

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from certbotless.acme.challenges import TokenStore
from certbotless.acme.errors import RevocationRefused, ValidationFailed
from certbotless.acme.http01 import EdgeHttp01Solver
from certbotless.acme.issuer import AcmeIssuer, IssuerOptions
from certbotless.acme.keys import load_account_key
from certbotless.model import CertSpec, Challenge, KeyType
from rig.caddy import CaddyAcmeServer
from tests.conftest import ACME_TEST_HTTP_PORT
from tests.support.ports import unused_port

pytestmark = [
    pytest.mark.rig,
    pytest.mark.skipif(shutil.which("caddy") is None, reason="Debian's caddy is not installed"),
]

NAMES = ("a.caddy.test", "b.caddy.test", "c.caddy.test", "d.caddy.test")
ORDER_TIMEOUT = 60.0

MakeIssuer = Callable[..., AcmeIssuer]


def started_caddy(work_dir: Path) -> CaddyAcmeServer:
    caddy = CaddyAcmeServer(
        "caddy-acme-tests", work_dir, unused_port(), ACME_TEST_HTTP_PORT, names=NAMES
    )
    caddy.start()
    return caddy


@pytest.fixture(scope="module")
def caddy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CaddyAcmeServer]:
    server = started_caddy(tmp_path_factory.mktemp("caddy"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def make_issuer(acme_tokens: TokenStore) -> MakeIssuer:
    def make(caddy: CaddyAcmeServer, **options: Any) -> AcmeIssuer:
        options.setdefault("solver", EdgeHttp01Solver(acme_tokens))
        return AcmeIssuer(
            caddy.directory_url,
            load_account_key(None),
            ca_bundle=caddy.ca_bundle,
            options=IssuerOptions(order_timeout=ORDER_TIMEOUT),
            **options,
        )

    return make


class ServedNowhere(EdgeHttp01Solver):
    """Presents nothing: the CA's validator gets a 404."""

    def present(self, challenge: Challenge) -> None:
        pass

    def wait_until_visible(self, *args: Any) -> None:
        pass


def spec_for(name: str) -> CertSpec:
    return CertSpec(name, (name,), KeyType.EC256)


def test_caddy_issues_through_the_engine(caddy: CaddyAcmeServer, make_issuer: MakeIssuer) -> None:
    issued = make_issuer(caddy).issue(spec_for("a.caddy.test"))
    assert issued.fullchain_pem.count(b"BEGIN CERTIFICATE") >= 2


def test_a_failed_challenge_the_ca_leaves_pending_is_reported_in_its_words_at_once(
    caddy: CaddyAcmeServer,
    make_issuer: MakeIssuer,
    acme_tokens: TokenStore,
    figure: Callable[[str], None],
) -> None:
    issuer = make_issuer(caddy)
    started = time.monotonic()
    with pytest.raises(ValidationFailed) as failed:
        issuer.issue(spec_for("b.caddy.test"), solver=ServedNowhere(acme_tokens))
    seconds = time.monotonic() - started
    figure(f"Caddy's CA: a 404 challenge reported in the CA's words after {seconds:.2f} s "
           f"(order timeout {ORDER_TIMEOUT:.0f} s)")  # fmt: skip
    assert seconds < 10
    message = str(failed.value)
    assert "The server could not connect to validation target" in message
    assert "error:connection" in message and "next attempt after" in message
    assert issuer.backoff.blocked_until("b.caddy.test") is not None, "counted as a failure"


def test_an_account_the_ca_lost_is_registered_again_with_the_same_key(
    tmp_path: Path, make_issuer: MakeIssuer, figure: Callable[[str], None]
) -> None:
    caddy = started_caddy(tmp_path)
    try:
        issuer = make_issuer(caddy)
        issuer.issue(spec_for("c.caddy.test"))
        before = str(issuer.ensure_account().uri)
        caddy.restart(wipe=True)  # a fresh data directory: every account forgotten
        started = time.monotonic()
        issued = issuer.issue(spec_for("c.caddy.test"))
        seconds = time.monotonic() - started
    finally:
        caddy.stop()
    figure(f"Caddy's CA lost the account: registered again and issued in {seconds:.2f} s")
    assert issued.fullchain_pem.count(b"BEGIN CERTIFICATE") >= 2
    after = str(issuer.ensure_account().uri)
    assert after != before, "a new registration, with the same key"


def test_revoking_another_accounts_certificate_is_worded_as_a_refused_revocation(
    caddy: CaddyAcmeServer, make_issuer: MakeIssuer
) -> None:
    issued = make_issuer(caddy).issue(spec_for("d.caddy.test"))
    with pytest.raises(RevocationRefused) as refused:
        make_issuer(caddy).revoke(issued.fullchain_pem)
    message = str(refused.value)
    assert "refused the revocation" in message, message
    assert "challenge" not in message, message
