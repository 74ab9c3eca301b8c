"""observability/grafana-dashboard.json: importable JSON whose every query is valid PromQL
(promtool checks it as a recording rule) and names only metrics certbotless exports."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

from certbotless.daemon import metrics  # noqa: F401  (registers every certbotless metric)
from tests.support.observability import dashboard_queries, promtool


def exported() -> set[str]:
    """Every series name certbotless can export (histograms' and counters' too)."""
    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("certbotless_"):
            suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
            names |= {family.name + s for s in suffixes.get(family.type, ("",))}
    return names


def test_every_panel_query_is_valid_promql(tmp_path: Path) -> None:
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{number}", "expr": expr}
        for number, expr in enumerate(dashboard_queries())
    ]}]}  # fmt: skip
    (tmp_path / "queries.yml").write_text(yaml.safe_dump(rules))
    checked = promtool("check", "rules", "queries.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_panel_reads_metrics_certbotless_exports() -> None:
    named = {
        name for expr in dashboard_queries() for name in re.findall(r"\bcertbotless_[a-z_]+", expr)
    }
    assert named and named <= exported()
