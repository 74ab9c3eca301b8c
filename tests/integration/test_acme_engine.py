"""The ACME engine against real Pebbles, answering HTTP-01 from the real responder."""

import json
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)
from cryptography.x509.oid import NameOID
from josepy.jwk import JWK, JWKEC, JWKRSA

from certbotless.acme import protocol
from certbotless.acme.account import ExternalAccountBinding
from certbotless.acme.challenges import TokenStore
from certbotless.acme.errors import (
    Abandoned,
    AcmeError,
    BackingOff,
    BadRequest,
    CaProblem,
    CaUnreachable,
    OrderTimedOut,
    ValidationFailed,
)
from certbotless.acme.http01 import ChallengeNotServed, EdgeHttp01Solver, EdgeSelfCheck
from certbotless.acme.issuer import AcmeIssuer, IssuerOptions
from certbotless.acme.keys import load_account_key
from certbotless.acme.responder import ChallengeResponder
from certbotless.model import CertSpec, IssuedCert, KeyType, RevocationReason
from certbotless.seams import Issuer
from rig.pebble import PebbleServer
from tests.conftest import ACME_TEST_HTTP_PORT, loopback_pebble
from tests.support.ports import unused_port

pytestmark = pytest.mark.rig

EAB_KID = "kid-1"
EAB_HMAC = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"

MakeIssuer = Callable[..., AcmeIssuer]


@pytest.fixture(scope="module")
def make_issuer(acme_tokens: TokenStore) -> MakeIssuer:
    def make(pebble: PebbleServer, **options: Any) -> AcmeIssuer:
        options.setdefault("solver", EdgeHttp01Solver(acme_tokens))
        options.setdefault("account_key", load_account_key(None))
        return AcmeIssuer(pebble.directory_url, ca_bundle=Path(pebble.ca_bundle), **options)

    return make


@pytest.fixture(scope="module")
def issuer(make_issuer: MakeIssuer, pebble_for_acme: PebbleServer) -> AcmeIssuer:
    return make_issuer(pebble_for_acme, email="ops@example.test")


def started_pebble(rig_env: dict[str, str], name: str, port: int, **options: Any) -> PebbleServer:
    pebble = loopback_pebble(rig_env, name, port, **options)
    pebble.start()
    return pebble


def leaf_of(issued: IssuedCert) -> x509.Certificate:
    return x509.load_pem_x509_certificate(issued.fullchain_pem)


def calls_to(monkeypatch: pytest.MonkeyPatch, owner: object, method: str) -> list[tuple[Any, ...]]:
    """The arguments of every later call of `owner.method`, which still does its work."""
    calls: list[tuple[Any, ...]] = []
    original = getattr(owner, method)

    def recorded(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, method, recorded)
    return calls


class InFlightTokens(TokenStore):
    """Counts tokens published at once: each single-name order has one from publishing until
    clean-up, so the peak is a lower bound of the orders in flight."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self._count_lock = threading.Lock()
        self.published = 0
        self.peak = 0

    def put(self, token: str, key_authorization: str) -> None:
        super().put(token, key_authorization)
        with self._count_lock:
            self.published += 1
            self.peak = max(self.peak, self.published)

    def remove(self, token: str) -> None:
        with self._count_lock:
            self.published -= 1
        super().remove(token)


KEY_CLASSES = {
    KeyType.EC256: (ec.EllipticCurvePrivateKey, 256),
    KeyType.EC384: (ec.EllipticCurvePrivateKey, 384),
    KeyType.RSA2048: (rsa.RSAPrivateKey, 2048),
    KeyType.RSA3072: (rsa.RSAPrivateKey, 3072),
    KeyType.RSA4096: (rsa.RSAPrivateKey, 4096),
}


@pytest.mark.parametrize("key_type", list(KeyType))
def test_issues_a_certificate_for_all_names_with_a_fresh_key(
    issuer: AcmeIssuer, acme_tokens: TokenStore, key_type: KeyType
) -> None:
    spec = CertSpec("a.example.test", ("a.example.test", "www.a.example.test"), key_type)
    issued = issuer.issue(spec)
    again = issuer.issue(spec)
    leaf = leaf_of(issued)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(names.get_values_for_type(x509.DNSName)) == sorted(spec.domains)
    key = load_pem_private_key(issued.key_pem, password=None)
    key_class, size = KEY_CLASSES[key_type]
    assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    assert isinstance(key, key_class) and key.key_size == size
    spki = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert key.public_key().public_bytes(*spki) == leaf.public_key().public_bytes(*spki)
    assert issued.key_pem != again.key_pem, "every certificate gets its own key"
    assert issued.fullchain_pem.count(b"BEGIN CERTIFICATE") >= 2
    assert issued.directory_url == issuer.directory_url
    assert not any(acme_tokens.directory.iterdir()), "tokens must be cleaned up"


def test_ip_addresses_are_ordered_as_ip_identifiers(issuer: AcmeIssuer) -> None:
    """RFC 8738: the CA validates the address itself (Pebble dials 127.0.0.1, where the
    responder answers), and the certificate names it as an IP address."""
    spec = CertSpec("mixed-ip", ("ip.example.test", "127.0.0.1"), profile="shortlived")
    names = (
        leaf_of(issuer.issue(spec))
        .extensions.get_extension_for_class(x509.SubjectAlternativeName)
        .value
    )
    assert names.get_values_for_type(x509.DNSName) == ["ip.example.test"]
    assert [str(a) for a in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


def test_an_ipv6_address_is_validated_at_that_address_and_named_in_rfc_5952_form(
    issuer: AcmeIssuer, acme_tokens: TokenStore
) -> None:
    """Pebble dials [::1] on the HTTP-01 port, where a second responder over the same tokens
    listens; the certificate names ::1 as an IP address."""
    responder = ChallengeResponder(acme_tokens, "::1", ACME_TEST_HTTP_PORT)
    responder.start()
    try:
        spec = CertSpec("ip6", ("ip6.example.test", "::1"), profile="shortlived")
        leaf = leaf_of(issuer.issue(spec))
    finally:
        responder.stop()
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(a) for a in names.get_values_for_type(x509.IPAddress)] == ["::1"]


def test_many_orders_run_concurrently(
    make_issuer: MakeIssuer,
    pebble_for_acme: PebbleServer,
    acme_tokens: TokenStore,
    figure: Callable[[str], None],
) -> None:
    # Same directory as the responder's, so the CA's validations still succeed.
    tokens = InFlightTokens(acme_tokens.directory)
    issuer = make_issuer(
        pebble_for_acme, solver=EdgeHttp01Solver(tokens), options=IssuerOptions(concurrency=10)
    )
    issuer.ensure_account()
    specs = [CertSpec(f"c{i}.example.test", (f"c{i}.example.test",)) for i in range(20)]
    started = time.monotonic()
    outcomes = dict(issuer.issue_many(specs))
    seconds = time.monotonic() - started
    failures = [o for o in outcomes.values() if isinstance(o, AcmeError)]
    assert not failures
    assert sorted(s.name for s in outcomes) == sorted(s.name for s in specs)
    assert 1 < tokens.peak <= issuer.options.concurrency
    figure(
        f"ACME: 20 certificates, 10 at a time, against Pebble: {seconds:.2f} s "
        f"(peak {tokens.peak} orders validating at once)"
    )


def test_closing_issue_many_early_cancels_the_orders_not_started(
    make_issuer: MakeIssuer, pebble_for_acme: PebbleServer, acme_tokens: TokenStore
) -> None:
    # What happens when storing a certificate fails and the reconcile pass gives up.
    issuer = make_issuer(pebble_for_acme, options=IssuerOptions(concurrency=1))
    issuer.ensure_account()
    ordered: list[str] = []

    def record_orders(step: str) -> None:
        if ": ordering " in step:
            ordered.append(step)

    specs = [CertSpec(f"early{i}.example.test", (f"early{i}.example.test",)) for i in range(6)]
    outcomes = issuer.issue_many(specs, progress=record_orders)
    _, first = next(outcomes)
    outcomes.close()
    assert isinstance(first, IssuedCert)
    assert len(ordered) <= 2, "only the order already running when the consumer left"
    assert not any(acme_tokens.directory.iterdir())


def test_a_stopping_issuer_abandons_orders_but_keeps_what_the_ca_issued(
    make_issuer: MakeIssuer, pebble_for_acme: PebbleServer, acme_tokens: TokenStore
) -> None:
    stop = threading.Event()
    issuer = make_issuer(pebble_for_acme, options=IssuerOptions(concurrency=2), stop=stop)
    assert issuer.stopping is stop
    issuer.ensure_account()
    specs = [CertSpec(f"stop{i}.example.test", (f"stop{i}.example.test",)) for i in range(12)]
    outcomes: dict[str, IssuedCert | AcmeError] = {}
    for spec, outcome in issuer.issue_many(specs):
        outcomes[spec.name] = outcome
        stop.set()  # SIGTERM, after the first outcome
    assert sorted(outcomes) == sorted(s.name for s in specs)
    unexpected = {
        name: repr(o) for name, o in outcomes.items() if not isinstance(o, IssuedCert | Abandoned)
    }
    assert unexpected == {}
    abandoned = [o for o in outcomes.values() if isinstance(o, Abandoned)]
    assert len(abandoned) >= len(specs) - 2 * issuer.options.concurrency
    assert str(abandoned[0]).endswith(
        ": abandoned: certbotless is stopping; the next start orders it again"
    )
    assert not any(acme_tokens.directory.iterdir())


@pytest.mark.parametrize(
    "account_key",
    [
        JWKEC(key=ec.generate_private_key(ec.SECP256R1())),
        JWKEC(key=ec.generate_private_key(ec.SECP384R1())),
        JWKEC(key=ec.generate_private_key(ec.SECP521R1())),
        JWKRSA(key=rsa.generate_private_key(public_exponent=65537, key_size=2048)),
    ],
    ids=["P-256", "P-384", "P-521", "RSA-2048"],
)
def test_every_supported_account_key_signs_what_the_ca_accepts(
    make_issuer: MakeIssuer, pebble_for_acme: PebbleServer, account_key: JWK
) -> None:
    issuer = make_issuer(pebble_for_acme, account_key=account_key)
    assert issuer.issue(CertSpec("keys.example.test", ("keys.example.test",))).fullchain_pem


def test_looking_the_account_up_leaves_the_network_of_the_orders_alone(
    make_issuer: MakeIssuer, pebble_for_acme: PebbleServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The lookup signs with the bare key (no account URL); on the shared network, a worker
    # signing meanwhile would send a request the CA refuses.
    issuer = make_issuer(pebble_for_acme)
    account = issuer.ensure_account()
    shared_requests = calls_to(monkeypatch, issuer.net.session, "request")
    assert issuer.existing_account() == account.uri
    assert shared_requests == []
    assert issuer.net.account is account
    assert issuer.issue(CertSpec("lookup.example.test", ("lookup.example.test",))).fullchain_pem


def test_a_ca_certificate_the_bundle_does_not_trust_fails_at_once(
    pebble_for_acme: PebbleServer, acme_tokens: TokenStore, tmp_path: Path
) -> None:
    wrong_bundle = tmp_path / "other-ca.pem"
    wrong_bundle.write_text(pebble_for_acme.root_pem())  # a CA, but not the listener's
    issuer = AcmeIssuer(
        pebble_for_acme.directory_url,
        load_account_key(None),
        EdgeHttp01Solver(acme_tokens),
        ca_bundle=wrong_bundle,
    )
    started = time.monotonic()
    with pytest.raises(CaUnreachable, match=r"TLS verification .* set CERTBOTLESS_CA_BUNDLE"):
        issuer.issue(CertSpec("tls.example.test", ("tls.example.test",)))
    assert time.monotonic() - started < 2, "no retries: they cannot make the certificate trusted"


def test_a_restarted_issuer_finds_its_existing_account(
    make_issuer: MakeIssuer, pebble_for_acme: PebbleServer
) -> None:
    key = load_account_key(None)
    first = make_issuer(pebble_for_acme, account_key=key).ensure_account()
    second = make_issuer(pebble_for_acme, account_key=key).ensure_account()
    other = make_issuer(pebble_for_acme).ensure_account()
    assert first.uri == second.uri
    assert other.uri != first.uri


def test_external_account_binding(rig_env: dict[str, str], make_issuer: MakeIssuer) -> None:
    pebble = started_pebble(
        rig_env,
        "pebble-eab-tests",
        14120,
        config={
            "externalAccountBindingRequired": True,
            "externalAccountMACKeys": {EAB_KID: EAB_HMAC},
        },
    )
    try:
        with pytest.raises(BadRequest, match="CERTBOTLESS_EAB_KID"):
            make_issuer(pebble).ensure_account()
        wrong = ExternalAccountBinding(EAB_KID, EAB_HMAC[::-1])
        with pytest.raises(CaProblem):
            make_issuer(pebble, options=IssuerOptions(eab=wrong)).ensure_account()
        binding = ExternalAccountBinding(EAB_KID, EAB_HMAC)
        bound = make_issuer(pebble, options=IssuerOptions(eab=binding))
        assert bound.issue(CertSpec("eab.example.test", ("eab.example.test",))).fullchain_pem
    finally:
        pebble.stop()


def test_no_failures_when_the_ca_rejects_half_of_all_nonces(
    rig_env: dict[str, str],
    make_issuer: MakeIssuer,
    figure: Callable[[str], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pebble = started_pebble(
        rig_env, "pebble-nonce-tests", 14110, env={"PEBBLE_WFE_NONCEREJECT": "50"}
    )
    try:
        issuer = make_issuer(pebble, options=IssuerOptions(concurrency=5))
        nonce_requests = calls_to(monkeypatch, issuer.net, "head")
        specs = [CertSpec(f"n{i}.example.test", (f"n{i}.example.test",)) for i in range(25)]
        started = time.monotonic()
        outcomes = dict(issuer.issue_many(specs))
        seconds = time.monotonic() - started
    finally:
        pebble.stop()
    failures = {s.name: str(o) for s, o in outcomes.items() if isinstance(o, AcmeError)}
    assert failures == {}
    assert len(outcomes) == 25
    # Each badNonce answer carries the next nonce: only the pool's first fill asks for one
    # (without that, every rejection, about half of some 200 requests, would cost a HEAD).
    assert len(nonce_requests) <= 2 * issuer.options.concurrency
    figure(
        f"ACME: 25 certificates with 50% of nonces rejected: 0 failures, {seconds:.2f} s, "
        f"{len(nonce_requests)} HEAD newNonce"
    )


def test_failed_validation_says_why_and_backs_the_name_off(
    make_issuer: MakeIssuer, pebble_for_acme: PebbleServer, tmp_path: Path
) -> None:
    # This issuer's tokens live where no responder looks, so the CA gets a 404.
    lonely = make_issuer(pebble_for_acme, solver=EdgeHttp01Solver(TokenStore(tmp_path)))
    spec = CertSpec("nobody.example.test", ("nobody.example.test",))
    with pytest.raises(ValidationFailed) as failure:
        lonely.issue(spec)
    message = str(failure.value)
    assert message.startswith("nobody.example.test: validation failed: nobody.example.test:")
    assert "urn:ietf:params:acme:error:" in message and "next attempt after" in message
    assert lonely.backoff.blocked_until("nobody.example.test") is not None
    started = time.monotonic()
    with pytest.raises(BackingOff, match="1 failed validation"):
        lonely.issue(spec)
    assert time.monotonic() - started < 0.1, "a backed-off name must not reach the CA"
    assert not any(tmp_path.iterdir())


def test_more_names_than_the_ca_allows_is_a_clear_error(issuer: AcmeIssuer) -> None:
    names = tuple(f"n{i}.many.example.test" for i in range(101))
    with pytest.raises(BadRequest, match="101 names in one certificate, but the CA allows at most"):
        issuer.issue(CertSpec("many.example.test", names))


def test_profile_goes_to_a_ca_that_lists_none(issuer: AcmeIssuer) -> None:
    # Pebble 2.4 lists no profiles; the field is sent and ignored (tests/support/ari_ca.py
    # covers a CA that lists them).
    assert issuer.offered_profiles() == {}
    spec = CertSpec("p.example.test", ("p.example.test",), profile="shortlived")
    assert issuer.issue(spec).fullchain_pem


def test_preferred_chain_is_picked_by_issuer_name(
    rig_env: dict[str, str], make_issuer: MakeIssuer
) -> None:
    pebble = started_pebble(
        rig_env, "pebble-chain-tests", 14130, env={"PEBBLE_ALTERNATE_ROOTS": "1"}
    )
    try:
        names = [
            x509.load_pem_x509_certificate(pebble.root_pem(i).encode())
            .subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0]
            .value
            for i in (0, 1)
        ]
        spec = CertSpec("chain.example.test", ("chain.example.test",))
        for preferred in names:
            chain_options = IssuerOptions(preferred_chain=str(preferred))
            chain = make_issuer(pebble, options=chain_options).issue(spec).fullchain_pem
            top = x509.load_pem_x509_certificates(chain)[-1]
            assert top.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == preferred
    finally:
        pebble.stop()
    assert names[0] != names[1]


def revocation_status(pebble: PebbleServer, certificate: x509.Certificate) -> dict[str, Any]:
    """What the CA itself records about `certificate` (Pebble's management API)."""
    url = (
        f"https://{pebble.host}:{pebble.management_port}"
        f"/cert-status-by-serial/{certificate.serial_number:x}"
    )
    context = ssl.create_default_context(cafile=str(pebble.ca_bundle))
    with urllib.request.urlopen(url, context=context, timeout=5) as response:
        status: dict[str, Any] = json.load(response)
    return status


def test_revoke_with_a_reason(issuer: AcmeIssuer, pebble_for_acme: PebbleServer) -> None:
    issued = issuer.issue(CertSpec("revoke.example.test", ("revoke.example.test",)))
    assert revocation_status(pebble_for_acme, leaf_of(issued))["Status"] == "Valid"
    issuer.revoke(issued.fullchain_pem, RevocationReason.keyCompromise)
    status = revocation_status(pebble_for_acme, leaf_of(issued))
    assert (status["Status"], status["Reason"]) == ("Revoked", RevocationReason.keyCompromise)
    with pytest.raises(CaProblem, match="alreadyRevoked"):
        issuer.revoke(issued.fullchain_pem, RevocationReason.keyCompromise)
    with pytest.raises(BadRequest, match="not a PEM certificate"):
        issuer.revoke(b"not a certificate")


def test_ca_restarted_mid_order_fails_cleanly_then_recovers(
    rig_env: dict[str, str], make_issuer: MakeIssuer, acme_tokens: TokenStore
) -> None:
    pebble = started_pebble(rig_env, "pebble-restart-tests", 14140)
    restarted = threading.Event()

    def restart_on_validate(message: str) -> None:
        if "asking the CA to validate" in message and not restarted.is_set():
            restarted.set()
            pebble.stop()
            # Back in about a second, with no memory of the account or the order.
            threading.Timer(1.0, pebble.start).start()

    try:
        issuer = make_issuer(pebble)
        spec = CertSpec("restart.example.test", ("restart.example.test",))
        try:
            outcome: IssuedCert | AcmeError = issuer.issue(spec, progress=restart_on_validate)
        except AcmeError as error:
            outcome = error
        assert restarted.is_set()
        print(f"order across a CA restart: {outcome!r}")
        if isinstance(outcome, AcmeError):
            assert str(outcome).startswith("restart.example.test: ")
        assert not any(acme_tokens.directory.iterdir()), "no token left behind"
        # The CA forgot the account; the next order registers again and succeeds.
        assert issuer.issue(spec).fullchain_pem
    finally:
        time.sleep(1.5)  # let a pending restart land before stopping it
        pebble.stop()


@pytest.fixture
def pebble_stopped_for_good(rig_env: dict[str, str]) -> Iterator[PebbleServer]:
    pebble = loopback_pebble(rig_env, "pebble-gone-tests", 14150)
    yield pebble
    pebble.stop()


def test_unreachable_ca_is_reported_after_bounded_retries(
    make_issuer: MakeIssuer, pebble_stopped_for_good: PebbleServer
) -> None:
    started = time.monotonic()
    with pytest.raises(AcmeError, match="check that the ACME directory URL is right"):
        make_issuer(pebble_stopped_for_good).issue(CertSpec("x.example.test", ("x.example.test",)))
    assert time.monotonic() - started < 30


def test_an_order_past_its_deadline_stops_cleanly(
    make_issuer: MakeIssuer, pebble_for_acme: PebbleServer, acme_tokens: TokenStore
) -> None:
    hasty = make_issuer(pebble_for_acme, options=IssuerOptions(order_timeout=0.01))
    with pytest.raises(OrderTimedOut, match="did not finish within"):
        hasty.issue(CertSpec("slow.example.test", ("slow.example.test",)))
    assert not any(acme_tokens.directory.iterdir())


def test_an_edge_that_does_not_serve_the_token_stops_before_the_ca_validates(
    make_issuer: MakeIssuer, pebble_for_acme: PebbleServer, acme_tokens: TokenStore
) -> None:
    misrouted = EdgeSelfCheck("localhost", timeout=0.5, port=unused_port())
    issuer = make_issuer(pebble_for_acme)
    with pytest.raises(ChallengeNotServed, match="does not serve the HTTP-01 token"):
        issuer.issue(
            CertSpec("edge.example.test", ("edge.example.test",)),
            solver=EdgeHttp01Solver(acme_tokens, misrouted),
        )
    assert issuer.backoff.blocked_until("edge.example.test") is None, "no validation was burned"


def test_the_order_deadline_bounds_the_edge_self_check(
    make_issuer: MakeIssuer, pebble_for_acme: PebbleServer, acme_tokens: TokenStore
) -> None:
    patient = EdgeSelfCheck("localhost", timeout=60, port=unused_port())
    issuer = make_issuer(pebble_for_acme, options=IssuerOptions(order_timeout=2))
    started = time.monotonic()
    with pytest.raises(ChallengeNotServed, match="does not serve the HTTP-01 token"):
        issuer.issue(
            CertSpec("bounded.example.test", ("bounded.example.test",)),
            solver=EdgeHttp01Solver(acme_tokens, patient),
        )
    assert time.monotonic() - started < 5
    assert not any(acme_tokens.directory.iterdir())


def test_the_acme_issuer_is_the_issuer_seam(
    make_issuer: MakeIssuer, pebble_for_acme: PebbleServer
) -> None:
    issuer: Issuer = make_issuer(pebble_for_acme)  # mypy checks AcmeIssuer against the Protocol
    assert issuer.unreachable() is None


def test_a_rolled_over_account_keeps_its_url_orders_with_the_new_key_and_not_the_old(
    make_issuer: MakeIssuer, pebble_for_acme: PebbleServer, figure: Callable[[str], None]
) -> None:
    old_key = load_account_key(None)
    issuer = make_issuer(pebble_for_acme, account_key=old_key)
    account = issuer.ensure_account()
    new_key = load_account_key(None)
    started = time.monotonic()
    assert issuer.session.change_key(new_key) == str(account.uri)
    issued = issuer.issue(CertSpec("rolled.example.test", ("rolled.example.test",)))
    figure(f"Pebble: key rollover, then an order with the new key, in "
           f"{time.monotonic() - started:.2f} s")  # fmt: skip
    assert issued.fullchain_pem.count(b"BEGIN CERTIFICATE") >= 2
    assert issuer.net.key is new_key
    assert issuer.existing_account() == str(account.uri), "the same account, found by the new key"
    old = make_issuer(pebble_for_acme, account_key=old_key)
    assert old.existing_account() is None, "the CA knows no account for the old key"
    old.net.account = account  # a request signed by the old key, as the account's
    with pytest.raises(CaProblem):
        protocol.post_as_get(old.acme, str(account.uri))
