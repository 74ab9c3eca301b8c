"""Deploy the edge and demo stacks on the rig's swarm, and check HTTPS through the edge.

Shared by the demo (`python -m rig demo`) and the swarm tests. Stdlib only; talks to Docker
through the `docker` CLI so it has no dependency on the package under test.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import socket
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rig.state import run

REPO = Path(__file__).resolve().parent.parent
STACKS = REPO / "stacks"
EDGE_NETWORK = "certbotless-edge"
EDGE_STACK = "certbotless-demo"
DEMO_STACK = "demo"
DEMO_HOST = "app.example.test"
BLOCKED_HOST = "blocked.example.test"  # the rig's Pebble refuses to certify it
SEED_STACKS = {"flask": "seed-flask-api.yml", "nlp": "seed-nlp.yml"}
# Every service the tests and benchmarks create outside a stack is named cbl-…
TEST_SERVICE_PREFIX = "cbl-"
MANAGED_LABEL = "certbotless.managed"

Say = Callable[[str], None]


def docker(*args: str, env: Mapping[str, str] | None = None, check: bool = True) -> str:
    return run(["docker", *args], check=check, env=env).stdout


def ensure_edge_network() -> None:
    if run(["docker", "network", "inspect", EDGE_NETWORK], check=False).returncode != 0:
        docker("network", "create", "--driver", "overlay", "--attachable", EDGE_NETWORK)


def deploy_stack(name: str, files: Sequence[str], env: Mapping[str, str]) -> None:
    args = ["stack", "deploy"]
    for file in files:
        args += ["-c", str(STACKS / file)]
    docker(*args, name, env=env)


def deploy_edge(rig_env: Mapping[str, str], direct: bool = False) -> None:
    """The edge stack on the rig; `direct`: without the front (stacks/edge-direct.yml)."""
    ensure_edge_network()
    overrides = ["edge-direct.yml"] if direct else []
    deploy_stack(EDGE_STACK, ["edge.yml", *overrides, "test-pebble.yml"], rig_env)


def deploy_demo_app() -> None:
    deploy_stack(DEMO_STACK, ["demo.yml"], {})


def remove_stacks(names: Sequence[str], timeout: float = 90) -> None:
    """Remove stacks; wait until their services and running containers are gone, so that ports
    80/443 are free and their secrets can be removed. (Exited task containers may linger.)"""
    present = set(docker("stack", "ls", "--format", "{{.Name}}").split())
    doomed = [n for n in names if n in present]
    if doomed:
        # A secret one stack made and another's service mounts (an htpasswd secret the edge's
        # nginx mounts) is refused while that service lives: removed again once it is gone.
        refused = run(["docker", "stack", "rm", *doomed], check=False).returncode != 0
        _wait_until_gone(f"stacks {doomed}", "com.docker.stack.namespace", doomed, timeout)
        if refused:
            docker("stack", "rm", *doomed)
        _wait_until_no_networks(doomed, timeout)


def remove_services(names: Sequence[str], timeout: float = 90) -> None:
    """Remove services and wait until their running containers are gone."""
    if names:
        docker("service", "rm", *names)
        _wait_until_gone(f"services {names}", "com.docker.swarm.service.name", names, timeout)


def _wait_until_gone(what: str, label: str, values: Sequence[str], timeout: float) -> None:
    """Until no service and no running container carries `label` with one of `values`."""
    filters = [f"label={label}={value}" for value in values]
    deadline = time.monotonic() + timeout
    while any(
        docker(kind, "ls", "-q", "--filter", where).split()
        for kind in ("container", "service")
        for where in filters
    ):
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{what} still have running containers after {timeout:.0f} s:\n"
                + docker("ps", "--format", "{{.Names}} {{.Status}}")
                + docker("service", "ls")
            )
        time.sleep(1)


def _wait_until_no_networks(stacks: Sequence[str], timeout: float) -> None:
    """Until the stacks' networks are gone: a deploy of the same stack meanwhile fails on a
    network being removed ("network … not found")."""
    deadline = time.monotonic() + timeout
    filters = [f"label=com.docker.stack.namespace={stack}" for stack in stacks]
    while any(docker("network", "ls", "-q", "--filter", where).split() for where in filters):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the networks of stacks {list(stacks)} outlived {timeout:.0f} s")
        time.sleep(0.5)


def remove_leftovers() -> list[str]:
    """Remove what an earlier run left on the swarm: the demo and seed stacks and the cbl-…
    services, whose labels would add domains and routes to this run's edge, then every
    certbotless-made secret and config, whose certificates come from an earlier Pebble (same
    directory URL, another root) and would be served as if still good."""
    stacks = [EDGE_STACK, DEMO_STACK, *SEED_STACKS]
    present = set(docker("stack", "ls", "--format", "{{.Name}}").split())
    services = [
        name
        for name in docker("service", "ls", "--format", "{{.Name}}").split()
        if name.startswith(TEST_SERVICE_PREFIX)
    ]
    remove_services(services)
    remove_stacks(stacks)
    objects = purge_managed_objects()
    return sorted(present & set(stacks)) + services + ([f"{objects} objects"] if objects else [])


def purge_managed_objects() -> int:
    """Remove every certbotless-made secret and config (the rig's CA changes on each start)."""
    removed = 0
    for kind in ("config", "secret"):
        ids = docker(kind, "ls", "-q", "--filter", f"label={MANAGED_LABEL}").split()
        if ids:
            docker(kind, "rm", *ids)
            removed += len(ids)
    return removed


@dataclass(frozen=True)
class HttpsAnswer:
    status: int
    body: str
    peer: dict[str, object]
    der: bytes
    # wait_for_https: since when (time.monotonic()) every request has been answered.
    answering_since: float = 0.0

    @property
    def serial(self) -> str:
        return str(self.peer["serialNumber"]).lower().lstrip("0")

    def describe(self) -> str:
        def name(field: str) -> str:
            parts = self.peer.get(field, ())
            assert isinstance(parts, tuple)
            return ", ".join(f"{k}={v}" for rdn in parts for k, v in rdn)

        return (
            f"subject: {name('subject') or '(empty)'}\n"
            f"issuer:  {name('issuer')}\n"
            f"expires: {self.peer.get('notAfter')}\n"
            f"serial:  {self.serial}"
        )


def https_get(
    host: str,
    cafile: str,
    path: str = "/",
    address: str = "127.0.0.1",
    method: str = "GET",
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
) -> HttpsAnswer:
    """A request to https://host/path at the edge on `address`, verifying against `cafile`."""
    context = ssl.create_default_context(cafile=cafile)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    with (
        socket.create_connection((address, 443), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        with contextlib.suppress(OSError):  # nginx may answer 413 before the body is in
            tls.sendall(body)
        response = http.client.HTTPResponse(tls)
        response.begin()
        return HttpsAnswer(
            status=response.status,
            body=response.read().decode(errors="replace"),
            peer=dict(tls.getpeercert() or {}),
            der=tls.getpeercert(binary_form=True) or b"",
        )


def wait_for_https(
    host: str,
    cafile: str,
    timeout: float,
    say: Say = print,
    every: float = 5.0,
    path: str = "/",
    stable: float = 3.0,
    address: str = "127.0.0.1",
    headers: Mapping[str, str] | None = None,
) -> HttpsAnswer:
    """Until `https://host/path` has answered 200 to every request for `stable` seconds. A new
    host's first answer comes from the new nginx task while the old one, which does not know
    the host yet, still takes connections for a moment (start-first)."""
    deadline = time.monotonic() + timeout
    last_said = 0.0
    last_error = "no attempt"
    answering_since: float | None = None
    while time.monotonic() < deadline:
        try:
            answer = https_get(host, cafile, path, address=address, headers=headers)
            if answer.status == 200:
                answering_since = answering_since or time.monotonic()
                if time.monotonic() - answering_since >= stable:
                    return dataclasses.replace(answer, answering_since=answering_since)
                time.sleep(0.1)
                continue
            last_error = f"HTTP {answer.status}"
        except (OSError, ssl.SSLError, http.client.HTTPException) as error:
            last_error = str(error) or type(error).__name__
        answering_since = None
        if time.monotonic() - last_said >= every:
            say(f"  waiting for https://{host}/ … ({last_error})")
            last_said = time.monotonic()
        time.sleep(0.2)
    raise TimeoutError(f"https://{host}/ did not answer within {timeout:.0f} s: {last_error}")


def wait_for_serial(
    host: str, cafile: str, serial: str, timeout: float = 15, address: str = "127.0.0.1"
) -> HttpsAnswer:
    """Until the edge at `address` serves `serial` for `host`. Right after a roll a task on its
    way out still answers through the front for a moment, with the previous certificate."""
    deadline = time.monotonic() + timeout
    while (answer := https_get(host, cafile, address=address)).serial != serial:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{host} still served serial {answer.serial}, not {serial}")
        time.sleep(0.2)
    return answer


def wait_for_roll(service: str, timeout: float = 60) -> None:
    """Until no update of `service` is under way (a roll's old task drains after the new one
    answers), so that a test starts on a settled edge."""
    deadline = time.monotonic() + timeout
    shown = "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}"
    while (state := docker("service", "inspect", service, "--format", shown).strip()) in (
        "updating",
        "rollback_started",
    ):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{service}: still {state} after {timeout:.0f} s")
        time.sleep(0.5)


def container_logs(container: str, tail: str = "all") -> str:
    result = run(["docker", "logs", "--tail", tail, container], check=False)
    return result.stdout + result.stderr


def service_logs(service: str, tail: int | None = None) -> str:
    """The logs of a service's task containers on this node, oldest container first. Not
    `docker service logs`, which now and then never returns (docker/cli#4678)."""
    found = run(["docker", "service", "inspect", "--format", "{{.ID}}", service], check=False)
    if found.returncode != 0:
        return ""
    # By ID: containers of a removed service of the same name may still be there.
    service_id = found.stdout.strip()
    containers = docker(
        "ps", "--all", "--quiet", "--filter", f"label=com.docker.swarm.service.id={service_id}"
    ).split()
    lines = [
        line
        for container in reversed(containers)  # `docker ps` lists the newest first
        for line in container_logs(container).splitlines(keepends=True)
    ]
    return "".join(lines[-tail:] if tail else lines)


def sidecar_container(timeout: float = 120) -> str:
    """The running sidecar container (the newest, while Swarm replaces one)."""
    deadline = time.monotonic() + timeout
    while True:
        running = docker(
            "ps", "-q", "--filter", f"label=com.docker.swarm.service.name={EDGE_STACK}_certbotless"
        ).split()
        if running:
            return running[0]
        if time.monotonic() > deadline:
            raise RuntimeError(f"no sidecar container is running\n{sidecar_logs()}")
        time.sleep(0.5)


def sidecar_logs(tail: int = 60) -> str:
    """The sidecar's recent log lines (it logs to stderr)."""
    return service_logs(f"{EDGE_STACK}_certbotless", tail)


def stored_chain_labels() -> list[dict[str, str]]:
    ids = docker("config", "ls", "-q", "--filter", "label=certbotless.kind=chain").split()
    if not ids:
        return []
    return [c["Spec"]["Labels"] for c in json.loads(docker("config", "inspect", *ids))]
