"""Where the rig keeps its files, what it started, and the facts tests read."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

STATE_DIR = Path(os.environ.get("CERTBOTLESS_RIG_STATE", "/var/lib/certbotless-rig"))
CACHE_DIR = Path(os.environ.get("CERTBOTLESS_RIG_CACHE", "/var/cache/certbotless-rig"))
ENV_FILE = STATE_DIR / "env.json"


def say(message: str) -> None:
    print(f"rig: {message}", flush=True)


class RigError(RuntimeError):
    """A rig step failed; the message says which command and what it printed."""


def run(
    args: Sequence[str], check: bool = True, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        list(args), check=False, text=True, capture_output=True, env={**os.environ, **(env or {})}
    )
    if check and result.returncode != 0:
        raise RigError(f"{' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result


def spawn(
    name: str, args: Sequence[str], env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a long-running process in the background, its output in STATE_DIR/<name>.log."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    log = (STATE_DIR / f"{name}.log").open("ab")
    process = subprocess.Popen(
        list(args),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    return process


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s (see logs in {STATE_DIR})")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class StartedRecord:
    """The processes one invocation started, so that it stops those and nothing else."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def add(self, name: str, pid: int) -> None:
        if self.path is None:
            return
        started = self.read()
        started[name] = pid
        self.path.write_text(json.dumps(started))

    def read(self) -> dict[str, int]:
        if self.path is None or not self.path.exists() or not self.path.read_text().strip():
            return {}
        return {k: int(v) for k, v in json.loads(self.path.read_text()).items()}

    def stop_all(self) -> None:
        # Pebble before dockerd: reverse order of starting.
        for name, pid in reversed(list(self.read().items())):
            if not alive(pid):
                continue
            say(f"stopping {name} (pid {pid}), which this run started")
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 60
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.25)
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        if self.path is not None:
            self.path.write_text("{}")


def write_env(values: dict[str, str]) -> None:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    ENV_FILE.write_text(json.dumps(values, indent=2))


def read_env() -> dict[str, str]:
    if not ENV_FILE.exists():
        raise FileNotFoundError(f"{ENV_FILE} is missing: run `python3 -m rig up` first")
    return dict(json.loads(ENV_FILE.read_text()))
