"""Install what the rig and the tests need: Debian packages, and the project in .venv."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

from rig.state import RigError, run, say

APT_PACKAGES = [
    "docker.io",
    "pebble",
    "nginx-light",
    # njs for bookworm's nginx, which runs Traefik's cases needing it (certbotless/edge/njs.py).
    "libnginx-mod-http-js",
    # Runs haproxy/docker-api-proxy.cfg in its integration test.
    "haproxy",
    "debootstrap",
    "curl",
    "openssl",
    "iptables",
    # DNS-01 tests: BIND updated with TSIG, PowerDNS (SQLite) driven through dns-lexicon.
    "bind9",
    "bind9-utils",
    "pdns-server",
    "pdns-backend-sqlite3",
    "sqlite3",
    # The status page's browser test (Selenium drives the system browser: no download).
    "chromium",
    "chromium-driver",
    # promtool, for the alerting rules' tests (observability/).
    "prometheus",
    # Caddy's ACME server: a second CA implementation for the engine's tests (rig/caddy.py).
    "caddy",
]
REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv"
STAMP = VENV / ".certbotless-pyproject.sha256"


def missing_packages() -> list[str]:
    missing = []
    for package in APT_PACKAGES:
        status = run(["dpkg-query", "-W", "-f=${Status}", package], check=False).stdout
        if "install ok installed" not in status:
            missing.append(package)
    return missing


def install_apt() -> None:
    missing = missing_packages()
    if not missing:
        say("Debian packages present")
        return
    say(f"installing {' '.join(missing)} with apt-get")
    env_prefix = ["env", "DEBIAN_FRONTEND=noninteractive"]
    subprocess.run([*env_prefix, "apt-get", "update", "-q"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(
        [*env_prefix, "apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def install_venv() -> None:
    wanted = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted and (VENV / "bin" / "pytest").exists():
        say(".venv up to date")
        return
    if not (VENV / "bin" / "python").exists():
        say("creating .venv")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    say("installing certbotless[test] into .venv")
    subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "-e", f"{REPO}[test]"], check=True)
    STAMP.write_text(wanted)


def install() -> None:
    if shutil.which("apt-get") is None:
        raise RigError("apt-get not found; the rig needs a Debian machine")
    install_apt()
    install_venv()
