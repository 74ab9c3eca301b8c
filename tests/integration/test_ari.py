"""ARI (RFC 9773), `replaces` and profiles; and a CA that misbehaves (5xx, answers lost after the
CA acted, bare 429s, answers the client cannot use). All against tests/support/ari_ca.py in front
of Pebble."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from prometheus_client import REGISTRY

from certbotless.acme.ari import ari_cert_id, lifetime_renewal_time
from certbotless.acme.challenges import TokenStore
from certbotless.acme.errors import (
    BackingOff,
    BadRequest,
    CaProblem,
    RateLimited,
    UnexpectedAnswer,
    ValidationFailed,
)
from certbotless.acme.http01 import EdgeHttp01Solver
from certbotless.acme.issuer import AcmeIssuer, IssuerOptions
from certbotless.acme.keys import load_account_key
from certbotless.daemon.metrics import AcmeRequestMetrics
from certbotless.model import CertSpec, IssuedCert, KeyType, StoredCert
from certbotless.passes.planning import plan_certificates
from rig.pebble import PebbleServer
from tests.support.ari_ca import (
    PROFILES,
    RATE_LIMIT_RETRY_AFTER,
    AriCa,
    Fault,
    edited,
    failure,
    problem,
    without_header,
)

pytestmark = pytest.mark.rig

SPEC = CertSpec("ari.example.test", ("ari.example.test",))


@pytest.fixture(scope="module")
def ari_ca(pebble_for_acme: PebbleServer) -> Iterator[AriCa]:
    ca = AriCa("127.0.0.1", pebble_for_acme.port, Path(pebble_for_acme.ca_bundle).parent, 14199)
    ca.start()
    yield ca
    ca.stop()


def issuer_at(ari_ca: AriCa, pebble: PebbleServer, tokens: TokenStore) -> AcmeIssuer:
    return AcmeIssuer(
        ari_ca.directory_url,
        load_account_key(None),
        EdgeHttp01Solver(tokens),
        ca_bundle=Path(pebble.ca_bundle),
        options=IssuerOptions(observer=AcmeRequestMetrics()),  # the daemon's, as the app passes
    )


@pytest.fixture
def issuer(
    ari_ca: AriCa, pebble_for_acme: PebbleServer, acme_tokens: TokenStore
) -> Iterator[AcmeIssuer]:
    ari_ca.state.faults.clear()
    yield issuer_at(ari_ca, pebble_for_acme, acme_tokens)
    assert not ari_ca.state.faults, "every fault a test sets up must have been met"


def stored(issued: IssuedCert) -> StoredCert:
    """What the store would list for `issued` (the store's own tests cover the swarm part)."""
    leaf = x509.load_pem_x509_certificate(issued.fullchain_pem)
    return StoredCert(
        name=issued.spec.name,
        domains=issued.spec.domains,
        serial=format(leaf.serial_number, "x"),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        key_type=KeyType.EC256,
        config_name="cfg",
        config_id="cfg",
        secret_name="key",
        secret_id="key",
        ari_id=ari_cert_id(leaf),
    )


def test_renewal_time_is_a_moment_in_the_cas_window_until_retry_after(
    issuer: AcmeIssuer, ari_ca: AriCa
) -> None:
    cert = stored(issuer.issue(SPEC))
    now = datetime.now(UTC)
    window = (now + timedelta(hours=1), now + timedelta(hours=2))
    ari_ca.state.windows[cert.ari_id] = window
    ari_ca.state.retry_after_seconds = 120
    renewal = issuer.renewal_times([cert])[SPEC.name]
    assert renewal.source == "ari"
    assert window[0] <= renewal.renew_at <= window[1]
    assert renewal.explanation_url == "https://ca.example.test/why"
    assert timedelta(seconds=110) < renewal.check_again_at - now < timedelta(seconds=130)
    assert issuer.renewal_times([cert])[SPEC.name] == renewal
    assert ari_ca.state.renewal_info_requests.count(cert.ari_id) == 1, "cached until Retry-After"
    due = plan_certificates([SPEC], {SPEC.name: cert}, now, renew_at={SPEC.name: window[0]})
    assert due.to_issue == ()
    later = plan_certificates(
        [SPEC], {SPEC.name: cert}, window[1], renew_at={SPEC.name: renewal.renew_at}
    )
    assert later.to_issue == (SPEC,)


def test_a_window_moved_earlier_by_the_ca_is_followed_once_retry_after_passed(
    issuer: AcmeIssuer, ari_ca: AriCa
) -> None:
    cert = stored(issuer.issue(SPEC))
    ari_ca.state.retry_after_seconds = 0
    first = issuer.renewal_times([cert])[SPEC.name]
    # The CA revokes early (e.g. an incident): the window moves to now.
    now = datetime.now(UTC)
    ari_ca.state.windows[cert.ari_id] = (now - timedelta(minutes=1), now)
    second = issuer.renewal_times([cert])[SPEC.name]
    assert second.renew_at <= now < first.renew_at
    assert second.renew_at < lifetime_renewal_time(cert.not_before, cert.not_after)


def test_without_ari_the_renewal_is_at_a_third_of_the_lifetime_left(
    pebble_for_acme: PebbleServer, acme_tokens: TokenStore
) -> None:
    plain = AcmeIssuer(
        pebble_for_acme.directory_url,
        load_account_key(None),
        EdgeHttp01Solver(acme_tokens),
        ca_bundle=Path(pebble_for_acme.ca_bundle),
    )
    cert = stored(plain.issue(SPEC))
    renewal = plain.renewal_times([cert])[SPEC.name]
    assert renewal.source == "lifetime"
    assert renewal.renew_at == lifetime_renewal_time(cert.not_before, cert.not_after)


def test_renewal_orders_name_what_they_replace_and_survive_already_replaced(
    issuer: AcmeIssuer, ari_ca: AriCa
) -> None:
    old = stored(issuer.issue(SPEC))
    issuer.issue(SPEC, replaces=old.ari_id)
    assert ari_ca.state.new_orders[-1]["replaces"] == old.ari_id
    # A second renewal of the same certificate: the CA answers alreadyReplaced, and the
    # issuer orders again without `replaces` rather than failing. (Orders are listed as the CA
    # received them, badNonce retries included.)
    before = len(ari_ca.state.new_orders)
    renewed = issuer.issue(SPEC, replaces=old.ari_id)
    assert renewed.fullchain_pem
    orders = ari_ca.state.new_orders[before:]
    assert orders[0]["replaces"] == old.ari_id
    assert "replaces" not in orders[-1]


def test_profiles_are_checked_against_the_directory(issuer: AcmeIssuer, ari_ca: AriCa) -> None:
    assert issuer.offered_profiles() == PROFILES
    orders_before = len(ari_ca.state.new_orders)
    offers = r"no profile 'tlsserver'; it offers: classic .*shortlived"
    with pytest.raises(BadRequest, match=offers):
        issuer.issue(CertSpec("p.example.test", ("p.example.test",), profile="tlsserver"))
    assert len(ari_ca.state.new_orders) == orders_before, "refused before asking the CA"
    issuer.issue(CertSpec("p.example.test", ("p.example.test",), profile="shortlived"))
    assert ari_ca.state.new_orders[-1]["profile"] == "shortlived"


def test_rate_limited_names_are_left_alone_until_retry_after(
    issuer: AcmeIssuer, ari_ca: AriCa
) -> None:
    ari_ca.state.rate_limited.add("busy.example.test")
    spec = CertSpec("busy.example.test", ("busy.example.test", "www.busy.example.test"))
    with pytest.raises(RateLimited, match=r"rate limit.*next attempt after") as limited:
        issuer.issue(spec)
    # The CA's Retry-After, not the default wait of an hour.
    expected = datetime.now(UTC) + timedelta(seconds=RATE_LIMIT_RETRY_AFTER)
    assert abs((limited.value.retry_at - expected).total_seconds()) < 30
    for name in spec.domains:
        blocked = issuer.backoff.blocked_until(name)
        assert blocked is not None and abs((blocked - expected).total_seconds()) < 30
    orders = len(ari_ca.state.new_orders)
    with pytest.raises(BackingOff, match=r"not asking the CA again.*rate limit"):
        issuer.issue(spec)
    assert len(ari_ca.state.new_orders) == orders, "no request for a rate-limited name"


def test_a_429_without_a_problem_document_is_a_rate_limit_too(
    issuer: AcmeIssuer, ari_ca: AriCa
) -> None:
    ari_ca.state.faults.append(failure("/order-plz", 429, retry_after=77))
    spec = CertSpec("bare429.example.test", ("bare429.example.test",))
    with pytest.raises(RateLimited, match="HTTP 429") as limited:
        issuer.issue(spec)
    wait = limited.value.retry_at - datetime.now(UTC)
    assert timedelta(seconds=60) < wait <= timedelta(seconds=77)
    assert issuer.backoff.blocked_until("bare429.example.test") == limited.value.retry_at


def acme_requests(outcome: str) -> float:
    return REGISTRY.get_sample_value("certbotless_acme_requests_total", {"outcome": outcome}) or 0


def test_an_order_goes_through_a_ca_that_answers_5xx_twice(
    issuer: AcmeIssuer, ari_ca: AriCa
) -> None:
    ari_ca.state.faults += [failure("/order-plz", 503), failure("/order-plz", 502)]
    transient_before = acme_requests("transient")
    issued = issuer.issue(CertSpec("flaky.example.test", ("flaky.example.test",)))
    assert issued.fullchain_pem
    assert acme_requests("transient") - transient_before == 2


def test_a_finalize_whose_answer_was_lost_is_followed_not_failed(
    issuer: AcmeIssuer, ari_ca: AriCa, acme_tokens: TokenStore
) -> None:
    # Pebble finalizes, the answer is lost, and the retried finalize gets orderNotReady.
    ari_ca.state.faults.append(failure("/finalize-order/", 503, reaches_pebble=True))
    issued = issuer.issue(CertSpec("lost-final.example.test", ("lost-final.example.test",)))
    assert issued.fullchain_pem.count(b"BEGIN CERTIFICATE") >= 2


def test_a_challenge_answer_whose_reply_was_lost_is_followed_not_failed(
    issuer: AcmeIssuer, ari_ca: AriCa, acme_tokens: TokenStore
) -> None:
    # The CA took the first answer; the retry finds the challenge no longer pending.
    ari_ca.state.faults += [
        failure("/chalZ/", 503, reaches_pebble=True),
        problem("/chalZ/", "malformed", "Cannot update challenge with status processing"),
    ]
    issued = issuer.issue(CertSpec("lost-chal.example.test", ("lost-chal.example.test",)))
    assert issued.fullchain_pem
    assert not any(acme_tokens.directory.iterdir())


def test_a_refused_challenge_answer_still_fails(
    issuer: AcmeIssuer, ari_ca: AriCa, acme_tokens: TokenStore
) -> None:
    # The CA never took the answer, so the challenge is still pending: the refusal stands.
    ari_ca.state.faults.append(problem("/chalZ/", "unauthorized", "not your challenge", 403))
    with pytest.raises(CaProblem, match="not your challenge"):
        issuer.issue(CertSpec("refused-chal.example.test", ("refused-chal.example.test",)))
    assert not any(acme_tokens.directory.iterdir())


def oversized_tokens(authorization: dict[str, Any]) -> None:
    for challenge in authorization["challenges"]:
        challenge["token"] = "A" * 200  # decodes fine, but no CA token is that long


def unknown_status(authorization: dict[str, Any]) -> None:
    authorization["status"] = "perhaps"


@pytest.mark.parametrize(
    ("name", "fault", "message"),
    [
        ("no-location", without_header("/order-plz", "Location"), "no Location header"),
        ("long-token", edited("/authZ/", oversized_tokens), "unusable HTTP-01 token"),
        ("odd-status", edited("/authZ/", unknown_status), "DeserializationError"),
    ],
)
def test_answers_the_client_cannot_use_are_typed_errors(
    issuer: AcmeIssuer,
    ari_ca: AriCa,
    acme_tokens: TokenStore,
    name: str,
    fault: Fault,
    message: str,
) -> None:
    domain = f"{name}.unusable.example.test"
    ari_ca.state.faults.append(fault)
    with pytest.raises(UnexpectedAnswer, match=message) as caught:
        issuer.issue(CertSpec(domain, (domain,)))
    assert str(caught.value).startswith(f"{domain}: ")
    assert not any(acme_tokens.directory.iterdir())


def still_pending(authorization: dict[str, Any]) -> None:
    authorization["status"] = "pending"
    for challenge in authorization["challenges"]:
        challenge["status"] = "pending"
        challenge.pop("error", None)
        challenge.pop("validated", None)


@pytest.mark.parametrize(
    ("name", "fault", "message"),
    [
        ("pending", edited("/authZ/", still_pending), "still pending, not tried"),
        (
            "unreadable",
            problem("/authZ/", "unauthorized", "authorization hidden", 403),
            "could not be read.*authorization hidden",
        ),
    ],
)
def test_only_names_whose_authorization_is_invalid_back_off(
    ari_ca: AriCa,
    pebble_for_acme: PebbleServer,
    tmp_path: Path,
    name: str,
    fault: Fault,
    message: str,
) -> None:
    # Tokens where no responder looks: the CA's validation fails. The fault then changes what
    # the issuer reads back about the authorization, every time it reads it (it reads it while
    # waiting, to stop at a challenge's error, and again to say why the order failed).
    lonely = issuer_at(ari_ca, pebble_for_acme, TokenStore(tmp_path))
    domain = f"{name}.backoff.example.test"
    reads = 50

    def fault_after_validation(step: str) -> None:
        if "waiting for the CA to validate" in step:
            ari_ca.state.faults.extend([fault] * reads)

    with pytest.raises(ValidationFailed, match=message):
        lonely.issue(CertSpec(domain, (domain,)), progress=fault_after_validation)
    assert 0 < reads - len(ari_ca.state.faults) < reads  # read, and not more often than that
    ari_ca.state.faults.clear()
    assert lonely.backoff.blocked_until(domain) is None
