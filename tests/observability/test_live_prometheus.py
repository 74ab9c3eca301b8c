"""Every Grafana panel's query and every alert expression, run by a real Prometheus (Debian's
`prometheus`, on a free loopback port, its own data directory) that scrapes certbotless's real
metrics endpoint after passes of every kind: each panel returns data, and the alerts that the
data calls for fire."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import yaml
from prometheus_client import start_http_server

from certbotless.daemon import metrics
from certbotless.model import PassReport, PastOrder
from tests.support.observability import dashboard_queries
from tests.support.paths import REPO
from tests.support.ports import unused_port
from tests.web.status_data import listing

SCRAPE_SECONDS = 1


def passes_of_every_kind() -> list[PassReport]:
    rows = listing()
    now = datetime.now(UTC)
    orders = tuple(
        PastOrder(now - timedelta(hours=h), ("shop.example.test",), True) for h in range(4)
    )
    base = PassReport(
        certificates=tuple(row.cert for row in rows if row.cert and row.wanted),
        statuses=tuple(row.status for row in rows if row.status),
        orders=orders,
    )
    rolled = replace(base, rolled=True, roll_seconds=3.0, issued=("shop",))
    failed = replace(base, rollout_error="rolled back", roll_seconds=9.0,
                     failed={"api": "unauthorized"})  # fmt: skip
    return [rolled, failed]


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("prometheus")
    assert binary, "prometheus (Debian's package, rig/install.py) is needed"
    server, _ = start_http_server(0, addr="127.0.0.1")
    target = f"127.0.0.1:{server.server_address[1]}"
    config = {
        "global": {"scrape_interval": f"{SCRAPE_SECONDS}s", "evaluation_interval": "1s"},
        "rule_files": [str(REPO / "observability" / "alerts.yml")],
        "scrape_configs": [{"job_name": "certbotless", "static_configs": [{"targets": [target]}]}],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = unused_port()
    process = subprocess.Popen(
        [binary, f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("w"),
    )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)
        server.shutdown()
        server.server_close()


def query(prometheus: str, expr: str) -> list[dict[str, object]]:
    answer = requests.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10)
    body = answer.json()
    assert body["status"] == "success", (expr, body)
    return list(body["data"]["result"])


def test_every_panel_returns_data_from_a_real_scrape(prometheus: str, figure) -> None:  # type: ignore[no-untyped-def]
    metrics.watch_edge(lambda: {("10.0.9.3", "n1"): 0, ("10.0.9.4", "n2"): 1})
    started = time.monotonic()
    deadline = started + 60
    empty: list[str] = []
    while time.monotonic() < deadline:
        # Passes and ACME requests keep coming, so rates and quantiles have data.
        for report in passes_of_every_kind():
            metrics.observe_pass(report, 2.5)
        for status in ("200", "201", "429"):
            metrics.AcmeRequestMetrics().request(
                "POST", "https://ca.test/acme/new-order", status, 0.2
            )
        time.sleep(SCRAPE_SECONDS)
        try:
            empty = [expr for expr in dashboard_queries() if not query(prometheus, expr)]
        except requests.ConnectionError:
            continue  # Prometheus still starting
        if not empty and time.monotonic() - started > 5 * SCRAPE_SECONDS:
            break
    assert empty == []
    figure(f"dashboard: {len(dashboard_queries())} queries returned data from a live "
           f"Prometheus after {time.monotonic() - started:.0f} s")  # fmt: skip


def test_the_alerts_the_data_calls_for_fire(prometheus: str) -> None:
    metrics.watch_edge(lambda: {("10.0.9.4", "n2"): 1})
    for report in passes_of_every_kind():  # the last one failed its roll
        metrics.observe_pass(report, 2.5)
    deadline = time.monotonic() + 60
    alerts: set[str] = set()
    while time.monotonic() < deadline and "CertbotlessCertificateExpiringSoon" not in alerts:
        time.sleep(SCRAPE_SECONDS)
        try:
            found = query(prometheus, "ALERTS")
        except requests.ConnectionError:
            continue
        alerts = {str(a["metric"]["alertname"]) for a in found}  # type: ignore[index]
    # Pending or firing (the rules wait minutes to an hour before firing): each was evaluated
    # true on the scraped data. "old" expires in 3 days, "api" is failing, the roll failed,
    # an edge task is stale; the sidecar is up and just passed.
    assert {"CertbotlessCertificateExpiringSoon", "CertbotlessRenewalFailing",
            "CertbotlessRollFailed", "CertbotlessEdgeTaskStale"} <= alerts  # fmt: skip
    assert not alerts & {"CertbotlessDown", "CertbotlessPassesStopped",
                         "CertbotlessCertificateExpired"}  # fmt: skip
