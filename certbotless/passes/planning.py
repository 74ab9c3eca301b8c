"""What a pass orders: each wanted certificate's state against what is stored. No I/O here."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from certbotless.acme.ari import lifetime_renewal_time
from certbotless.model import CertificateStatus, CertSpec, Deferred, Plan, RenewalTime, StoredCert


@dataclass(frozen=True)
class Planned:
    """The plan step's outcome: what to order now, the CA's renewal times, the names held back
    after failures, those deferred to stay within the CA's limits or their claimant's share,
    what each renewal replaces (ARI), and each certificate's claimant (`budget.claimants`)."""

    plan: Plan
    renewals: dict[str, RenewalTime]
    held: tuple[str, ...]
    deferred: dict[str, Deferred]
    replaces: dict[str, str]
    claimants: dict[str, str] = field(default_factory=dict)


def plan_certificates(
    specs: Iterable[CertSpec],
    current: Mapping[str, StoredCert],
    now: datetime,
    forced: Collection[str] = (),
    renew_at: Mapping[str, datetime] | None = None,
    directory_url: str = "",
    directories: Callable[[CertSpec], tuple[str, ...]] | None = None,
) -> Plan:
    """`current`: the version in use per name; `renew_at`: the CA's (ARI) renewal time per name,
    where it gave one (otherwise 1/3 of the lifetime left); `directory_url`: the (first) CA
    configured now, so that certificates from another one (say, staging) are replaced;
    `directories`: each spec's CAs (CERTBOTLESS_ACME_ISSUERS), whose versions count as its own
    (one from the second issuer is kept until it comes due, then ordered from the first)."""
    renew_at = renew_at or {}
    accepted = {spec.name: directories(spec) if directories else (directory_url,)
                for spec in specs if spec.name in current}  # fmt: skip
    to_issue: list[CertSpec] = []
    reasons: dict[str, str] = {}
    for spec in specs:
        cert = current.get(spec.name)
        if cert is None:
            reason = "new"
        elif set(cert.domains) != set(spec.domains):
            reason = "domains changed"
        elif cert.key_type != spec.key_type:
            reason = "key type changed"
        elif not from_any_ca(cert, accepted[spec.name]):
            reason = f"issued by another CA ({cert.directory_url})"
        elif spec.name in forced:
            reason = "requested now"
        elif now >= renew_at.get(spec.name, lifetime_renewal_time(cert.not_before, cert.not_after)):
            reason = f"due for renewal (expires {cert.not_after:%Y-%m-%d %H:%M} UTC)"
        else:
            continue
        to_issue.append(spec)
        reasons[spec.name] = reason
    return Plan(tuple(to_issue), reasons, dict(current), directory_url, accepted)


def hold_back(
    plan: Plan, statuses: Mapping[str, CertificateStatus], now: datetime, forced: Collection[str]
) -> tuple[Plan, tuple[str, ...]]:
    """The plan without the certificates that failed and wait for their next attempt (unless
    asked for by name now), and those held back."""
    held = tuple(
        spec.name
        for spec in plan.to_issue
        if spec.name not in forced
        and (record := statuses.get(spec.name)) is not None
        and record.waiting(spec, now)
    )
    kept = tuple(spec for spec in plan.to_issue if spec.name not in held)
    return replace(plan, to_issue=kept), held


def from_ca(cert: StoredCert, directory_url: str) -> bool:
    """Whether `cert` came from the CA at `directory_url` (unknown on either side counts as yes)."""
    return not (cert.directory_url and directory_url) or cert.directory_url == directory_url


def from_any_ca(cert: StoredCert, directory_urls: Collection[str]) -> bool:
    """Whether `cert` came from one of these CAs (unknown on either side counts as yes)."""
    return any(from_ca(cert, url) for url in directory_urls) or not directory_urls


def replaced_certificates(plan: Plan) -> dict[str, str]:
    """ARI `replaces`: the identifier of the version each renewal supersedes (same name, one of
    its CAs, and at least one name in common, as RFC 9773 requires); the issuer names it only to
    the CA that issued it."""
    replaces = {}
    for spec in plan.to_issue:
        old = plan.current.get(spec.name)
        if (
            old is not None
            and old.ari_id
            and from_any_ca(old, plan.accepted.get(spec.name, (plan.directory_url,)))
            and set(old.domains) & set(spec.domains)
        ):
            replaces[spec.name] = old.ari_id
    return replaces


def earliest_renewal(
    in_use: Mapping[str, StoredCert],
    renewals: Mapping[str, RenewalTime],
    issued: Collection[str],
    failed: Collection[str],
) -> datetime | None:
    """When the next certificate comes due (failed ones are retried on their own schedule)."""
    return min(
        (
            lifetime_renewal_time(cert.not_before, cert.not_after)
            if name in issued or name not in renewals
            else renewals[name].renew_at
            for name, cert in in_use.items()
            if name not in failed
        ),
        default=None,
    )
