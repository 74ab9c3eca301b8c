"""The metrics as Prometheus scrapes them, after a pass with every kind of certificate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from certbotless.daemon import metrics
from certbotless.model import PassReport, PastOrder
from tests.web.status_data import listing


def scraped() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(REGISTRY).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_a_pass_shows_in_cert_managers_shapes() -> None:
    rows = listing()
    now = datetime.now(UTC)
    report = PassReport(
        certificates=tuple(row.cert for row in rows if row.cert and row.wanted),
        statuses=tuple(row.status for row in rows if row.status),
        rolled=False,
        rollout_error="Swarm rolled back the update",
        roll_seconds=7.5,
        orders=tuple(
            PastOrder(now - timedelta(hours=h), ("a.example.co.uk",), True) for h in range(3)
        ),
    )
    metrics.watch_edge(lambda: {("10.0.9.3", "n1"): 0, ("10.0.9.4", "n2"): 2})
    metrics.observe_pass(report, 12.0)
    found = scraped()
    shop = next(row.cert for row in rows if row.name == "shop")
    assert shop is not None
    name = (("name", "shop"),)
    assert found[("certbotless_certificate_expiration_timestamp_seconds", name)] == (
        shop.not_after.timestamp()
    )
    assert found[("certbotless_certificate_not_after_timestamp_seconds", name)] == (
        shop.not_after.timestamp()
    )
    ready = {
        labels[0][1]: value
        for (metric, labels), value in found.items()
        if metric == "certbotless_certificate_ready_status" and labels[1] == ("name", "api")
    }
    assert ready == {"False": 1.0, "True": 0.0, "Unknown": 0.0}  # failing
    assert found[("certbotless_certificate_ready_status", (("condition", "True"), *name))] == 1
    record = next(row.status for row in rows if row.name == "shop")
    assert record is not None and record.renew_at is not None
    assert found[("certbotless_certificate_renewal_timestamp_seconds", name)] == (
        record.renew_at.timestamp()
    )
    api = (("name", "api"), ("reason", "ValidationFailed"))
    assert found[("certbotless_certificate_failures", api)] == 3
    assert ("certbotless_certificate_next_attempt_timestamp_seconds", (("name", "api"),)) in found
    assert ("certbotless_certificate_next_attempt_timestamp_seconds", name) not in found
    domain = (("registered_domain", "example.co.uk"),)
    assert found[("certbotless_rate_limit_certificates_used", domain)] == 3
    assert found[("certbotless_rate_limit_certificates_limit", ())] == 50
    assert found[("certbotless_roll_failing", ())] == 1
    assert found[("certbotless_roll_duration_seconds_sum", ())] >= 7.5
    task = (("address", "10.0.9.4"), ("node", "n2"))
    assert found[("certbotless_edge_task_stale_certificates", task)] == 2
    issuers = {labels: value for (metric, labels), value in found.items()
               if metric == "certbotless_certificate_issuer"}  # fmt: skip
    assert issuers == {
        (("fallback", "0"), ("issuer", "letsencrypt"), *name): 1.0,
        (("fallback", "1"), ("issuer", "zerossl"), ("name", "old")): 1.0,
    }


def test_requests_and_orders_are_counted_per_issuer() -> None:
    before = scraped()
    metrics.AcmeRequestMetrics("zerossl").outcome("rate_limited")
    metrics.IssuerOrderMetrics().order("letsencrypt", "passed_over")
    after = scraped()
    for key in (("certbotless_issuer_requests_total",
                 (("issuer", "zerossl"), ("outcome", "rate_limited")))  ,
                ("certbotless_issuer_orders_total",
                 (("issuer", "letsencrypt"), ("outcome", "passed_over"))),
                ("certbotless_acme_requests_total", (("outcome", "rate_limited"),))):  # fmt: skip
        assert after[key] == before.get(key, 0) + 1


def test_acme_requests_are_timed_by_endpoint_without_identifiers() -> None:
    assert metrics.endpoint("https://acme-v02.api.letsencrypt.org/acme/order/1234/5678") == (
        "/acme/order"
    )
    assert metrics.endpoint("https://acme-v02.api.letsencrypt.org/acme/new-order") == (
        "/acme/new-order"
    )
    assert metrics.endpoint("https://localhost:14000/chalZ/Yb3yJkCk0Qx8Rz1p2Xq7aB") == "/chalZ"
    assert metrics.endpoint("https://localhost:14000/dir") == "/dir"
    metrics.AcmeRequestMetrics().request("post", "https://ca.test/acme/authz/99", "200", 0.3)
    found = scraped()
    labels = (("endpoint", "/acme/authz"), ("method", "POST"), ("status", "200"))
    assert found[("certbotless_acme_client_request_duration_seconds_count", labels)] >= 1
