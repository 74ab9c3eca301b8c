"""CAA, checked before ordering (RFC 8659, with RFC 8657's `accounturi` and `validationmethods`):
an order the CA would refuse for its CAA records is never placed, so it never counts against the
CA's failed-validation limits, and the operator reads which record forbids it.

The relevant record set of a name is the first non-empty CAA set met climbing from the name to
the root (the resolver follows CNAMEs, as RFC 8659 section 3 asks). A lookup that fails (not
"no such name", not "no records") forbids ordering, as it forbids the CA to issue.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

import dns.exception
import dns.nameserver
import dns.resolver

from certbotless.acme.errors import AcmeError
from certbotless.model import CertSpec, is_ip_address

# The CAA identities of the CAs whose directories certbotless knows (their documentation's).
KNOWN_IDENTITIES = {
    "acme-v02.api.letsencrypt.org": "letsencrypt.org",
    "acme-staging-v02.api.letsencrypt.org": "letsencrypt.org",
    "acme.zerossl.com": "sectigo.com",
    "dv.acme-v02.api.pki.goog": "pki.goog",
    "dv.acme-v02.test-api.pki.goog": "pki.goog",
    "api.buypass.com": "buypass.com",
    "api.test4.buypass.no": "buypass.com",
}
CRITICAL = 128  # the issuer-critical flag: a CA must refuse a critical tag it does not know
KNOWN_TAGS = frozenset({"issue", "issuewild", "iodef", "issuemail", "issuevmc", "contactemail",
                        "contactphone"})  # fmt: skip
LOOKUP_TIMEOUT = 5.0


class CaaForbids(AcmeError):
    """The names' CAA records forbid this CA (or this account, or this challenge): no order."""


@dataclass(frozen=True)
class CaaRecord:
    flags: int
    tag: str
    value: str


class CaaRecords(Protocol):
    def records(self, name: str) -> Sequence[CaaRecord]:
        """The CAA records at `name` (none when it has none or does not exist); raises
        CaaForbids when the lookup fails otherwise."""
        ...


class DnsCaaRecords:
    """CaaRecords through the configured resolvers (the system's when none are given)."""

    def __init__(self, resolvers: Sequence[tuple[str, int]] = ()) -> None:
        self.resolver = dns.resolver.Resolver(configure=not resolvers)
        if resolvers:
            self.resolver.nameservers = [
                dns.nameserver.Do53Nameserver(address, port) for address, port in resolvers
            ]
        self.resolver.lifetime = LOOKUP_TIMEOUT
        self.resolver.cache = None  # a record just changed must count at once

    def records(self, name: str) -> Sequence[CaaRecord]:
        try:
            answer = self.resolver.resolve(f"{name}.", "CAA", raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return ()
        except dns.exception.DNSException as error:
            raise CaaForbids(
                f"cannot look up the CAA records of {name} ({error}): a CA does not issue while "
                "they cannot be read; check the name's DNS"
            ) from None
        return tuple(
            CaaRecord(rdata.flags, rdata.tag.decode("ascii", "replace").lower(),
                      rdata.value.decode("utf-8", "replace"))
            for rdata in answer.rrset or ()
        )  # fmt: skip


def caa_identity(setting: str | None, directory_url: str) -> tuple[str, ...]:
    """The CAA identities a CA's records must name: `setting` (comma-separated domains, or
    `off`), else the known CA's of `directory_url`; () means no check (a CA certbotless does not
    know, such as Pebble or a private one, unless the setting names its identity)."""
    if setting is not None and setting.strip().lower() == "off":
        return ()
    if setting:
        return tuple(part.strip().lower() for part in setting.split(",") if part.strip())
    known = KNOWN_IDENTITIES.get(urlsplit(directory_url).hostname or "")
    return (known,) if known else ()


@dataclass(frozen=True)
class CaaPolicy:
    """Whether this CA (`identities`), this account, may be asked for a certificate."""

    identities: tuple[str, ...]
    records: CaaRecords

    def check(self, spec: CertSpec, account_uri: Callable[[], str | None]) -> None:
        """Raises CaaForbids naming the first name whose CAA records forbid the order
        (`account_uri` is asked only when a record names an account)."""
        for name in spec.domains:
            if is_ip_address(name):
                continue  # RFC 8738: CAA does not apply to IP addresses
            wildcard = name.startswith("*.")
            method = spec.challenge_for(wildcard).value
            problem = self._forbidden(name.removeprefix("*.").lower(), wildcard, method,
                                      account_uri)  # fmt: skip
            if problem:
                raise CaaForbids(f"{spec.name}: {problem}; no order placed")

    def _forbidden(
        self, name: str, wildcard: bool, method: str, account: Callable[[], str | None]
    ) -> str:
        where, found = relevant_records(name, self.records)
        if not found:
            return ""
        for record in found:
            if record.flags & CRITICAL and record.tag not in KNOWN_TAGS:
                return f"CAA at {where} has a critical {record.tag!r} property no CA knows"
        tag = "issuewild" if wildcard and any(r.tag == "issuewild" for r in found) else "issue"
        properties = [parse_issue_value(record.value) for record in found if record.tag == tag]
        if not properties:
            return ""  # no issue property: any CA may issue
        allowed = [issuer for issuer, _ in properties if issuer]
        for issuer, parameters in properties:
            if issuer not in self.identities:
                continue
            if "accounturi" in parameters and parameters["accounturi"] != account():
                continue
            methods = parameters.get("validationmethods")
            if methods is not None and method not in methods.split(","):
                continue
            return ""
        if not allowed:
            return f"CAA at {where} allows no CA to issue for {name}"
        if any(issuer in self.identities for issuer in allowed):
            return (f"CAA at {where} allows {', '.join(self.identities)} only for another "
                    f"account or other challenges than {method} ({tag})")  # fmt: skip
        return f"CAA at {where} allows only {', '.join(sorted(set(allowed)))} ({tag})"


def relevant_records(name: str, records: CaaRecords) -> tuple[str, Sequence[CaaRecord]]:
    """The first non-empty CAA set from `name` up to its top label, and where it was found."""
    labels = name.rstrip(".").split(".")
    for start in range(len(labels)):
        here = ".".join(labels[start:])
        found = records.records(here)
        if found:
            return here, found
    return name, ()


def parse_issue_value(value: str) -> tuple[str, dict[str, str]]:
    """RFC 8659 section 4.2: `issuer-domain-name [; key=value]*` (an empty issuer: none)."""
    issuer, *rest = value.split(";")
    parameters = {}
    for part in rest:
        key, _, parameter = part.strip().partition("=")
        if key:
            parameters[key.strip().lower()] = parameter.strip()
    return issuer.strip().lower().rstrip("."), parameters
