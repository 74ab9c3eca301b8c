"""The one thin class through which certbotless talks to the Docker Engine API.

Everything above it takes and returns plain dicts or `model` types, so the logic can be tested
with a stand-in object and the real thing is exercised against a real dockerd.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import docker
import requests
from docker.errors import APIError, DockerException, NotFound

from certbotless.model import OBJECT_NAME_PREFIX, ObjectKind, ServiceInfo

Json = dict[str, Any]

# What a call to the Docker API can raise.
SWARM_ERRORS = (DockerException, requests.RequestException)

JOB_LABEL = "certbotless.job"
# Every one-off job service is named so: the Docker API proxy lets certbotless remove only
# services named so (haproxy/docker-api-proxy.cfg; tests/unit/test_docker_api_proxy_cfg.py).
JOB_NAME_PREFIX = OBJECT_NAME_PREFIX + "job-"
# Who ran a job: only its owner removes it when orphaned (several sidecars may share a swarm).
JOB_OWNER = "certbotless.job.owner"
STACK_LABEL = "com.docker.stack.namespace"  # set by `docker stack deploy` on every service
_JOB_ENDS = ("complete", "failed", "rejected")
_CREATED_AT = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?")


def created_order(text: str) -> tuple[datetime, int]:
    """Swarm's CreatedAt as (second, nanoseconds); Go trims trailing zeros of the fraction, so
    the text itself does not sort. Unknown: the earliest."""
    match = _CREATED_AT.match(text)
    if match is None:
        return datetime.min.replace(tzinfo=UTC), 0
    second = datetime.fromisoformat(match.group(1)).replace(tzinfo=UTC)
    return second, int((match.group(2) or "").ljust(9, "0")[:9])


@dataclass(frozen=True)
class JobResult:
    state: str  # the task's last state: complete, failed, rejected, or where it was stuck
    output: str
    error: str = ""  # why the task could not run, from Swarm

    @property
    def succeeded(self) -> bool:
        return self.state == "complete"

    @property
    def ran(self) -> bool:
        """Whether the command ran to its own end (complete or failed), rather than never."""
        return self.state in ("complete", "failed")


__all__ = [
    "JOB_NAME_PREFIX",
    "SWARM_ERRORS",
    "APIError",
    "JobResult",
    "NotFound",
    "Swarm",
    "docker_endpoint",
]


def docker_endpoint() -> str:
    """Where the Docker SDK sends calls: DOCKER_HOST (stacks/edge.yml names its Docker API
    proxy there), else the engine's socket."""
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


class Swarm:
    def __init__(self, api: docker.APIClient | None = None, owner: str = "") -> None:
        self.api = api if api is not None else docker.from_env(timeout=60).api
        # The jobs' owner: the sidecar's service (a restarted task cleans up after the one
        # before it), else this container.
        self.owner = owner or socket.gethostname()
        self.trusts_stacks = False  # ServiceInfo.trusted_stack (settings.trust_stack_namespace)

    # services -----------------------------------------------------------------------------
    def services(self) -> list[ServiceInfo]:
        infos = []
        network_names = {n["Id"]: n["Name"] for n in self.api.networks()}
        for service in self.api.services():
            spec = service["Spec"]
            labels = dict(spec.get("Labels") or {})
            stack = labels.get(STACK_LABEL, "")
            networks = spec.get("TaskTemplate", {}).get("Networks") or spec.get("Networks") or []
            mounts = spec.get("TaskTemplate", {}).get("ContainerSpec", {}).get("Secrets") or []
            infos.append(ServiceInfo(
                name=spec["Name"], labels=labels,
                network_ids=tuple(n["Target"] for n in networks),
                network_names=tuple(network_names.get(n["Target"], n["Target"]) for n in networks),
                stack=stack, created_at=_swarm_time(service.get("CreatedAt")),
                id=str(service.get("ID", "")), trusted_stack=stack if self.trusts_stacks else "",
                secret_mounts=tuple((m["File"]["Name"], m["SecretName"]) for m in mounts
                                    if m.get("File") and m.get("SecretName")),
            ))  # fmt: skip
        return infos

    def inspect_service(self, name_or_id: str) -> Json:
        return cast(Json, self.api.inspect_service(name_or_id))

    def update_service(self, service: Json, spec: Json) -> None:
        """Post a whole new spec; `service` is the inspect result it was derived from. By name:
        the Docker API proxy knows the edge's and the sidecar's services by name only."""
        self.api.update_service(
            service["Spec"]["Name"],
            service["Version"]["Index"],
            task_template=_networks_by_name(self.api, spec["TaskTemplate"]),
            name=spec["Name"],
            labels=spec.get("Labels"),
            mode=spec.get("Mode"),
            update_config=spec.get("UpdateConfig"),
            rollback_config=spec.get("RollbackConfig"),
            endpoint_spec=spec.get("EndpointSpec"),
        )

    def run_job(self, purpose: str, task_template: Json, timeout: float) -> JobResult:
        """Run `task_template` once as a replicated job named JOB_NAME_PREFIX + `purpose`, and
        remove it afterwards. The job is labelled as certbotless's, so that one orphaned by a
        killed process can be found."""
        name = JOB_NAME_PREFIX + purpose
        service = self.api.create_service(
            {**_networks_by_name(self.api, task_template), "RestartPolicy": {"Condition": "none"}},
            name=name,
            labels={JOB_LABEL: "true", JOB_OWNER: self.owner},
            mode={"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 1}},
        )
        try:
            deadline = time.monotonic() + timeout
            state, error = "new", ""
            while time.monotonic() < deadline:
                tasks = self.tasks(service["ID"])
                if tasks:
                    state, error = tasks[0]["Status"]["State"], tasks[0]["Status"].get("Err", "")
                if state in _JOB_ENDS:
                    break
                time.sleep(0.2)
            output = self._job_output(service["ID"])
            if state not in _JOB_ENDS:
                error = f"no result within {timeout:.0f} s (task {state}) {error}".strip()
            return JobResult(state, output, error)
        finally:
            # By name: the Docker API proxy removes only services named as jobs.
            self.api.remove_service(name)

    def _job_output(self, service_id: str) -> str:
        """What the job printed. Reading service logs sometimes stalls in the engine
        (docker/cli#4678); the client's read timeout ends that, and the task state stands."""
        chunks: list[bytes] = []
        try:
            for chunk in self.api.service_logs(service_id, stdout=True, stderr=True, follow=False):
                chunks.append(chunk)
        except SWARM_ERRORS as error:
            chunks.append(f"\n(the rest of the job's output could not be read: {error})".encode())
        return b"".join(chunks).decode(errors="replace")

    def remove_orphaned_jobs(self) -> list[str]:
        """Remove the job services a killed certbotless of the same owner left behind; their
        names. Other sidecars' jobs, running or not, are theirs."""
        orphans = self.api.services(
            filters={"label": [f"{JOB_LABEL}=true", f"{JOB_OWNER}={self.owner}"]}
        )
        for service in orphans:
            self.api.remove_service(service["Spec"]["Name"])
        return [service["Spec"]["Name"] for service in orphans]

    def own_service_name(self) -> str | None:
        """The swarm service this process runs in, from its container's labels. Only when
        CERTBOTLESS_SERVICE is not set: through the Docker API proxy the engine may be another
        manager's, which does not know this container (None then)."""
        try:
            container = self.api.inspect_container(socket.gethostname())
        except SWARM_ERRORS:
            return None
        labels = container.get("Config", {}).get("Labels") or {}
        name = labels.get("com.docker.swarm.service.name")
        return str(name) if name else None

    def tasks(self, service_id: str) -> list[Json]:
        return cast(list[Json], self.api.tasks(filters={"service": service_id}))

    def without_running_task(self, service_ids: Iterable[str]) -> set[str]:
        """Those of `service_ids` that have no task running yet (one call, whatever their
        number)."""
        running = {
            task["ServiceID"]
            for task in self.api.tasks(filters={"desired-state": "running"})
            if task.get("Status", {}).get("State") == "running"
        }
        return set(service_ids) - running

    def service_events(self, since: float) -> Iterator[Json]:
        return cast(
            Iterator[Json],
            self.api.events(since=since, filters={"type": "service"}, decode=True),
        )

    # secrets and configs ------------------------------------------------------------------
    def configs(self, label: str) -> list[Json]:
        return cast(list[Json], self.api.configs(filters={"label": label}))

    def secrets(self, label: str) -> list[Json]:
        return cast(list[Json], self.api.secrets(filters={"label": label}))

    def secret_names(self) -> frozenset[str]:
        return frozenset(secret["Spec"]["Name"] for secret in self.api.secrets())

    def secret_ids(self, names: Iterable[str]) -> dict[str, str]:
        """Secret name → ID, for those of `names` that exist."""
        wanted = set(names)
        if not wanted:
            return {}
        return {secret["Spec"]["Name"]: secret["ID"] for secret in self.api.secrets()
                if secret["Spec"]["Name"] in wanted}  # fmt: skip

    def engine_info(self) -> Json:
        return cast(Json, self.api.info())

    def config_data(self, config_id: str) -> bytes:
        return base64.b64decode(self.api.inspect_config(config_id)["Spec"]["Data"])

    def create_config(self, name: str, data: bytes, labels: dict[str, str]) -> str:
        return cast(str, self.api.create_config(name, data, labels=labels)["ID"])

    def create_secret(self, name: str, data: bytes, labels: dict[str, str]) -> str:
        return cast(str, self.api.create_secret(name, data, labels=labels)["ID"])

    def inspect_config_labels(self, config_id: str) -> dict[str, str]:
        return dict(self.api.inspect_config(config_id)["Spec"].get("Labels") or {})

    def update_config_labels(
        self, config_id: str, labels: dict[str, str], read: Json | None = None
    ) -> None:
        """Replace a config's labels; with `read` (as inspected before), a compare-and-swap."""
        config = read or self.api.inspect_config(config_id)
        self.update_object_labels(ObjectKind.CONFIG, config, labels)

    def inspect_object(self, kind: ObjectKind, object_id: str) -> Json:
        inspect = self.api.inspect_secret if kind == ObjectKind.SECRET else self.api.inspect_config
        return cast(Json, inspect(object_id))

    def update_object_labels(self, kind: ObjectKind, item: Json, labels: dict[str, str]) -> None:
        """Replace a config's or secret's labels, all Swarm lets change (docker-py has no call):
        its spec as inspected (`item`, a secret's without data), by name (the API proxy checks
        it), failing "out of sequence" if anyone changed it since (a compare-and-swap)."""
        response = self.api._post_json(
            self.api._url(f"/{kind.value}s/{{0}}/update", item["Spec"]["Name"]),
            data={**item["Spec"], "Labels": labels},
            params={"version": item["Version"]["Index"]},
        )
        self.api._raise_for_status(response)

    # By name (the engine takes it as well as an ID), which the Docker API proxy checks.
    def remove_config(self, name: str) -> None:
        self.api.remove_config(name)

    def remove_secret(self, name: str) -> None:
        self.api.remove_secret(name)

    def referenced_object_ids(self) -> set[str]:
        """IDs of every secret and config that any service's current or previous spec mounts."""
        ids: set[str] = set()
        for service in self.api.services():
            ids |= _mounted_ids(service.get("Spec")) | _mounted_ids(service.get("PreviousSpec"))
        return ids

    def mounted_object_ids(self, service_name: str) -> set[str]:
        """IDs of the secrets and configs that one service's current spec mounts."""
        return _mounted_ids(self.inspect_service(service_name).get("Spec"))


def _networks_by_name(api: docker.APIClient, task_template: Json) -> Json:
    """`task_template` with each network named rather than given by ID (as the engine's inspect
    gives it): the Docker API proxy knows the edge's and the sidecar's networks by name only
    (swarm network names are unique), and the engine takes either and stores the ID."""
    attached = task_template.get("Networks") or []
    if not attached:
        return task_template
    names = {n["Id"]: n["Name"] for n in api.networks()}
    return {**task_template, "Networks": [
        {**network, "Target": names.get(network["Target"], network["Target"])}
        for network in attached
    ]}  # fmt: skip


def _swarm_time(text: str | None) -> datetime | None:
    """Swarm's RFC 3339 times have nanoseconds; Python keeps microseconds, enough to order."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _mounted_ids(spec: Json | None) -> set[str]:
    container = ((spec or {}).get("TaskTemplate") or {}).get("ContainerSpec") or {}
    return {ref["SecretID"] for ref in container.get("Secrets") or []} | {
        ref["ConfigID"] for ref in container.get("Configs") or []
    }
