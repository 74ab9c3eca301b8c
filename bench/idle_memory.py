"""Idle memory of the daemon holding 50 certificates, on the rig's real swarm.

Deploys the edge stack and one service asking for 50 certificates (`certbotless.certificate.*`
labels), waits until the daemon has issued them all and gone idle, then reads the resident set
of `certbotless run` (PID 1 of the sidecar container) from /proc. Traefik, measured by the
issue's author on this kind of machine while holding 50 certificates, used about 100 MB; it
cannot be pulled here (no registry), so that figure is quoted, not re-measured.
"""

from __future__ import annotations

import argparse
import re
import time

from rig.stacks import (
    EDGE_STACK,
    deploy_edge,
    docker,
    remove_leftovers,
    remove_stacks,
    sidecar_logs,
)
from rig.state import read_env

APP = "cbl-bench-fifty"
TRAEFIK_MB = 100.0
TARGET_MB = 60.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--certificates", type=int, default=50)
    parser.add_argument("--idle", type=float, default=30.0, help="seconds idle before reading")
    args = parser.parse_args()
    env = read_env()
    remove_leftovers()
    deploy_edge(env)
    labels = []
    for index in range(args.certificates):
        labels += ["--label", f"certbotless.certificate.mem{index}=mem{index}.bench.test"]
    docker("service", "create", "--detach", "--name", APP, "--network", "certbotless-edge",
           "--endpoint-mode", "dnsrr", *labels, "certbotless-demo-app:local")  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            logs = sidecar_logs(400)
            if re.search(rf"pass done in [\d.]+ s: issued {args.certificates}, failed 0", logs):
                break
            time.sleep(5)
        else:
            print(sidecar_logs(100))
            raise SystemExit("the daemon did not issue the certificates within 600 s")
        print(f"{args.certificates} certificates issued; idle for {args.idle:.0f} s", flush=True)
        time.sleep(args.idle)
        sidecar = docker(
            "ps", "-q", "--filter", f"label=com.docker.swarm.service.name={EDGE_STACK}_certbotless"
        ).split()[0]
        status = docker("exec", sidecar, "cat", "/proc/1/status")
        rss_kb = int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))  # type: ignore[union-attr]
        peak_kb = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))  # type: ignore[union-attr]
    finally:
        docker("service", "rm", APP, check=False)
        remove_stacks([EDGE_STACK])
    rss, peak = rss_kb / 1024, peak_kb / 1024
    print()
    print(f"{'daemon':<36} {'idle RSS (MB)':>14} {'peak RSS (MB)':>14}")
    print(f"{'certbotless run, 50 certificates':<36} {rss:>14.1f} {peak:>14.1f}")
    print(f"{'Traefik, 50 certificates (quoted)':<36} {TRAEFIK_MB:>14.1f} {'':>14}")
    print(f"Traefik/certbotless idle: {TRAEFIK_MB / rss:.1f}x; target <= {TARGET_MB:.0f} MB: "
          + ("met" if rss <= TARGET_MB else "missed"))  # fmt: skip
    return 0 if rss <= TARGET_MB else 1


if __name__ == "__main__":
    raise SystemExit(main())
