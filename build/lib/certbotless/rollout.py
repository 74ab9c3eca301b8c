"""Swap the edge service's secret/config references in one update, then wait for the verdict."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from certbotless.model import FileReference
from certbotless.store import NAME_PREFIX
from certbotless.swarm import APIError, Swarm

log = logging.getLogger(__name__)

Json = dict[str, Any]
Progress = Callable[[str], None]

_FAILED_STATES = {"paused", "rollback_started", "rollback_paused", "rollback_completed"}
_UPDATE_ATTEMPTS = 5
_KEYS = {"secret": ("SecretID", "SecretName"), "config": ("ConfigID", "ConfigName")}


class RolloutError(Exception):
    """The edge did not converge on the new references; Swarm's and the tasks' words follow."""


@dataclass(frozen=True)
class RolloutResult:
    changed: bool
    seconds: float = 0.0


def swap_references(current: list[Json], wanted: Iterable[FileReference], kind: str) -> list[Json]:
    """The new reference list: `wanted` replaces whatever sits at the same target (keeping its
    owner and mode), stale certbotless references are dropped, everything else stays untouched."""
    wanted = [w for w in wanted if w.kind == kind]
    id_key, name_key = _KEYS[kind]
    by_target = {ref.get("File", {}).get("Name"): ref for ref in current}
    wanted_targets = {w.target for w in wanted}
    kept = [
        ref
        for ref in current
        if ref.get("File", {}).get("Name") not in wanted_targets
        and not str(ref.get(name_key, "")).startswith(NAME_PREFIX)
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
                    "GID": old_file.get("GID", "0"),
                    "Mode": ref.mode if ref.kind == "secret" else old_file.get("Mode", ref.mode),
                },
            }
        )
    return sorted(kept, key=lambda r: r["File"]["Name"])


def _same_references(new: list[Json], old: list[Json], kind: str) -> bool:
    name_key = _KEYS[kind][1]

    def identity(refs: list[Json]) -> set[tuple[str, str]]:
        return {(r[name_key], r.get("File", {}).get("Name", "")) for r in refs}

    return identity(new) == identity(old)


def roll_service(
    swarm: Swarm,
    service_name: str,
    wanted: list[FileReference],
    timeout: float,
    progress: Progress = log.info,
) -> RolloutResult:
    started = time.monotonic()
    for attempt in range(1, _UPDATE_ATTEMPTS + 1):
        service = swarm.inspect_service(service_name)
        spec = copy.deepcopy(service["Spec"])
        container = spec["TaskTemplate"]["ContainerSpec"]
        secrets = swap_references(container.get("Secrets") or [], wanted, "secret")
        configs = swap_references(container.get("Configs") or [], wanted, "config")
        unchanged = _same_references(secrets, container.get("Secrets") or [], "secret") and (
            _same_references(configs, container.get("Configs") or [], "config")
        )
        if unchanged:
            return RolloutResult(changed=False)
        container["Secrets"], container["Configs"] = secrets, configs
        try:
            swarm.update_service(service, spec)
            break
        except APIError as error:
            if "out of sequence" not in str(error) or attempt == _UPDATE_ATTEMPTS:
                raise
            log.info("%s changed under us; reloading its spec (attempt %d)", service_name, attempt)
    progress(f"rolling {service_name}")
    _wait_for_update(swarm, service, timeout, progress)
    return RolloutResult(changed=True, seconds=time.monotonic() - started)


def _wait_for_update(swarm: Swarm, before: Json, timeout: float, progress: Progress) -> None:
    """Done when Swarm reports a *new* UpdateStatus that is `completed`: the old status dict is
    kept for comparison, so no clocks are compared."""
    previous_status = before.get("UpdateStatus")
    deadline = time.monotonic() + timeout
    last_state = ""
    while time.monotonic() < deadline:
        service = swarm.inspect_service(before["ID"])
        status = service.get("UpdateStatus")
        if status and status != previous_status:
            state = status.get("State", "")
            if state != last_state:
                progress(f"{service['Spec']['Name']}: update {state}")
                last_state = state
            if state == "completed":
                return
            if state in _FAILED_STATES:
                raise RolloutError(
                    f"{service['Spec']['Name']}: update {state}: {status.get('Message', '')}"
                    + _task_errors(swarm, before["ID"])
                )
        time.sleep(0.25)
    raise RolloutError(
        f"{before['Spec']['Name']}: no verdict within {timeout:.0f} s (last state "
        f"{last_state or 'none'})" + _task_errors(swarm, before["ID"])
    )


def _task_errors(swarm: Swarm, service_id: str) -> str:
    errors = {
        task["Status"].get("Err") or task["Status"].get("Message", "")
        for task in swarm.tasks(service_id)
        if task["Status"].get("State") in {"failed", "rejected", "pending"}
    }
    return "".join(f"\n  task: {e}" for e in sorted(errors) if e)
