"""The observability/ folder's files, and Debian's promtool (package `prometheus`)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from tests.support.paths import REPO

OBSERVABILITY = REPO / "observability"
DASHBOARD = OBSERVABILITY / "grafana-dashboard.json"


def promtool(*args: str, cwd: Path = OBSERVABILITY) -> subprocess.CompletedProcess[str]:
    found = shutil.which("promtool")
    assert found, "promtool (Debian's prometheus package, rig/install.py) is needed"
    return subprocess.run([found, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def dashboard_queries() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] == "certbotless" and board["panels"]
    return [target["expr"] for panel in board["panels"] for target in panel["targets"]]
