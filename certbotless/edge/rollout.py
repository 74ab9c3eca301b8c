"""Swap the edge service's secret/config references in one update, wait for Swarm's verdict,
then check that the edge serves the new certificates."""

from __future__ import annotations

import copy
import logging
import secrets
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple, TypeVar

from cryptography import x509

from certbotless.edge.mounts import (
    AUTH_TLS_SECRETS_DIR,
    CERTIFICATE_CHECK_CONF,
    HTPASSWD_SECRETS_DIR,
)
from certbotless.edge.nginx_version import NginxVersion, parse_nginx_version, worker_group_id
from certbotless.edge.njs import PROBE_COMMAND, NjsFeatures, njs_features
from certbotless.edge.validation import NginxConfigError, explain_nginx_error
from certbotless.model import FileReference, ObjectKind, RolloutResult
from certbotless.proxy_protocol import connect_to_edge_task
from certbotless.seams import Progress
from certbotless.swarm.api import APIError, JobResult, Json, Swarm
from certbotless.swarm.store import NAME_PREFIX, serial_hex

log = logging.getLogger(__name__)
Fact = TypeVar("Fact")

_FAILED_STATES = {"paused", "rollback_started", "rollback_paused", "rollback_completed"}
_UPDATE_ATTEMPTS = 5
# Where operators' secrets are mounted (by name): dropped once no route names them.
_OPERATOR_SECRETS = (HTPASSWD_SECRETS_DIR + "/", AUTH_TLS_SECRETS_DIR + "/")


class _SpecKeys(NamedTuple):
    """Where a container spec lists one kind of reference, and the keys inside each."""

    listing: str
    id: str
    name: str


_KEYS = {
    ObjectKind.SECRET: _SpecKeys("Secrets", "SecretID", "SecretName"),
    ObjectKind.CONFIG: _SpecKeys("Configs", "ConfigID", "ConfigName"),
}


class RolloutError(Exception):
    """The edge did not converge on the new references; Swarm's and the tasks' words follow."""


class RolledBack(RolloutError):
    """Swarm refused the update and restored the previous spec. `rotated`: the IDs of the
    certificate chain configs the update would have put in use."""

    rotated: tuple[str, ...] = ()


def swap_references(
    current: list[Json], wanted: Iterable[FileReference], kind: ObjectKind
) -> list[Json]:
    """The new reference list: `wanted` replaces whatever sits at the same target (keeping its
    owner and mode), stale certbotless references are dropped (and operators' basic-auth and
    forward-auth TLS secrets that no route names any more), everything else stays untouched."""
    wanted = [w for w in wanted if w.kind == kind]
    _, id_key, name_key = _KEYS[kind]
    by_target = {ref.get("File", {}).get("Name"): ref for ref in current}
    wanted_targets = {w.target for w in wanted}
    kept = [
        ref
        for ref in current
        if ref.get("File", {}).get("Name") not in wanted_targets
        and not str(ref.get(name_key, "")).startswith(NAME_PREFIX)
        and not str(ref.get("File", {}).get("Name", "")).startswith(_OPERATOR_SECRETS)
    ]
    for ref in wanted:
        old_file = by_target.get(ref.target, {}).get("File", {})
        kept.append(
            {
                id_key: ref.object_id,
                name_key: ref.object_name,
                "File": {
                    "Name": ref.target,
                    "UID": old_file.get("UID", "0"),
                    "GID": old_file.get("GID", "0") if ref.gid is None else str(ref.gid),
                    "Mode": ref.mode
                    if ref.kind == ObjectKind.SECRET
                    else old_file.get("Mode", ref.mode),
                },
            }
        )
    return sorted(kept, key=lambda r: r["File"]["Name"])


def _references_change(container: Json, wanted: list[FileReference]) -> bool:
    for kind, keys in _KEYS.items():
        old = container.get(keys.listing) or []
        if not _same_references(swap_references(old, wanted, kind), old, kind):
            return True
    return False


def _mount(container: Json, wanted: list[FileReference]) -> None:
    """Swap `wanted` into a container spec's secrets and configs (see swap_references)."""
    for kind, keys in _KEYS.items():
        container[keys.listing] = swap_references(container.get(keys.listing) or [], wanted, kind)


def _same_references(new: list[Json], old: list[Json], kind: ObjectKind) -> bool:
    name_key = _KEYS[kind].name

    def identity(refs: list[Json]) -> set[tuple[str, str]]:
        return {(r[name_key], r.get("File", {}).get("Name", "")) for r in refs}

    return identity(new) == identity(old)


class ServedCertificates:
    """Asks every edge task, over TLS with SNI, which certificate it serves for a name.

    `host` resolves to the task addresses: `tasks.<edge service>` on the overlay network, or an
    address of the node when the edge publishes host-mode ports (tests, benchmarks).
    """

    def __init__(
        self, host: str, port: int = 443, timeout: float = 3.0, proxy_protocol: bool = False
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        # Behind the L4 front, each edge task expects a PROXY protocol header first.
        self.proxy_protocol = proxy_protocol
        self._tls = ssl.create_default_context()
        # Only the serial matters here; trust was the CA's business.
        self._tls.check_hostname = False
        self._tls.verify_mode = ssl.CERT_NONE

    def serials(self, domain: str) -> dict[str, str]:
        """Address → serial in hex (or what went wrong there)."""
        try:
            infos = socket.getaddrinfo(self.host, self.port, socket.AF_INET, socket.SOCK_STREAM)
        except OSError as error:
            return {self.host: f"cannot resolve: {error}"}
        return {str(info[4][0]): self._serial(str(info[4][0]), domain) for info in infos}

    def _serial(self, address: str, domain: str) -> str:
        try:
            with (
                connect_to_edge_task(address, self.port, self.timeout, self.proxy_protocol) as raw,
                # A wildcard's server answers for any one label in its place.
                self._tls.wrap_socket(
                    raw, server_hostname=domain.replace("*.", "certbotless-check.", 1)
                ) as tls,
            ):
                der = tls.getpeercert(binary_form=True)
        except OSError as error:
            return f"no TLS answer ({error})"
        if der is None:
            return "no certificate"
        return serial_hex(x509.load_der_x509_certificate(der).serial_number)

    def wait_until_serving(
        self, expected: dict[str, str], deadline: float, what: str = "the new certificates"
    ) -> None:
        """Until every address serves `expected[domain]` for each domain, or RolloutError."""
        pending = dict(expected)
        seen: dict[str, dict[str, str]] = {}
        while pending:
            for domain, serial in list(pending.items()):
                seen[domain] = self.serials(domain)
                if seen[domain] and all(s == serial for s in seen[domain].values()):
                    del pending[domain]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise RolloutError(
                    f"the edge does not serve {what}: "
                    + "; ".join(
                        f"{domain} should be serial {serial}, "
                        + ", ".join(f"{a} serves {s}" for a, s in seen[domain].items())
                        for domain, serial in pending.items()
                    )
                )
            time.sleep(0.2)


def references_change(service: Json, wanted: Iterable[FileReference]) -> bool:
    """Whether mounting `wanted` changes the service's current spec."""
    return _references_change(service["Spec"]["TaskTemplate"]["ContainerSpec"], list(wanted))


def rolls_start_first_with_rollback(service: Json) -> bool:
    """Whether an update starts each new task before stopping its old one, and rolls back when
    a new task fails: then a task that cannot start never costs a request."""
    update = service["Spec"].get("UpdateConfig") or {}
    return update.get("Order") == "start-first" and update.get("FailureAction") == "rollback"


def stuck_update(service: Json) -> str | None:
    """Why the service's last update is stuck half-way (Swarm paused it), if it is."""
    status = service.get("UpdateStatus") or {}
    if status.get("State") in ("paused", "rollback_paused"):
        return (
            f"{service['Spec']['Name']}: its last update is {status['State']} "
            f"({status.get('Message', '')}); resume it with `docker service update "
            f"--rollback {service['Spec']['Name']}` or fix what made it pause"
        )
    return None


def roll_service(
    swarm: Swarm,
    service_name: str,
    wanted: list[FileReference],
    timeout: float,
    progress: Progress = log.info,
    served: ServedCertificates | None = None,
) -> RolloutResult:
    """One `service update` with all the new references; then Swarm's verdict; then, with
    `served`, the new serial on every edge task for each domain of each certificate that changed.
    """
    started = time.monotonic()
    deadline = started + timeout
    swap = _ReferenceSwap(wanted)
    before = _update_with_retry(swarm, service_name, swap)
    if before is None:
        problem = stuck_update(swarm.inspect_service(service_name))
        if problem is not None:
            raise RolloutError(problem)
        return RolloutResult(changed=False)
    progress(f"rolling {service_name}")
    rotated = swap.rotated()
    try:
        _wait_for_update(swarm, before, deadline, progress)
    except RolledBack as refused:
        # Refused: only chains no spec mounted before (after a `docker stack deploy`, which
        # drops every reference, the previous spec still names the ones that served).
        known = _config_ids(before.get("Spec")) | _config_ids(before.get("PreviousSpec"))
        refused.rotated = tuple(ref.object_id for ref in rotated if ref.object_id not in known)
        if served is not None:
            _wait_for_previous_serials(refused, swarm, swap, served, deadline)
        raise
    if served is not None and rotated:
        progress(f"{service_name}: checking the served certificates")
        served.wait_until_serving(
            {domain: serial for ref in rotated for domain, serial in _serves(ref)}, deadline
        )
        progress(f"{service_name}: every task serves the new certificates")
    return RolloutResult(changed=True, seconds=time.monotonic() - started)


class _ReferenceSwap:
    """The spec edit of a roll: mount `wanted`, remembering the chain config each target held."""

    def __init__(self, wanted: list[FileReference]) -> None:
        self.wanted = wanted
        self.mounted_before: dict[str, str] = {}  # target → config ID before the update

    def __call__(self, spec: Json) -> bool:
        container = spec["TaskTemplate"]["ContainerSpec"]
        if not _references_change(container, self.wanted):
            return False
        old_configs = container.get("Configs") or []
        self.mounted_before = {r["File"]["Name"]: r["ConfigID"] for r in old_configs}
        _mount(container, self.wanted)
        # The stack file's delay paces only the roll a `docker stack deploy` makes to its own
        # spec, so that tasks of the rendered configuration serve until this roll starts
        # (stacks/edge.yml); this roll goes on without one.
        (spec.get("UpdateConfig") or {}).pop("Delay", None)
        return True

    def rotated(self) -> list[FileReference]:
        """The certificate chains the update puts in use."""
        return [
            ref
            for ref in self.wanted
            if ref.serves is not None and self.mounted_before.get(ref.target) != ref.object_id
        ]


def _config_ids(spec: Json | None) -> set[str]:
    container = ((spec or {}).get("TaskTemplate") or {}).get("ContainerSpec") or {}
    return {ref["ConfigID"] for ref in container.get("Configs") or []}


def _serves(ref: FileReference) -> list[tuple[str, str]]:
    """(domain, serial) for each domain the edge serves this chain for."""
    if ref.serves is None:
        return []
    domains, serial = ref.serves
    return [(domain, serial) for domain in domains]


def _wait_for_previous_serials(
    refused: RolledBack,
    swarm: Swarm,
    swap: _ReferenceSwap,
    served: ServedCertificates,
    deadline: float,
) -> None:
    """Swarm's verdict comes before the restored tasks answer: wait for the old serials, and
    say in `refused` whether they came back."""
    previous = {
        domain: _serial_of(swarm.config_data(swap.mounted_before[ref.target]))
        for ref in swap.rotated()
        if ref.target in swap.mounted_before
        for domain, _ in _serves(ref)
    }
    try:
        served.wait_until_serving(previous, deadline, "the previous certificates")
    except RolloutError as still_down:
        refused.args = (f"{refused}\n  but {still_down}",)
        return
    refused.args = (f"{refused}: the previous certificates serve again",)


def _serial_of(chain_pem: bytes) -> str:
    return serial_hex(x509.load_pem_x509_certificate(chain_pem).serial_number)


# Every command certbotless runs in the edge image: the Docker API proxy lets jobs run these and
# nothing else (haproxy/docker-api-proxy.cfg; tests/unit/test_docker_api_proxy_cfg.py checks).
CHECK_COMMAND = ["nginx", "-t"]
VERSION_COMMAND = ["nginx", "-V"]
JOB_COMMANDS = (
    CHECK_COMMAND,
    [*CHECK_COMMAND, "-c", CERTIFICATE_CHECK_CONF],
    VERSION_COMMAND,
    PROBE_COMMAND,
)


def edge_job_template(service: Json, command: list[str], wanted: list[FileReference]) -> Json:
    """A task template that runs `command` like an edge task would: same image, user, mounts,
    networks and placement (so on a node that has the image), with `wanted` mounted."""
    template = copy.deepcopy(service["Spec"]["TaskTemplate"])
    container = template["ContainerSpec"]
    container.pop("Args", None)
    container.pop("Healthcheck", None)
    container["Command"] = command
    _mount(container, wanted)
    # The edge's network aliases would make its name resolve to the job as well.
    for network in template.get("Networks") or []:
        network.pop("Aliases", None)
    return {
        key: template[key]
        for key in ("ContainerSpec", "Placement", "Networks", "Resources")
        if key in template
    }


def _run_in_edge_image(
    swarm: Swarm, service: Json, command: list[str], wanted: list[FileReference], timeout: float
) -> JobResult:
    try:
        return swarm.run_job(
            f"nginx-check-{secrets.token_hex(4)}",
            edge_job_template(service, command, wanted),
            timeout,
        )
    except APIError as error:
        raise RolloutError(f"could not start a job in the edge image: {error}") from error


def check_in_edge_image(
    swarm: Swarm,
    service: Json,
    wanted: list[FileReference],
    nginx_files: Mapping[str, str],
    timeout: float,
    progress: Progress = log.info,
    conf: str | None = None,
) -> tuple[str, ...]:
    """`nginx -t` in the edge's own image with the references the roll would mount (the real
    certificates and keys), as a one-off Swarm job; of `conf` rather than nginx.conf if given.
    Raises NginxConfigError with nginx's words (a configuration that fails here is never
    rolled), RolloutError when the job cannot run; returns nginx's warnings."""
    image = service["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
    what = "the new configuration" if conf is None else "every certificate and key"
    progress(f"{service['Spec']['Name']}: checking {what} with its own nginx")
    command = CHECK_COMMAND if conf is None else [*CHECK_COMMAND, "-c", conf]
    job = _run_in_edge_image(swarm, service, command, wanted, timeout)
    if not job.ran:
        raise RolloutError(
            f"could not run `nginx -t` in {image} ({job.state}: {job.error}); nothing rolled"
        )
    if not job.succeeded:
        raise NginxConfigError(
            explain_nginx_error(
                f"nginx in {image} rejects the new configuration: {job.output.strip()}",
                nginx_files,
            )
        )
    return tuple(
        explain_nginx_error(line, nginx_files)
        for line in job.output.splitlines()
        if "[warn]" in line
    )


def nginx_version_in_edge_image(
    swarm: Swarm, service: Json, timeout: float
) -> tuple[NginxVersion, int | None]:
    """The version of nginx in the edge's image, which decides some of the syntax, and the group
    id of its workers (None: unknown), from how it was built (`nginx -V`)."""
    job = _run_in_edge_image(swarm, service, VERSION_COMMAND, [], timeout)
    if not job.succeeded:
        raise RolloutError(f"`nginx -V` in the edge image did not run: {job.error or job.output}")
    return parse_nginx_version(job.output), worker_group_id(job.output)


def mount_secret(swarm: Swarm, service_name: str, ref: FileReference) -> bool:
    """Add one secret reference to a service, without waiting: certbotless uses it on its own
    service, which the update replaces. Only what sits at its target is replaced (the sidecar
    mounts both the account key and the store key). False when the secret is mounted already."""

    def add(spec: Json) -> bool:
        container = spec["TaskTemplate"]["ContainerSpec"]
        current = container.get("Secrets") or []
        if any(r.get("SecretID") == ref.object_id for r in current):
            return False
        there = [r for r in current if r.get("File", {}).get("Name") == ref.target]
        others = [r for r in current if r not in there]
        container["Secrets"] = others + swap_references(there, [ref], ObjectKind.SECRET)
        return True

    return _update_with_retry(swarm, service_name, add) is not None


def _update_with_retry(
    swarm: Swarm, service_name: str, edit: Callable[[Json], bool]
) -> Json | None:
    """Post `edit`ed copies of the service's spec until one lands ("update out of sequence" means
    someone else updated it first: reload and edit again). Returns the service as it was before
    the update, or None when `edit` found nothing to change."""
    for attempt in range(1, _UPDATE_ATTEMPTS + 1):
        service = swarm.inspect_service(service_name)
        spec = copy.deepcopy(service["Spec"])
        if not edit(spec):
            return None
        try:
            swarm.update_service(service, spec)
            return service
        except APIError as error:
            if "out of sequence" not in str(error) or attempt == _UPDATE_ATTEMPTS:
                raise RolloutError(f"{service_name}: Docker refused the update: {error}") from None
            log.info("%s changed under us; reloading its spec (attempt %d)", service_name, attempt)
    return None


def _wait_for_update(swarm: Swarm, before: Json, deadline: float, progress: Progress) -> None:
    """Done when Swarm reports a *new* UpdateStatus that is `completed`: the old status dict is
    kept for comparison, so no clocks are compared. A rollback is waited out (bounded by the same
    deadline) so that the error can say the previous certificates are serving again."""
    name = before["Spec"]["Name"]
    previous_status = before.get("UpdateStatus")
    last_state = ""
    failure = ""
    started_at = ""
    while time.monotonic() < deadline:
        service = swarm.inspect_service(before["ID"])
        status = service.get("UpdateStatus")
        if status and status != previous_status:
            state = status.get("State", "")
            started_at = status.get("StartedAt", started_at)
            if state != last_state:
                progress(f"{name}: update {state}")
                last_state = state
            if state == "completed":
                return
            if state in _FAILED_STATES and not failure:
                failure = f"{name}: update {state}: {status.get('Message', '')}" + _task_errors(
                    swarm, before["ID"], status.get("StartedAt", "")
                )
            if state in ("paused", "rollback_paused"):
                raise RolloutError(failure + "\n  Swarm paused the update; fix and run a pass")
            if state == "rollback_completed":
                raise RolledBack(failure + "\n  Swarm rolled back")
        time.sleep(0.25)
    raise RolloutError(
        (failure or f"{name}: no verdict")
        + f" within the rollout timeout (last state {last_state or 'none'})"
        + _task_errors(swarm, before["ID"], started_at)
    )


def _task_errors(swarm: Swarm, service_id: str, since: str) -> str:
    """What went wrong with the tasks this update made (RFC 3339 times sort as text)."""
    errors = {
        task["Status"].get("Err") or task["Status"].get("Message", "")
        for task in swarm.tasks(service_id)
        if task["Status"].get("State") in {"failed", "rejected", "pending"}
        and task.get("CreatedAt", "") >= since
    }
    return "".join(f"\n  task: {e}" for e in sorted(errors) if e)


def njs_in_edge_image(swarm: Swarm, service: Json, timeout: float) -> NjsFeatures:
    """What the edge image's njs can do (its `nginx -t` of nothing but the module and
    js_periodic fails either way; its words tell: njs.njs_features)."""
    job = _run_in_edge_image(swarm, service, list(PROBE_COMMAND), [], timeout)
    if not job.ran:
        raise RolloutError(f"`nginx -t` in the edge image did not run: {job.error or job.output}")
    return njs_features(job.output)


def asked_once(
    known: dict[str, Fact],
    service: Json,
    ask: Callable[[], Fact],
    fallback: Fact,
    what: Callable[[Fact], str],
) -> Fact:
    """A fact of the edge's image (its nginx version, whether it has njs), asked once per image;
    `fallback` (not remembered) when it cannot be asked; `what` words it for the log."""
    image = service["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
    if image not in known:
        try:
            known[image] = ask()
        except (RolloutError, ValueError) as error:
            log.warning("the edge image %s: unknown (%s); taken as %s", image, error,
                        what(fallback))  # fmt: skip
            return fallback
        log.info("the edge image %s has %s", image, what(known[image]))
    return known[image]
