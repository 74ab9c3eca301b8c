"""dockerd in swarm mode, started only when it is not already running."""

from __future__ import annotations

import json
from pathlib import Path

from rig.state import StartedRecord, alive, run, say, spawn, wait_until

GWBRIDGE = "docker_gwbridge"
DOCKER_PIDFILE = Path("/var/run/docker.pid")


def docker_answers() -> bool:
    return run(["docker", "info"], check=False).returncode == 0


def ensure_dockerd(record: StartedRecord) -> None:
    if docker_answers():
        say("dockerd already running")
        return
    if DOCKER_PIDFILE.exists():
        text = DOCKER_PIDFILE.read_text().strip()
        if not text.isdigit() or not alive(int(text)):
            DOCKER_PIDFILE.unlink()  # left by a dockerd that was killed
    say("starting dockerd (vfs storage)")
    process = spawn("dockerd", ["dockerd", "--storage-driver=vfs"])
    record.add("dockerd", process.pid)
    wait_until(docker_answers, 90, "dockerd")


def ensure_swarm() -> None:
    state = run(["docker", "info", "-f", "{{.Swarm.LocalNodeState}}"]).stdout.strip()
    if state == "active":
        say("swarm already active")
        return
    say("initialising a single-node swarm")
    run(["docker", "swarm", "init", "--advertise-addr", "127.0.0.1"])


def ensure_gwbridge() -> str:
    """The bridge through which containers reach the host; made now so its address is known."""
    if run(["docker", "network", "inspect", GWBRIDGE], check=False).returncode != 0:
        run(
            [
                "docker",
                "network",
                "create",
                "--driver",
                "bridge",
                "--opt",
                f"com.docker.network.bridge.name={GWBRIDGE}",
                "--opt",
                "com.docker.network.bridge.enable_icc=false",
                "--opt",
                "com.docker.network.bridge.enable_ip_masquerade=true",
                GWBRIDGE,
            ]
        )
    config = json.loads(run(["docker", "network", "inspect", GWBRIDGE]).stdout)[0]
    return str(config["IPAM"]["Config"][0]["Gateway"])
