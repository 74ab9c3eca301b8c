"""`python3 -m rig install|up|images|env|down|demo|cluster`: the test rig's commands."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rig.state import RigError, StartedRecord, read_env, say, write_env


def up(record: StartedRecord) -> dict[str, str]:
    from rig.engine import ensure_dockerd, ensure_gwbridge, ensure_swarm
    from rig.images import BASE_IMAGE, NEWER_NGINX_ROOT, NEWEST_NGINX_ROOT, ensure_base_images
    from rig.pebble import (
        PebbleServer,
        ensure_challtestsrv,
        ensure_container_dns,
        listener_certificates,
    )
    from rig.stacks import BLOCKED_HOST

    started = time.monotonic()
    ensure_dockerd(record)
    ensure_swarm()
    gateway = ensure_gwbridge()
    ensure_base_images()
    ca_bundle = listener_certificates(["127.0.0.1", gateway])
    ensure_challtestsrv(record)
    ensure_container_dns(record, gateway)
    # One name the CA refuses, for tests that need a certificate failing with the CA's words.
    pebble = PebbleServer("pebble", host=gateway, ca_bundle=ca_bundle,
                          config={"domainBlocklist": [BLOCKED_HOST]})  # fmt: skip
    if pebble.answers():
        say(f"Pebble already answering at {pebble.directory_url}")
    else:
        say(f"starting Pebble at {pebble.directory_url}")
        record.add("pebble", pebble.start())
    values = {
        "CBL_RIG_ACME_DIRECTORY": pebble.directory_url,
        "CBL_RIG_PEBBLE_MGMT": f"https://{gateway}:{pebble.management_port}",
        "CBL_RIG_CA_BUNDLE": str(ca_bundle),
        "CBL_RIG_GATEWAY": gateway,
        "CBL_RIG_BASE_IMAGE": BASE_IMAGE,
        "CBL_NGINX_NEW_ROOT": str(NEWER_NGINX_ROOT),
        "CBL_NGINX_NEWEST_ROOT": str(NEWEST_NGINX_ROOT),
    }
    write_env(values)
    say(f"up in {time.monotonic() - started:.1f} s")
    return values


def cluster_command(action: str, nodes: int, managers: int) -> int:
    from rig.cluster import Cluster, status_lines

    cluster = Cluster.load()
    match action:
        case "up":
            cluster.up(nodes, managers)
            for line in status_lines(cluster):
                say(line)
        case "down":
            cluster.down()
            say("cluster removed")
        case "status":
            if not cluster.nodes:
                say("no cluster")
                return 1
            for line in status_lines(cluster):
                say(line)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python3 -m rig", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("install", help="apt packages and the project's .venv")
    for name, text in (("up", "start what is missing"), ("down", "stop what `up` started")):
        command = commands.add_parser(name, help=text)
        command.add_argument(
            "--record", type=Path, help="file listing the processes this invocation started"
        )
    commands.add_parser("images", help="build the base image and the project's images")
    env = commands.add_parser("env", help="print the facts tests need")
    env.add_argument("--json", action="store_true")
    commands.add_parser("demo", help="deploy the edge and a labelled app; verify HTTPS")
    cluster = commands.add_parser("cluster", help="a multi-node swarm of Docker-in-Docker nodes")
    cluster.add_argument("action", choices=["up", "down", "status"])
    cluster.add_argument("--nodes", type=int, default=4, help="nodes in all (default 4)")
    cluster.add_argument("--managers", type=int, default=3, help="of which managers (3)")
    args = parser.parse_args()

    match args.command:
        case "install":
            from rig.install import install

            install()
        case "up":
            up(StartedRecord(args.record))
        case "down":
            StartedRecord(args.record).stop_all()
        case "images":
            from rig.images import build_project_images

            build_project_images()
        case "env":
            values = read_env()
            if args.json:
                print(json.dumps(values, indent=2))
            else:
                print("\n".join(f"{k}={v}" for k, v in values.items()))
        case "demo":
            from rig.demo import main as demo

            return demo()
        case "cluster":
            return cluster_command(args.action, args.nodes, args.managers)
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except RigError as error:
        raise SystemExit(f"rig: {error}") from None
