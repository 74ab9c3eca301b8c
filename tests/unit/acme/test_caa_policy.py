"""CAA's rules (RFC 8659, RFC 8657) over records given as data: which CA, account and challenge
may order which name, and the words when none may."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from certbotless.acme.caa import CaaForbids, CaaPolicy, CaaRecord, caa_identity
from certbotless.model import CertSpec, ChallengeMode
from certbotless.settings import LETSENCRYPT_PRODUCTION, LETSENCRYPT_STAGING

ACCOUNT = "https://ca.example/acme/acct/1"


class RecordsByName:
    def __init__(self, records: Mapping[str, Sequence[str]]) -> None:
        self.asked: list[str] = []
        self.by_name = {
            name: [CaaRecord(int(flags), tag, value.strip('"'))
                   for flags, tag, value in (line.split(" ", 2) for line in lines)]
            for name, lines in records.items()
        }  # fmt: skip

    def records(self, name: str) -> Sequence[CaaRecord]:
        self.asked.append(name)
        return self.by_name.get(name, [])


def verdict(records: Mapping[str, Sequence[str]], *domains: str,
            challenge: ChallengeMode = ChallengeMode.HTTP01, identity: str = "letsencrypt.org",
            ) -> str:  # fmt: skip
    spec = CertSpec("site", domains, challenge=challenge)
    try:
        CaaPolicy((identity,), RecordsByName(records)).check(spec, lambda: ACCOUNT)
    except CaaForbids as forbidden:
        return str(forbidden)
    return "allowed"


def test_no_records_anywhere_allows_every_ca() -> None:
    assert verdict({}, "a.example.com") == "allowed"


def test_the_closest_record_set_up_the_tree_decides() -> None:
    records = {
        "example.com": ['0 issue "pki.goog"'],
        "shop.example.com": ['0 issue "letsencrypt.org"'],
    }
    assert verdict(records, "shop.example.com") == "allowed"
    assert verdict(records, "a.b.shop.example.com") == "allowed"
    assert verdict(records, "blog.example.com") == (
        "site: CAA at example.com allows only pki.goog (issue); no order placed"
    )


def test_climbing_stops_at_the_first_non_empty_set() -> None:
    lookup = RecordsByName({"example.com": ['0 issue "letsencrypt.org"']})
    CaaPolicy(("letsencrypt.org",), lookup).check(CertSpec("s", ("a.b.example.com",)), lambda: None)
    assert lookup.asked == ["a.b.example.com", "b.example.com", "example.com"]


def test_an_empty_issuer_allows_no_ca() -> None:
    assert "allows no CA to issue for example.com" in verdict(
        {"example.com": ['0 issue ";"']}, "example.com"
    )


def test_wildcards_read_issuewild_when_present_else_issue() -> None:
    records = {"example.com": ['0 issue "letsencrypt.org"', '0 issuewild "pki.goog"']}
    dns = ChallengeMode.DNS01
    assert verdict(records, "example.com") == "allowed"
    assert "allows only pki.goog (issuewild)" in verdict(records, "*.example.com", challenge=dns)
    assert (
        verdict({"example.com": ['0 issue "letsencrypt.org"']}, "*.example.com", challenge=dns)
        == "allowed"
    )


def test_parameters_account_and_validation_methods() -> None:
    mine = {"example.com": [f'0 issue "letsencrypt.org; accounturi={ACCOUNT}"']}
    other = {
        "example.com": ['0 issue "letsencrypt.org; accounturi=https://ca.example/acme/acct/2"']
    }
    dns_only = {"example.com": ['0 issue "letsencrypt.org; validationmethods=dns-01"']}
    assert verdict(mine, "example.com") == "allowed"
    assert "only for another account or other challenges than http-01" in verdict(
        other, "example.com"
    )
    assert "other challenges than http-01" in verdict(dns_only, "example.com")
    assert verdict(dns_only, "example.com", challenge=ChallengeMode.DNS01) == "allowed"


def test_an_unknown_critical_property_forbids_and_an_unknown_plain_one_does_not() -> None:
    assert "critical 'tbs' property" in verdict({"example.com": ['128 tbs "x"']}, "example.com")
    assert verdict({"example.com": ['0 tbs "x"']}, "example.com") == "allowed"
    assert (
        verdict({"example.com": ['0 iodef "mailto:ops@example.com"']}, "example.com") == "allowed"
    )


def test_ip_addresses_are_not_checked() -> None:
    assert verdict({"1.2.3.4": ['0 issue ";"']}, "192.0.2.1") == "allowed"


@pytest.mark.parametrize(
    ("setting", "directory", "expected"),
    [
        (None, LETSENCRYPT_PRODUCTION, ("letsencrypt.org",)),
        (None, LETSENCRYPT_STAGING, ("letsencrypt.org",)),
        (None, "https://acme.zerossl.com/v2/DV90", ("sectigo.com",)),
        (None, "https://dv.acme-v02.api.pki.goog/directory", ("pki.goog",)),
        (None, "https://127.0.0.1:14000/dir", ()),  # Pebble, a private CA: not checked
        (
            "ca.internal,other.example",
            "https://127.0.0.1:14000/dir",
            ("ca.internal", "other.example"),
        ),
        ("off", LETSENCRYPT_PRODUCTION, ()),
    ],
)
def test_the_ca_identity_comes_from_the_setting_or_the_known_directory(
    setting: str | None, directory: str, expected: tuple[str, ...]
) -> None:
    assert caa_identity(setting, directory) == expected
