"""The CA's rate limits, kept by us: an order that would exceed one of Let's Encrypt's limits is
deferred, with its reason, instead of being refused by the CA (and counted against us).

Limits (https://letsencrypt.org/docs/rate-limits/): 50 new certificates per registered domain
per 7 days, 5 per exact set of names per 7 days, 300 new orders per account per 3 hours.
Renewals that name the certificate they replace (ARI `replaces`) are exempt from all three, as
at Let's Encrypt. Registered domains come from the Public Suffix List bundled with the
`publicsuffixlist` package (no network).

Within the account's limits, each claimant has a share (`OrderShare`, CERTBOTLESS_ORDERS_PER_
CLAIMANT), with any CA: the claimant of a certificate is the service the claims ledger records as
its name's owner (its stack where the operator trusts stacks), never what a service says of
itself. A failed order counts several times against its own claimant, so a claimant whose orders
keep failing waits, and the others' orders still fit. Orders are taken in turns, one per claimant,
so that one claimant's many certificates do not come before everyone else's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cache

from publicsuffixlist import PublicSuffixList

from certbotless.labels.claims import identity, name_key
from certbotless.model import CertSpec, Deferred, PastOrder, Plan, ServiceInfo, is_ip_address
from certbotless.setting_values import PREFIX, OrderShare
from certbotless.settings import LETSENCRYPT_PRODUCTION

PER_DOMAIN = (50, timedelta(days=7))
PER_NAME_SET = (5, timedelta(days=7))
PER_ACCOUNT = (300, timedelta(hours=3))
KEPT_FOR = timedelta(days=7)  # the longest window: older orders are forgotten
NO_SHARES = OrderShare(orders=None)


@cache
def _suffixes() -> PublicSuffixList:
    return PublicSuffixList()


def registered_domain(name: str) -> str:
    """example.co.uk for a.b.example.co.uk; a name that is itself a public suffix, or an IP
    address, counts as its own."""
    if is_ip_address(name):
        return name
    return _suffixes().privatesuffix(name.rstrip(".").lower()) or name


def claimant_of(service: ServiceInfo) -> str:
    """Whose share a service's orders use: its stack where the operator trusts stacks
    (CERTBOTLESS_TRUST_STACK_NAMESPACE), else the service itself."""
    return f"stack {service.trusted_stack}" if service.trusted_stack else f"service {service.name}"


def claimants(
    specs: Iterable[CertSpec], claims: Mapping[str, str], services: Iterable[ServiceInfo]
) -> dict[str, str]:
    """Each certificate's claimant: the owner of its name as the claims ledger settled it
    (`Discovery.claims`). A name no service owns (`certbotless issue`) is the operator's: none."""
    by_identity = {identity(service): service for service in services}
    found = {}
    for spec in specs:
        owner = by_identity.get(claims.get(name_key(spec.name), ""))
        if owner is not None:
            found[spec.name] = claimant_of(owner)
    return found


def within_budget(
    plan: Plan,
    history: Sequence[PastOrder],
    replaces: Mapping[str, str],
    now: datetime,
    share: OrderShare = NO_SHARES,
    owners: Mapping[str, str] | None = None,
) -> tuple[Plan, dict[str, Deferred]]:
    """The plan without the orders that would exceed a limit (taken in turns per claimant,
    `owners`: name → claimant, each one that fits counted against the next), and why each other
    one waits. The claimants' shares hold with any CA; the account's limits only with Let's
    Encrypt's production CA (its staging CA's are far higher, other CAs' are their own)."""
    owners = owners or {}
    account = _Ledger(history, now) if plan.directory_url == LETSENCRYPT_PRODUCTION else None
    shares = _Shares(history, share, now)
    kept: set[str] = set()
    deferred: dict[str, Deferred] = {}
    for spec in _in_turns(plan.to_issue, owners):
        claimant = owners.get(spec.name, "")
        if spec.name in replaces:
            kept.add(spec.name)
            continue
        over = shares.over(claimant) or (account.over(spec.domains) if account else None)
        if over is not None:
            deferred[spec.name] = over
            continue
        shares.count(claimant)
        if account is not None:
            account.count(spec.domains)
        kept.add(spec.name)
    to_issue = tuple(spec for spec in plan.to_issue if spec.name in kept)
    return replace(plan, to_issue=to_issue), deferred


def _in_turns(specs: Sequence[CertSpec], owners: Mapping[str, str]) -> list[CertSpec]:
    """Each claimant's first certificate, then each one's second, and so on (plan order within
    a turn)."""
    turns: Counter[str] = Counter()
    ranked = []
    for index, spec in enumerate(specs):
        claimant = owners.get(spec.name, "")
        ranked.append((turns[claimant], index, spec))
        turns[claimant] += 1
    return [spec for _, _, spec in sorted(ranked, key=lambda r: (r[0], r[1]))]


@dataclass(frozen=True)
class ClaimantUse:
    """How much of its share a claimant's orders used in the share's window."""

    claimant: str
    orders: int
    failed: int
    used: int  # each failed order counted `failed_weight` times
    limit: int
    frees_at: datetime | None  # when its share fits one more order again (None: it does now)


class _Shares:
    """Each claimant's orders in the share's window, updated as orders are planned."""

    def __init__(self, history: Sequence[PastOrder], share: OrderShare, now: datetime) -> None:
        self.share = share
        self.now = now
        self.orders: dict[str, list[PastOrder]] = {}
        for order in sorted(history, key=lambda o: o.at):
            if order.claimant and not order.renewal and order.at > now - share.window:
                self.orders.setdefault(order.claimant, []).append(order)

    def _weight(self, order: PastOrder) -> int:
        return 1 if order.issued else self.share.failed_weight

    def use(self, claimant: str) -> ClaimantUse:
        orders = self.orders.get(claimant, [])
        used = sum(self._weight(order) for order in orders)
        limit = self.share.orders or 0
        frees_at, left = None, used
        for order in orders:  # oldest first: when enough has left the window for one more
            if left + 1 <= limit:
                break
            left -= self._weight(order)
            frees_at = order.at + self.share.window
        failed = sum(1 for order in orders if not order.issued)
        return ClaimantUse(claimant, len(orders), failed, used, limit, frees_at)

    def over(self, claimant: str) -> Deferred | None:
        if not claimant or self.share.orders is None:
            return None
        use = self.use(claimant)
        if use.frees_at is None:
            return None
        return Deferred(
            f"{claimant} used {use.used} of its share of {use.limit} orders in the last "
            f"{_span(self.share.window)} ({use.orders} orders, {use.failed} failed, each failed "
            f"one counting {self.share.failed_weight}; {PREFIX}ORDERS_PER_CLAIMANT)",
            use.frees_at,
        )

    def count(self, claimant: str) -> None:
        if claimant:
            self.orders.setdefault(claimant, []).append(PastOrder(self.now, (), True))


def claimant_use(
    history: Sequence[PastOrder], share: OrderShare, now: datetime
) -> list[ClaimantUse]:
    """Each claimant with orders in the share's window, the most used share first."""
    if share.orders is None:
        return []
    shares = _Shares(history, share, now)
    used = [shares.use(claimant) for claimant in shares.orders]
    return sorted(used, key=lambda use: (-use.used, use.claimant))


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
    minutes = int(window.total_seconds() // 60)
    if minutes < 120 and minutes % 60:
        return f"{minutes} min"
    hours = minutes // 60
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
