"""observability/alerts.yml through Debian's promtool (package `prometheus`, rig/install.py):
the rules load, their unit tests pass, and a wrong expectation fails (so the tests test)."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from tests.support.observability import OBSERVABILITY, promtool

ALERTS = {"CertbotlessCertificateExpiringSoon", "CertbotlessCertificateExpired",
          "CertbotlessRenewalFailing", "CertbotlessRollFailed", "CertbotlessDown",
          "CertbotlessPassesStopped", "CertbotlessEdgeTaskStale",
          "CertbotlessFallbackIssuer"}  # fmt: skip


def test_the_rules_load_and_their_unit_tests_pass() -> None:
    checked = promtool("check", "rules", "alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in checked.stdout
    tested = promtool("test", "rules", "alerts_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_is_tested_firing() -> None:
    rules = yaml.safe_load((OBSERVABILITY / "alerts.yml").read_text())
    defined = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert defined == ALERTS
    tests = yaml.safe_load((OBSERVABILITY / "alerts_test.yml").read_text())["tests"]
    firing = {case["alertname"] for test in tests for case in test["alert_rule_test"]
              if case["exp_alerts"]}  # fmt: skip
    assert firing == ALERTS


def test_a_wrong_expectation_fails(tmp_path: Path) -> None:
    shutil.copy(OBSERVABILITY / "alerts.yml", tmp_path)
    text = (OBSERVABILITY / "alerts_test.yml").read_text()
    (tmp_path / "alerts_test.yml").write_text(text.replace("eval_time: 12m", "eval_time: 3m"))
    tested = promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert tested.returncode != 0
    assert "FAILED" in tested.stdout + tested.stderr
