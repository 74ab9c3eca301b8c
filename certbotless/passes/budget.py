"""The CA's rate limits, kept by us: an order that would exceed one of Let's Encrypt's limits is
deferred, with its reason, instead of being refused by the CA (and counted against us).

Limits (https://letsencrypt.org/docs/rate-limits/): 50 new certificates per registered domain
per 7 days, 5 per exact set of names per 7 days, 300 new orders per account per 3 hours.
Renewals that name the certificate they replace (ARI `replaces`) are exempt from all three, as
at Let's Encrypt. Registered domains come from the Public Suffix List bundled with the
`publicsuffixlist` package (no network).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cache

from publicsuffixlist import PublicSuffixList

from certbotless.model import CertSpec, Deferred, PastOrder, Plan, is_ip_address
from certbotless.settings import LETSENCRYPT_PRODUCTION

PER_DOMAIN = (50, timedelta(days=7))
PER_NAME_SET = (5, timedelta(days=7))
PER_ACCOUNT = (300, timedelta(hours=3))
KEPT_FOR = timedelta(days=7)  # the longest window: older orders are forgotten


@cache
def _suffixes() -> PublicSuffixList:
    return PublicSuffixList()


def registered_domain(name: str) -> str:
    """example.co.uk for a.b.example.co.uk; a name that is itself a public suffix, or an IP
    address, counts as its own."""
    if is_ip_address(name):
        return name
    return _suffixes().privatesuffix(name.rstrip(".").lower()) or name


def within_budget(
    plan: Plan, history: Sequence[PastOrder], replaces: Mapping[str, str], now: datetime
) -> tuple[Plan, dict[str, Deferred]]:
    """The plan without the orders that would exceed a limit (taken in plan order, each one
    that fits counted against the next), and why each other one waits. Only for Let's Encrypt's
    production CA: its staging CA's limits are far higher, and other CAs' are their own."""
    if plan.directory_url != LETSENCRYPT_PRODUCTION:
        return plan, {}
    ledger = _Ledger(history, now)
    kept: list[CertSpec] = []
    deferred: dict[str, Deferred] = {}
    for spec in plan.to_issue:
        if spec.name in replaces:
            kept.append(spec)
            continue
        over = ledger.over(spec.domains)
        if over is None:
            ledger.count(spec.domains)
            kept.append(spec)
        else:
            deferred[spec.name] = over
    return replace(plan, to_issue=tuple(kept)), deferred


class _Ledger:
    """What the history leaves of each limit, updated as orders are planned."""

    def __init__(self, history: Sequence[PastOrder], now: datetime) -> None:
        self.now = now
        counted = [order for order in history if not order.renewal]
        self.orders = sorted(o.at for o in counted if o.at > now - PER_ACCOUNT[1])
        recent = [o for o in counted if o.issued and o.at > now - PER_DOMAIN[1]]
        self.domains: dict[str, list[datetime]] = {}
        self.name_set_times: dict[tuple[str, ...], list[datetime]] = {}
        for order in recent:
            for domain in {registered_domain(name) for name in order.names}:
                self.domains.setdefault(domain, []).append(order.at)
            self.name_set_times.setdefault(order.names, []).append(order.at)

    def over(self, names: Sequence[str]) -> Deferred | None:
        """The first limit one more order for `names` would exceed, if any."""
        domains = sorted({registered_domain(name) for name in names})
        counted = [
            (self.orders, PER_ACCOUNT, "new orders by this account"),
            *((self.domains.get(d, []), PER_DOMAIN, f"certificates for {d}") for d in domains),
            (self.name_set_times.get(tuple(sorted(names)), []), PER_NAME_SET,
             "certificates for exactly these names"),
        ]  # fmt: skip
        for times, (limit, window), what in counted:
            if len(times) >= limit:
                return Deferred(
                    f"{len(times)} {what} in the last {_span(window)}, where Let's Encrypt "
                    f"allows {limit}",
                    min(times) + window,
                )
        return None

    def count(self, names: Sequence[str]) -> None:
        self.orders.append(self.now)
        for domain in {registered_domain(name) for name in names}:
            self.domains.setdefault(domain, []).append(self.now)
        self.name_set_times.setdefault(tuple(sorted(names)), []).append(self.now)


def _span(window: timedelta) -> str:
    hours = int(window.total_seconds() // 3600)
    return f"{hours // 24} days" if hours >= 48 else f"{hours} h"


@dataclass(frozen=True)
class DomainUse:
    """How much of the per-registered-domain limit the last week's orders used."""

    domain: str
    used: int
    limit: int
    frees_at: datetime  # when the oldest counted order leaves the window


def domain_use(history: Sequence[PastOrder], now: datetime) -> list[DomainUse]:
    """Per registered domain, the new certificates counted against PER_DOMAIN, most used
    first (renewals naming what they replace are exempt, as in `within_budget`)."""
    ledger = _Ledger(history, now)
    limit, window = PER_DOMAIN
    used = [DomainUse(domain, len(times), limit, min(times) + window)
            for domain, times in ledger.domains.items()]  # fmt: skip
    return sorted(used, key=lambda use: (-use.used, use.domain))
