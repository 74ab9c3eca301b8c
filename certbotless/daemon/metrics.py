"""Prometheus metrics, for Alertmanager users and dashboards (served by `certbotless run`).

Where cert-manager has a metric of the same meaning, the shape is its own
(`certmanager_certificate_expiration_timestamp_seconds` → `certbotless_certificate_…`), so
that its dashboards and alerts carry over with a prefix changed. Per-certificate values are
computed at scrape time from the last pass's status records (docs/alerts-and-metrics.md lists
them all).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from urllib.parse import urlsplit

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from certbotless import __version__
from certbotless.model import Condition, PassReport
from certbotless.passes.budget import PER_DOMAIN, domain_use

ACME_REQUESTS = Counter(
    "certbotless_acme_requests",
    "Requests to the ACME CA by outcome (ok, bad_nonce, transient, problem, rate_limited)",
    ["outcome"],
)
ISSUER_REQUESTS = Counter(
    "certbotless_issuer_requests",
    "Requests to each issuer of CERTBOTLESS_ACME_ISSUERS by outcome",
    ["issuer", "outcome"],
)
ISSUER_ORDERS = Counter(
    "certbotless_issuer_orders",
    "Certificates asked of each issuer by outcome: issued, passed_over (the next issuer was "
    "asked: unreachable, rate limited, name refused, CAA, no account) or failed",
    ["issuer", "outcome"],
)
ACME_REQUEST_SECONDS = Histogram(
    "certbotless_acme_client_request_duration_seconds",
    "Duration of each HTTP request to the ACME CA, by endpoint (the URL's path without its "
    "identifiers), method and HTTP status ('error': no answer)",
    ["endpoint", "method", "status"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
PASS_SECONDS = Histogram(
    "certbotless_pass_duration_seconds",
    "Duration of reconcile passes",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600),
)
ROLL_SECONDS = Histogram(
    "certbotless_roll_duration_seconds",
    "Duration of the edge's rolls (rolled or failed)",
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300),
)
ROLLOUTS = Counter(
    "certbotless_rollouts", "nginx rollouts by outcome (rolled, failed)", ["outcome"]
)
ROLL_FAILING = Gauge(
    "certbotless_roll_failing",
    "1 while the last roll failed (or Swarm rolled it back) and no roll succeeded since",
)
LAST_RENEWAL = Gauge(
    "certbotless_renewal_last_timestamp_seconds",
    "When a certificate last renewed successfully or failed to",
    ["name", "result"],
)
# The release running, as Prometheus exporters say it (`…_build_info`, always 1): join on it to
# see which version each series came from, or alert on a mixed fleet.
BUILD_INFO = Gauge(
    "certbotless_build_info", "The certbotless release running (always 1)", ["version"]
)
BUILD_INFO.labels(__version__).set(1)
LAST_PASS = Gauge(
    "certbotless_pass_last_timestamp_seconds",
    "When the last reconcile pass ended (alert when it is old: the daemon is stuck or gone)",
)
# cert-manager's condition label: Ready → "True", Failing → "False", Issuing → "Unknown".
_READY = {Condition.READY: "True", Condition.FAILING: "False", Condition.ISSUING: "Unknown"}
_ID_SEGMENT = re.compile(r"[0-9]|^[A-Za-z0-9_-]{16,}$")


def endpoint(url: str) -> str:
    """The URL's path without identifiers (segments with a digit or of 16+ characters), so
    that the series stay few: /acme/order/123/456 → /acme/order."""
    segments = [s for s in urlsplit(url).path.split("/") if s and not _ID_SEGMENT.search(s)]
    return "/" + "/".join(segments[:2])


class AcmeRequestMetrics:
    """`acme.network.AcmeRequestObserver` for the daemon's metrics, of one issuer."""

    def __init__(self, issuer: str = "") -> None:
        self.issuer = issuer

    def request(self, method: str, url: str, status: str, seconds: float) -> None:
        ACME_REQUEST_SECONDS.labels(endpoint(url), method.upper(), status).observe(seconds)

    def outcome(self, outcome: str) -> None:
        ACME_REQUESTS.labels(outcome).inc()
        ISSUER_REQUESTS.labels(self.issuer, outcome).inc()


class IssuerOrderMetrics:
    """`acme.issuer_chain.OrderObserver` for the daemon's metrics."""

    def order(self, issuer: str, outcome: str) -> None:
        ISSUER_ORDERS.labels(issuer, outcome).inc()


class _Certificates(Collector):
    """Per-certificate, budget and edge metrics from the last pass, computed when scraped."""

    def __init__(self) -> None:
        self.report = PassReport()
        self.edge_stale: Callable[[], dict[tuple[str, str], int] | None] = lambda: None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = datetime.now(UTC)
        yield from self._certificates(now)
        yield from self._records()
        yield from self._budget(now)
        yield from self._edge()

    def _certificates(self, now: datetime) -> Iterator[GaugeMetricFamily]:
        expiration = GaugeMetricFamily(
            "certbotless_certificate_expiration_timestamp_seconds",
            "notAfter of each certificate in use (cert-manager's shape)", labels=["name"],
        )  # fmt: skip
        not_after = GaugeMetricFamily(
            "certbotless_certificate_not_after_timestamp_seconds",
            "notAfter of each certificate in use (the same as "
            "certbotless_certificate_expiration_timestamp_seconds, kept for existing alerts)",
            labels=["name"],
        )
        days_left = GaugeMetricFamily(
            "certbotless_certificate_days_left",
            "Days until each certificate expires", labels=["name"],
        )  # fmt: skip
        for cert in self.report.certificates:
            expiration.add_metric([cert.name], cert.not_after.timestamp())
            not_after.add_metric([cert.name], cert.not_after.timestamp())
            days_left.add_metric([cert.name], (cert.not_after - now).total_seconds() / 86400)
        yield from (expiration, not_after, days_left)

    def _records(self) -> Iterator[GaugeMetricFamily]:
        ready = GaugeMetricFamily(
            "certbotless_certificate_ready_status",
            "1 for the certificate's Ready condition (True, False, Unknown), 0 for the others "
            "(cert-manager's shape)", labels=["name", "condition"],
        )  # fmt: skip
        renewal = GaugeMetricFamily(
            "certbotless_certificate_renewal_timestamp_seconds",
            "When the certificate in use comes due (ARI window or 1/3 of the lifetime left)",
            labels=["name"],
        )
        failures = GaugeMetricFamily(
            "certbotless_certificate_failures",
            "Consecutive failed attempts (0: not failing)", labels=["name", "reason"],
        )  # fmt: skip
        next_attempt = GaugeMetricFamily(
            "certbotless_certificate_next_attempt_timestamp_seconds",
            "Back-off: not retried before this (only failing certificates)", labels=["name"],
        )  # fmt: skip
        issuer = GaugeMetricFamily(
            "certbotless_certificate_issuer",
            "1 for the issuer of CERTBOTLESS_ACME_ISSUERS the version in use came from, with "
            "how many issuers before it were passed over", labels=["name", "issuer", "fallback"],
        )  # fmt: skip
        for record in self.report.statuses:
            for condition in ("True", "False", "Unknown"):
                ready.add_metric([record.name, condition],
                                 1.0 if _READY[record.condition] == condition else 0.0)  # fmt: skip
            if record.renew_at is not None:
                renewal.add_metric([record.name], record.renew_at.timestamp())
            reason = record.reason.value if record.reason else ""
            failures.add_metric([record.name, reason], record.failures)
            if record.condition is Condition.FAILING and record.next_attempt is not None:
                next_attempt.add_metric([record.name], record.next_attempt.timestamp())
            if record.issuer:
                issuer.add_metric([record.name, record.issuer, str(len(record.skipped))], 1.0)
        yield from (ready, renewal, failures, next_attempt, issuer)

    def _budget(self, now: datetime) -> Iterator[GaugeMetricFamily]:
        used = GaugeMetricFamily(
            "certbotless_rate_limit_certificates_used",
            "New certificates per registered domain in the CA's window (renewals naming what "
            "they replace are exempt)", labels=["registered_domain"],
        )  # fmt: skip
        for use in domain_use(self.report.orders, now):
            used.add_metric([use.domain], use.used)
        limit = GaugeMetricFamily(
            "certbotless_rate_limit_certificates_limit",
            "Let's Encrypt's limit of new certificates per registered domain per 7 days",
        )
        limit.add_metric([], PER_DOMAIN[0])
        yield from (used, limit)

    def _edge(self) -> Iterator[GaugeMetricFamily]:
        stale = self.edge_stale() or {}  # None: not asked yet (no series)
        found = GaugeMetricFamily(
            "certbotless_edge_task_stale_certificates",
            "Certificates an edge task serves another serial of than the one in use",
            labels=["address", "node"],
        )
        for (address, node), count in sorted(stale.items()):
            found.add_metric([address, node], count)
        yield found


_CERTIFICATES = _Certificates()
REGISTRY.register(_CERTIFICATES)


_renewal_series: set[tuple[str, str]] = set()


def observe_pass(report: PassReport, seconds: float) -> None:
    PASS_SECONDS.observe(seconds)
    _CERTIFICATES.report = report
    now = time.time()
    LAST_PASS.set(now)
    for name, result in [(n, "success") for n in report.issued] + [
        (n, "failure") for n in report.failed
    ]:
        LAST_RENEWAL.labels(name, result).set(now)
        _renewal_series.add((name, result))
    # Certificates nobody wants any more leave the metrics, so a long-lived daemon stays small.
    wanted = {cert.name for cert in report.certificates} | set(report.failed)
    for name, result in [series for series in _renewal_series if series[0] not in wanted]:
        LAST_RENEWAL.remove(name, result)
        _renewal_series.discard((name, result))
    if report.rolled or report.rollout_error:
        ROLL_SECONDS.observe(report.roll_seconds)
        ROLL_FAILING.set(1 if report.rollout_error else 0)
    if report.rolled:
        ROLLOUTS.labels("rolled").inc()
    if report.rollout_error:
        ROLLOUTS.labels("failed").inc()


def watch_edge(stale: Callable[[], dict[tuple[str, str], int] | None]) -> None:
    """Where the edge metrics come from: (task address, node) → stale certificates."""
    _CERTIFICATES.edge_stale = stale


def serve(listen: tuple[str, int]) -> None:
    start_http_server(listen[1], addr=listen[0])
