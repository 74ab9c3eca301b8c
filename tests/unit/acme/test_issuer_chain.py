"""Several issuers, in order (issue 27): which issuer a certificate is ordered from, and what the
status record is told. Members are fakes; tests/integration/test_issuers.py runs real Pebbles."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from acme import messages

from certbotless.acme.caa import CaaForbids
from certbotless.acme.errors import (
    EXTERNAL_ACCOUNT_REQUIRED,
    REJECTED_IDENTIFIER,
    UNAUTHORIZED,
    AcmeError,
    BackingOff,
    BadRequest,
    CaProblem,
    CaUnreachable,
    RateLimited,
    ValidationFailed,
)
from certbotless.acme.issuer_chain import IssuerChain, passed_over
from certbotless.issuer_settings import IssuerSetting, parse_issuers
from certbotless.model import (
    CertSpec,
    IssuedCert,
    KeyType,
    RenewalTime,
    RevocationReason,
    StoredCert,
)
from certbotless.passes.planning import plan_certificates, replaced_certificates
from certbotless.setting_values import SettingsError
from certbotless.settings import DIRECTORY_SHORTCUTS, LETSENCRYPT_PRODUCTION, Settings
from certbotless.swarm.status import PassOutcome, collect_statuses

NOW = datetime(2026, 12, 1, tzinfo=UTC)
SPEC = CertSpec("shop", ("shop.example.test",))


def document(kind: str) -> messages.Error:
    error: messages.Error = messages.Error.from_json({"type": kind, "detail": "no"})
    return error


def problem(kind: str) -> CaProblem:
    return CaProblem("the CA says", document(kind))


@dataclass
class Member:
    name: str
    directory_url: str
    failing: AcmeError | None = None
    ordered: list[str] = field(default_factory=list)
    replaced: dict[str, str] = field(default_factory=dict)
    asked_ari: list[str] = field(default_factory=list)
    revoked: int = 0

    def issue_many(
        self,
        specs: Iterable[CertSpec],
        progress: object,
        solver: object = None,
        replaces: Mapping[str, StoredCert] | None = None,
    ) -> Iterator[tuple[CertSpec, IssuedCert | AcmeError]]:
        for spec in specs:
            self.ordered.append(spec.name)
            old = (replaces or {}).get(spec.name)
            if old is not None and old.directory_url == self.directory_url:
                self.replaced[spec.name] = old.ari_id
            if self.failing is not None:
                yield spec, self.failing
            else:
                yield spec, IssuedCert(spec, b"chain", b"key", self.directory_url, self.name)

    def renewal_times(self, certs: Iterable[StoredCert]) -> dict[str, RenewalTime]:
        self.asked_ari += [cert.name for cert in certs]
        return {}

    def unreachable(self) -> str | None:
        return "down" if isinstance(self.failing, CaUnreachable) else None

    def revoke(self, chain_pem: bytes, reason: RevocationReason) -> None:
        self.revoked += 1


def chain(first_fails: AcmeError | None) -> tuple[IssuerChain[Member], Member, Member]:
    first = Member("le", "https://le.test/dir", first_fails)
    second = Member("zerossl", "https://zerossl.test/dir")
    return IssuerChain([first, second]), first, second


def outcomes(issuers: IssuerChain[Member], *specs: CertSpec) -> dict[str, IssuedCert | AcmeError]:
    return {spec.name: out for spec, out in issuers.issue_many(specs, lambda text: None)}


@pytest.mark.parametrize(
    ("error", "why"),
    [
        (CaUnreachable("newOrder failed 6 times"), "unreachable"),
        (RateLimited("the CA says", document("urn:x"), NOW), "rate limited"),
        (BackingOff("later", NOW, rate_limited=True), "rate limited"),
        (CaaForbids("shop: CAA at example.test allows only sectigo.com"), "CAA forbids it"),
        (problem(REJECTED_IDENTIFIER), "refuses the name"),
        (problem(UNAUTHORIZED), "refuses the name"),
        (problem(EXTERNAL_ACCOUNT_REQUIRED), "no account (External Account Binding required)"),
    ],
)
def test_a_failure_another_ca_could_fix_goes_to_the_next_issuer(error: AcmeError, why: str) -> None:
    assert passed_over(error) == why
    issuers, first, second = chain(error)
    issued = outcomes(issuers, SPEC)["shop"]
    assert isinstance(issued, IssuedCert)
    assert (issued.issuer, first.ordered, second.ordered) == ("zerossl", ["shop"], ["shop"])
    assert issued.skipped == (f"le: {why} ({error})",)


@pytest.mark.parametrize(
    "error",
    [
        ValidationFailed("the challenge failed"),
        BackingOff("2 failed validation(s)", NOW),
        BadRequest("too many names"),
        problem("urn:ietf:params:acme:error:malformed"),
    ],
)
def test_a_failure_any_ca_would_repeat_is_not_taken_elsewhere(error: AcmeError) -> None:
    assert passed_over(error) is None
    issuers, _first, second = chain(error)
    failed = outcomes(issuers, SPEC)["shop"]
    assert isinstance(failed, type(error)) and second.ordered == []


def test_when_every_issuer_fails_the_error_names_each() -> None:
    issuers, _first, second = chain(CaUnreachable("le is down"))
    second.failing = ValidationFailed("connection refused")
    failed = outcomes(issuers, SPEC)["shop"]
    assert isinstance(failed, ValidationFailed)  # the last issuer's kind decides the back-off
    assert str(failed) == ("connection refused [issuer zerossl; passed over: le: unreachable "
                           "(le is down)]")  # fmt: skip


def test_the_first_issuer_is_tried_first_on_every_pass() -> None:
    issuers, first, second = chain(CaUnreachable("down"))
    assert outcomes(issuers, SPEC)["shop"].issuer == "zerossl"  # type: ignore[union-attr]
    first.failing = None  # it works again: the renewal goes back to it
    again = outcomes(issuers, SPEC)["shop"]
    assert isinstance(again, IssuedCert) and again.issuer == "le" and again.skipped == ()
    assert second.ordered == ["shop"]


def test_a_pinned_certificate_goes_only_to_its_issuer() -> None:
    issuers, first, second = chain(CaUnreachable("down"))
    pinned = replace(SPEC, issuer="le")
    assert isinstance(outcomes(issuers, pinned)["shop"], CaUnreachable)
    assert second.ordered == []
    to_second = outcomes(issuers, replace(SPEC, issuer="zerossl"))["shop"]
    assert isinstance(to_second, IssuedCert) and first.ordered == ["shop"]
    unknown = outcomes(issuers, replace(SPEC, issuer="buypass"))["shop"]
    assert isinstance(unknown, BadRequest) and "names: le, zerossl" in str(unknown)
    assert issuers.directories(pinned) == ("https://le.test/dir",)
    assert issuers.directories(SPEC) == ("https://le.test/dir", "https://zerossl.test/dir")


def stored(directory: str, ari_id: str = "aki.1") -> StoredCert:
    return StoredCert("shop", SPEC.domains, "1", NOW, NOW.replace(year=2027), KeyType.EC256,
                      "c", "c1", "s", "s1", ari_id, directory)  # fmt: skip


def test_ari_and_replaces_stay_with_the_issuer_that_issued_the_version() -> None:
    issuers, first, second = chain(CaUnreachable("down"))
    from_second = stored("https://zerossl.test/dir")
    outcomes_ = issuers.issue_many([SPEC], lambda text: None, None, {"shop": from_second})
    assert [o.issuer for _s, o in outcomes_] == ["zerossl"]  # type: ignore[union-attr]
    assert (first.replaced, second.replaced) == ({}, {"shop": "aki.1"})
    # An older version without its CA recorded came from the first issuer.
    issuers.renewal_times([from_second, replace(stored(""), name="old")])
    assert (first.asked_ari, second.asked_ari) == (["old"], ["shop"])
    issuers.revoke(b"pem", RevocationReason.unspecified, "https://zerossl.test/dir")
    assert (first.revoked, second.revoked) == (0, 1)


def test_a_version_from_a_later_issuer_is_kept_until_due_then_renewed_from_the_first() -> None:
    issuers, _first, _second = chain(None)
    current = {"shop": stored("https://zerossl.test/dir")}
    kept = plan_certificates([SPEC], current, NOW, (), None, issuers.directory_url,
                             issuers.directories)  # fmt: skip
    assert kept.to_issue == ()
    due = plan_certificates([SPEC], current, NOW.replace(year=2027), (), None,
                            issuers.directory_url, issuers.directories)  # fmt: skip
    assert due.to_issue == (SPEC,) and replaced_certificates(due) == {"shop": "aki.1"}
    pinned = replace(SPEC, issuer="le")  # pinned elsewhere: replaced at once
    moved = plan_certificates([pinned], current, NOW, (), None, issuers.directory_url,
                              issuers.directories)  # fmt: skip
    assert moved.reasons["shop"].startswith("issued by another CA")


def test_the_status_record_names_the_issuer_and_why_others_were_passed_over() -> None:
    cert = stored("https://zerossl.test/dir")
    why = ("le: unreachable (newOrder failed 6 times)",)
    outcome = PassOutcome(issued=["shop"], issued_by={"shop": ("zerossl", why)})
    record = collect_statuses({}, [SPEC], {"shop": cert}, {}, outcome, NOW)["shop"]
    assert (record.issuer, record.skipped) == ("zerossl", why)
    later = collect_statuses({"shop": record}, [SPEC], {"shop": cert}, {}, PassOutcome(), NOW)
    assert later["shop"].issuer == "zerossl"  # kept while that version is in use
    newer = replace(cert, serial="2")
    assert (
        collect_statuses(later, [SPEC], {"shop": newer}, {}, PassOutcome(), NOW)["shop"].issuer
        == ""
    )


def test_issuers_inline_and_yaml(tmp_path: Path) -> None:
    inline = (
        "letsencrypt production; zerossl https://acme.zerossl.com/v2/DV90 eab_kid=kid "
        "eab_hmac_secret=zerossl-hmac preferred_chain='ISRG Root X1' profile=tlsserver"
    )
    first, second = parse_issuers(inline, DIRECTORY_SHORTCUTS)
    assert first == IssuerSetting("letsencrypt", LETSENCRYPT_PRODUCTION)
    assert (second.eab_kid, second.eab_hmac_secret, second.preferred_chain, second.profile) == (
        "kid", "zerossl-hmac", "ISRG Root X1", "tlsserver")  # fmt: skip
    (tmp_path / "zerossl-hmac").write_text("c2VjcmV0LWtleQ\n")
    assert second.external_account_binding(tmp_path) == ("kid", "c2VjcmV0LWtleQ")
    file = tmp_path / "issuers.yml"
    file.write_text("- name: a\n  directory: staging\n- name: b\n  directory: https://b.test/d\n")
    assert [i.name for i in parse_issuers(str(file), DIRECTORY_SHORTCUTS)] == ["a", "b"]
    env = {"CERTBOTLESS_ACME_ISSUERS": inline}
    settings = Settings.from_env(env)
    assert settings.acme_directory == LETSENCRYPT_PRODUCTION and len(settings.issuers) == 2
    assert Settings.from_env({}).issuers[0].name == "default"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("a production; a staging", "names issuer a twice"),
        ("Upper production", "lowercase"),
        ("a http://x.test/dir", "not an https://"),
        ("a production eab_kid=k", "needs both eab_kid"),
        ("a production colour=blue", "unknown option colour"),
        ("a", "must start with a name and a directory"),
    ],
)
def test_issuers_that_cannot_be_used_are_refused_by_name(value: str, words: str) -> None:
    with pytest.raises(SettingsError, match=words):
        parse_issuers(value, DIRECTORY_SHORTCUTS)
    with pytest.raises(SettingsError, match="remove CERTBOTLESS_ACME_DIRECTORY"):
        Settings.from_env({"CERTBOTLESS_ACME_ISSUERS": "a production",
                           "CERTBOTLESS_ACME_DIRECTORY": "staging"})  # fmt: skip


@dataclass
class Counted:
    orders: list[tuple[str, str]] = field(default_factory=list)

    def order(self, issuer: str, outcome: str) -> None:
        self.orders.append((issuer, outcome))


def test_each_issuers_outcome_is_counted() -> None:
    """What the daemon's `certbotless_issuer_orders_total` counts: per issuer, issued, passed
    over (the next was asked) or failed."""
    counted = Counted()
    first = Member("le", "https://le.test/dir", CaUnreachable("down"))
    second = Member("zerossl", "https://zerossl.test/dir")
    outcomes(IssuerChain([first, second], counted), SPEC)
    assert counted.orders == [("le", "passed_over"), ("zerossl", "issued")]
    counted.orders.clear()
    second.failing = ValidationFailed("the CA could not fetch the token")
    first.failing = None
    outcomes(IssuerChain([second, first], counted), SPEC)
    assert counted.orders == [("zerossl", "failed")]
