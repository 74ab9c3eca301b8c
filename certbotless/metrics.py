"""Prometheus metrics, for Alertmanager users and dashboards (served by `certbotless run`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from certbotless.model import PassReport, StoredCert

ACME_REQUESTS = Counter(
    "certbotless_acme_requests",
    "Requests to the ACME CA by outcome (ok, bad_nonce, transient, problem, rate_limited)",
    ["outcome"],
)
PASS_SECONDS = Histogram(
    "certbotless_pass_duration_seconds",
    "Duration of reconcile passes",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600),
)
ROLLOUTS = Counter(
    "certbotless_rollouts", "nginx rollouts by outcome (rolled, failed)", ["outcome"]
)
LAST_RENEWAL = Gauge(
    "certbotless_renewal_last_timestamp_seconds",
    "When a certificate last renewed successfully or failed to",
    ["name", "result"],
)
LAST_PASS = Gauge(
    "certbotless_pass_last_timestamp_seconds",
    "When the last reconcile pass ended (alert when it is old: the daemon is stuck or gone)",
)


class _CertificateExpiry(Collector):
    """Expiry of the certificates in use, with days left computed at scrape time."""

    def __init__(self) -> None:
        self.certificates: tuple[StoredCert, ...] = ()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        not_after = GaugeMetricFamily(
            "certbotless_certificate_not_after_timestamp_seconds",
            "notAfter of each certificate in use",
            labels=["name"],
        )
        days_left = GaugeMetricFamily(
            "certbotless_certificate_days_left",
            "Days until each certificate expires",
            labels=["name"],
        )
        now = datetime.now(UTC)
        for cert in self.certificates:
            not_after.add_metric([cert.name], cert.not_after.timestamp())
            days_left.add_metric([cert.name], (cert.not_after - now).total_seconds() / 86400)
        yield not_after
        yield days_left


_EXPIRY = _CertificateExpiry()
REGISTRY.register(_EXPIRY)


_renewal_series: set[tuple[str, str]] = set()


def observe_pass(report: PassReport, seconds: float) -> None:
    PASS_SECONDS.observe(seconds)
    _EXPIRY.certificates = report.certificates
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
    if report.rolled:
        ROLLOUTS.labels("rolled").inc()
    if report.rollout_error:
        ROLLOUTS.labels("failed").inc()


def serve(listen: tuple[str, int]) -> None:
    start_http_server(listen[1], addr=listen[0])
