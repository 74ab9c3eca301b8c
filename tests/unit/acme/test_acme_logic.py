"""Pure pieces of the ACME engine: ARI identifiers and windows, retry and poll timing, back-off,
wording, signing algorithms."""

import json
from datetime import UTC, datetime, timedelta
from random import Random

import pytest
from acme import messages
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from josepy.jwa import ES256, ES384, ES512, RS256, JWASignature
from josepy.jwk import JWK, JWKEC, JWKRSA, JWKOct

from certbotless.acme.ari import ari_cert_id, lifetime_renewal_time, time_in_window
from certbotless.acme.backoff import IdentifierBackoff
from certbotless.acme.errors import BackingOff, BadRequest, describe_problem
from certbotless.acme.network import RetryPolicy, retry_after, signing_algorithm
from certbotless.acme.orders import NewOrderWithReplaces, next_poll_delay

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def certificate(serial: int, key_identifier: bytes) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ari.example.test")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=90))
        .add_extension(x509.AuthorityKeyIdentifier(key_identifier, None, None), critical=False)
        .sign(key, hashes.SHA256())
    )


def test_ari_identifier_matches_the_rfc_9773_example() -> None:
    # RFC 9773 §4.1: AKI 69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:DE:01:C8:D4,
    # serial 00:87:65:43:21.
    aki = bytes.fromhex("69885B6B87464041E1B37B847BA0AE2CDE01C8D4")
    assert ari_cert_id(certificate(0x87654321, aki)) == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"


def test_renewal_falls_at_a_third_of_the_lifetime_left_or_inside_the_cas_window() -> None:
    assert lifetime_renewal_time(NOW, NOW + timedelta(days=90)) == NOW + timedelta(days=60)
    rng = Random(7)
    start, end = NOW + timedelta(days=1), NOW + timedelta(days=2)
    moments = [time_in_window(start, end, rng) for _ in range(200)]
    assert all(start <= m <= end for m in moments)
    assert max(moments) - min(moments) > timedelta(hours=12), "spread across the window"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", timedelta(seconds=120)),
        (" 5 ", timedelta(seconds=5)),
        (None, None),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", timedelta(0)),  # in the past: no wait
    ],
)
def test_retry_after_header_forms(header: str | None, expected: timedelta | None) -> None:
    assert retry_after(header) == expected


def test_retry_after_in_http_date_form_counts_from_now() -> None:
    in_an_hour = (datetime.now(UTC) + timedelta(hours=1)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    wait = retry_after(in_an_hour)
    assert wait is not None and timedelta(minutes=59) < wait <= timedelta(hours=1)


@pytest.mark.parametrize(
    ("last", "header", "expected"),
    [
        (0.05, "0", 0.05),  # Retry-After: 0 must not poll in a tight loop
        (0.0, None, 0.05),
        (0.05, None, 0.1),
        (1.5, None, 2.0),
        (0.05, "3", 3.0),
        (0.05, "600", 30.0),
    ],
)
def test_polls_wait_at_least_the_first_poll_and_at_most_the_cap(
    last: float, header: str | None, expected: float
) -> None:
    assert next_poll_delay(last, header) == expected


def test_retry_delays_are_jittered_and_capped() -> None:
    policy = RetryPolicy(first_delay=0.25, max_delay=8.0)
    delays = [policy.delay(attempt) for attempt in range(1, 12) for _ in range(50)]
    assert all(0 <= d <= 8.0 for d in delays)
    assert len({round(d, 6) for d in delays}) > 500, "jitter, so workers do not retry in step"


def test_failed_validations_back_off_exponentially_and_success_clears() -> None:
    clock = [NOW]
    backoff = IdentifierBackoff(clock=lambda: clock[0])
    waits = []
    for _ in range(6):
        waits.append(backoff.validation_failed("a.example.test") - clock[0])
    assert waits == [timedelta(minutes=m) for m in (5, 10, 20, 40, 60, 60)]
    with pytest.raises(BackingOff, match=r"a\.example\.test: not asking the CA again"):
        backoff.check(["b.example.test", "a.example.test"])
    backoff.check(["b.example.test"])
    backoff.succeeded(["a.example.test"])
    backoff.check(["a.example.test"])


def test_at_most_four_failed_validations_fit_in_any_hour() -> None:
    # Let's Encrypt allows five failed validations per name per hour.
    clock = [NOW]
    backoff = IdentifierBackoff(clock=lambda: clock[0])
    attempts = []
    while clock[0] < NOW + timedelta(hours=6):
        attempts.append(clock[0])
        clock[0] = backoff.validation_failed("x.example.test")
    for first in attempts:
        assert sum(first <= a < first + timedelta(hours=1) for a in attempts) <= 4


def test_rate_limit_blocks_every_name_of_the_order_until_retry_after() -> None:
    clock = [NOW]
    backoff = IdentifierBackoff(clock=lambda: clock[0])
    backoff.rate_limited(["a.example.test", "www.a.example.test"], NOW + timedelta(hours=3))
    with pytest.raises(BackingOff, match="rate limit") as caught:
        backoff.check(["www.a.example.test"])
    assert caught.value.retry_at == NOW + timedelta(hours=3)
    clock[0] = NOW + timedelta(hours=3, seconds=1)
    backoff.check(["www.a.example.test"])


def test_problem_documents_read_as_sentences_with_their_subproblems() -> None:
    problem = messages.Error.from_json(
        {
            "type": "urn:ietf:params:acme:error:rejectedIdentifier",
            "detail": "Some identifiers were rejected",
            "subproblems": [
                {
                    "type": "urn:ietf:params:acme:error:rejectedIdentifier",
                    "detail": "forbidden by policy",
                    "identifier": {"type": "dns", "value": "bad.example"},
                }
            ],
        }
    )
    text = describe_problem(problem)
    assert text.startswith("the CA will not issue for this name: Some identifiers were rejected")
    assert "[urn:ietf:params:acme:error:rejectedIdentifier]" in text
    assert "bad.example: forbidden by policy" in text


def test_new_order_carries_replaces_only_when_given() -> None:
    ident = [messages.Identifier(typ=messages.IDENTIFIER_FQDN, value="a.example.test")]
    with_replaces = json.loads(NewOrderWithReplaces(identifiers=ident, replaces="x.y").json_dumps())
    assert with_replaces["replaces"] == "x.y"
    assert "replaces" not in json.loads(NewOrderWithReplaces(identifiers=ident).json_dumps())


@pytest.mark.parametrize(
    ("key", "algorithm"),
    [
        (JWKEC(key=ec.generate_private_key(ec.SECP256R1())), ES256),
        (JWKEC(key=ec.generate_private_key(ec.SECP384R1())), ES384),
        (JWKEC(key=ec.generate_private_key(ec.SECP521R1())), ES512),
        (JWKRSA(key=rsa.generate_private_key(public_exponent=65537, key_size=2048)), RS256),
    ],
    ids=["P-256", "P-384", "P-521", "RSA"],
)
def test_each_account_key_signs_with_its_own_algorithm(key: JWK, algorithm: JWASignature) -> None:
    assert signing_algorithm(key) == algorithm


@pytest.mark.parametrize(
    ("key", "named"),
    [
        (JWKEC(key=ec.generate_private_key(ec.SECP256K1())), "EC secp256k1"),
        (JWKOct(key=b"0123456789abcdef0123456789abcdef"), "JWKOct"),
    ],
)
def test_an_account_key_acme_cannot_use_is_refused_clearly(key: JWK, named: str) -> None:
    with pytest.raises(BadRequest, match=f"the ACME account key is {named}.*P-521"):
        signing_algorithm(key)


def test_a_refused_revocation_is_worded_as_one_not_as_a_challenge() -> None:
    from certbotless.acme.errors import RevocationRefused

    problem = messages.Error.with_code("unauthorized", detail="not authorized")
    words = str(RevocationRefused(problem))
    assert words.startswith("revocation refused: the CA refused the revocation")
    assert "challenge" not in words and "not authorized" in words
