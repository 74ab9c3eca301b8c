"""What the status page shows, computed from what the sidecar knows: the status records (through
`views.listing`), the routes, the week's orders and the daemon's last passes. No I/O here: the
`StatusSource` brings it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from certbotless import __version__
from certbotless.daemon.alerts import Alert, alerts_for
from certbotless.daemon.pass_history import PassRecord
from certbotless.edge.watch import EdgeServing
from certbotless.model import Discovery, Listed, PastOrder, Route
from certbotless.ops.views import listed_json, listed_status
from certbotless.passes.budget import ClaimantUse, DomainUse, claimant_use, domain_use
from certbotless.setting_values import OrderShare
from certbotless.web.routers import RoutersView, routers_view

API_VERSION = 1
# Most urgent first: what needs someone, then what will soon, then the rest.
URGENCY = {"expired": 0, "expiring": 1, "failed": 2, "abandoned": 3, "renewing": 4, "ok": 5,
           "unwanted": 6}  # fmt: skip
STATES = {
    "all": set(URGENCY),
    "problems": {"expired", "expiring", "failed", "abandoned"},
    "failing": {"failed", "abandoned"},
    "expiring": {"expired", "expiring"},
    "ok": {"ok", "renewing"},
}


class StatusSource(Protocol):
    """Everything the page reads; `web.source.AppStatusSource` is the real one."""

    def listing(self) -> list[Listed]: ...

    def discovery(self) -> Discovery:
        """The routes, certificates and label problems the services' labels give."""

    def orders(self) -> list[PastOrder]: ...

    def order_share(self) -> OrderShare:
        """Each claimant's share of the orders (CERTBOTLESS_ORDERS_PER_CLAIMANT)."""

    def passes(self) -> list[PassRecord]: ...

    def edge(self) -> EdgeServing | None:
        """What each edge task served when last asked (None: not asked yet, or no edge)."""


@dataclass(frozen=True)
class Filter:
    """The page's query string: `q` searches names, domains, services, serials and errors;
    `state` is one of STATES; `router` searches the routers and the label problems."""

    q: str = ""
    state: str = "all"
    router: str = ""

    @classmethod
    def from_query(cls, query: dict[str, list[str]]) -> Filter:
        state = (query.get("state") or ["all"])[0]
        return cls((query.get("q") or [""])[0].strip()[:200],
                   state if state in STATES else "all",
                   (query.get("router") or [""])[0].strip()[:200])  # fmt: skip


@dataclass(frozen=True)
class Row:
    listed: Listed
    status: str  # as `certbotless list` words it
    services: tuple[str, ...]  # the services whose routes it serves
    days_left: float | None
    stale: dict[str, str]  # edge task address → the other serial it serves

    def matches(self, wanted: Filter) -> bool:
        if self.status not in STATES[wanted.state]:
            return False
        if not wanted.q:
            return True
        cert, record = self.listed.cert, self.listed.status
        words = [self.listed.name, *self.services]
        words += [*cert.domains, cert.serial] if cert else []
        words += [*record.domains, record.message] if record else []
        return wanted.q.lower() in " ".join(words).lower()


@dataclass(frozen=True)
class Roll:
    ended: datetime
    seconds: float
    error: str | None  # None: rolled


@dataclass(frozen=True)
class Overview:
    now: datetime
    rows: tuple[Row, ...]  # every certificate, most urgent first
    shown: tuple[Row, ...]  # those the filter keeps
    counts: dict[str, int]
    passes: tuple[PassRecord, ...]
    rolls: tuple[Roll, ...]
    alerts: tuple[Alert, ...]
    budget: tuple[DomainUse, ...]
    claimants: tuple[ClaimantUse, ...]  # each claimant's use of its share of the orders
    share: OrderShare
    filter: Filter
    edge: EdgeServing | None
    routers: RoutersView

    def stale_on(self, address: str) -> int:
        """How many certificates the edge task at `address` serves a stale version of."""
        return sum(1 for row in self.rows if address in row.stale)

    def certificates_json(self) -> list[dict[str, object]]:
        """As `certbotless list --json` prints them: by name."""
        rows = sorted(self.rows, key=lambda row: row.listed.name)
        return [listed_json(row.listed, self.now) for row in rows]


def overview(source: StatusSource, wanted: Filter, now: datetime) -> Overview:
    found = source.discovery()
    edge = source.edge()
    listing = source.listing()
    rows = sorted((_row(row, found.routes, edge, now) for row in listing), key=_urgency)
    passes = tuple(source.passes())
    orders, share = source.orders(), source.order_share()
    counts = {state: sum(1 for row in rows if row.status in states)
              for state, states in STATES.items()}  # fmt: skip
    return Overview(
        now=now,
        rows=tuple(rows),
        shown=tuple(row for row in rows if row.matches(wanted)),
        counts=counts,
        passes=passes,
        rolls=tuple(
            Roll(p.ended, p.report.roll_seconds, p.report.rollout_error)
            for p in passes
            if p.report.rolled or p.report.rollout_error
        ),
        alerts=_open_alerts(passes, now),
        budget=tuple(domain_use(orders, now)),
        claimants=tuple(claimant_use(orders, share, now)),
        share=share,
        filter=wanted,
        edge=edge,
        routers=routers_view(found, listing, wanted.router),
    )


def _row(listed: Listed, routes: Sequence[Route], edge: EdgeServing | None, now: datetime) -> Row:
    domains = set(listed.cert.domains if listed.cert else ())
    domains |= set(listed.status.domains if listed.status else ())
    services = sorted({route.service for route in routes if domains & set(route.hosts)})
    cert = listed.cert
    days = None if cert is None else (cert.not_after - now).total_seconds() / 86400
    stale = {} if edge is None else edge.stale(listed.name)
    return Row(listed, listed_status(listed, now), tuple(services), days, stale)


def _urgency(row: Row) -> tuple[int, float, str]:
    return (URGENCY[row.status], row.days_left if row.days_left is not None else -1.0,
            row.listed.name)  # fmt: skip


def _open_alerts(passes: Sequence[PassRecord], now: datetime) -> tuple[Alert, ...]:
    """What the alerter holds open after the last pass (the same rules, recomputed)."""
    if not passes:
        return ()
    last = passes[0].report
    return tuple(alerts_for(last, last.certificates, now, last.next_attempt or now))


def pass_json(record: PassRecord) -> dict[str, object]:
    report = record.report
    return {
        "ended": record.ended.isoformat(),
        "seconds": round(record.seconds, 3),
        "issued": list(report.issued),
        "failed": dict(report.failed),
        "rolled": report.rolled,
        "roll_seconds": round(report.roll_seconds, 3),
        "rollout_error": report.rollout_error,
        "label_problems": [str(problem) for problem in report.problems],
    }


def _edge_json(view: Overview) -> dict[str, object] | None:
    if view.edge is None:
        return None
    tasks = [{"address": t.address, "node": t.node, "state": t.state} for t in view.edge.tasks]
    return {
        "checked": view.edge.checked.isoformat(),
        "tasks": tasks,
        "stale": {row.listed.name: row.stale for row in view.rows if row.stale},
    }


def overview_json(view: Overview) -> dict[str, object]:
    """GET /api/v1/overview: everything the page shows."""
    return {
        "version": API_VERSION,
        "release": __version__,  # certbotless's own version (`version` is the API's)
        "now": view.now.isoformat(),
        "certificates": view.certificates_json(),
        "passes": [pass_json(record) for record in view.passes],
        "alerts": [{"kind": a.kind, "title": a.title, "detail": a.text} for a in view.alerts],
        "edge": _edge_json(view),
        "budget": [
            {
                "registered_domain": u.domain,
                "used": u.used,
                "limit": u.limit,
                "frees_at": u.frees_at.isoformat(),
            }
            for u in view.budget
        ],
        "claimants": [
            {
                "claimant": u.claimant,
                "orders": u.orders,
                "failed": u.failed,
                "used": u.used,
                "limit": u.limit,
                "window_seconds": int(view.share.window.total_seconds()),
                "failed_weight": view.share.failed_weight,
                "frees_at": u.frees_at.isoformat() if u.frees_at else None,
            }
            for u in view.claimants
        ],
    }
