"""ARI (RFC 9773), `replaces` and profiles, against tests/support/ari_ca.py in front of Pebble."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from certbotless.acme.ari import ari_cert_id, lifetime_renewal_time
from certbotless.acme.challenges import TokenStore
from certbotless.acme.errors import BackingOff, BadRequest, RateLimited
from certbotless.acme.keys import load_account_key
from certbotless.acme.orders import AcmeIssuer
from certbotless.model import CertSpec, IssuedCert, KeyType, StoredCert
from certbotless.reconcile import plan_certificates
from rig.pebble import PebbleServer
from tests.support.ari_ca import PROFILES, AriCa

pytestmark = pytest.mark.rig

SPEC = CertSpec("ari.example.test", ("ari.example.test",))


@pytest.fixture(scope="module")
def ari_ca(pebble_for_acme: PebbleServer) -> Iterator[AriCa]:
    ca = AriCa("127.0.0.1", pebble_for_acme.port, Path(pebble_for_acme.ca_bundle).parent, 14199)
    ca.start()
    yield ca
    ca.stop()


@pytest.fixture
def issuer(ari_ca: AriCa, pebble_for_acme: PebbleServer, acme_tokens: TokenStore) -> AcmeIssuer:
    return AcmeIssuer(
        ari_ca.directory_url,
        load_account_key(None),
        acme_tokens,
        ca_bundle=Path(pebble_for_acme.ca_bundle),
    )


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
        acme_tokens,
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
    hour = datetime.now(UTC) + timedelta(hours=1)
    assert abs((limited.value.retry_at - hour).total_seconds()) < 60
    orders = len(ari_ca.state.new_orders)
    with pytest.raises(BackingOff, match=r"not asking the CA again.*rate limit"):
        issuer.issue(spec)
    assert len(ari_ca.state.new_orders) == orders, "no request for a rate-limited name"
