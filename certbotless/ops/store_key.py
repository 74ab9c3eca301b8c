"""The store's MAC key (`swarm.authenticity`): a random key in a Swarm secret that the sidecar
makes on its first start and mounts into its own service, beside the ACME account key."""

from __future__ import annotations

import logging
import secrets as random_tokens
from datetime import UTC, datetime
from pathlib import Path

from certbotless.edge.rollout import mount_secret
from certbotless.model import FileReference, ObjectKind, ObjectRole
from certbotless.settings import Settings
from certbotless.swarm.api import SWARM_ERRORS, Swarm
from certbotless.swarm.authenticity import (
    NOT_MADE_HERE,
    STORE_KEY_BYTES,
    STORE_KEY_PREFIX,
    StoreKey,
    read_store_key,
)
from certbotless.swarm.store import KIND, MANAGED

log = logging.getLogger(__name__)


class StoreKeyMounted(Exception):
    """certbotless updated its own service to mount the store key; Swarm now replaces it."""


def store_key_file(settings: Settings) -> Path:
    """Where the sidecar finds the key: beside the account key."""
    return settings.account_key_file.with_name("certbotless-store-key")


def resolve_store_key(
    settings: Settings, swarm: Swarm, mount_into_own_service: bool
) -> StoreKey | None:
    """The key mounted here; else (the daemon's first start, or after a `docker stack deploy`
    dropped the mount) the store key secret, mounted into certbotless's own service (one
    self-update). The first start makes it; later ones take the oldest store key secret, the
    one certbotless made: one made later by anyone else cannot be older. None where no key can
    be had: a one-off command outside the sidecar, or a sidecar that is not a Swarm service."""
    path = store_key_file(settings)
    key = read_store_key(path)
    if not mount_into_own_service:
        return key
    service = settings.own_service or swarm.own_service_name()
    if key is not None:
        if service is not None:
            _report_other_keys(swarm, service, path)
        return key
    if service is None:
        log.warning("not running as a Swarm service: no store key, so the objects of the "
                    "certificate store are not authenticated")  # fmt: skip
        return None
    name, secret_id = _oldest_key_secret(swarm) or _new_key_secret(swarm)
    ref = FileReference(ObjectKind.SECRET, secret_id, name, str(path), 0o400)
    mount_secret(swarm, service, ref)
    raise StoreKeyMounted(
        f"mounted the store key secret {name} into service {service} at {path}; Swarm restarts "
        "this task with it"
    )


def _report_other_keys(swarm: Swarm, service: str, path: Path) -> None:
    """Every secret labelled as a store key but the one the service mounts at `path` (the one
    the sidecar made, or one the operator made and named in the stack file) is someone else's."""
    try:
        refs = swarm.inspect_service(service)["Spec"]["TaskTemplate"]["ContainerSpec"]
        labelled = swarm.secrets(f"{KIND}={ObjectRole.STORE_KEY}")
    except SWARM_ERRORS as error:  # a report only: the key in hand is used either way
        log.warning("could not list the store key secrets: %s", error)
        return
    mounted = {str(r.get("SecretID")) for r in refs.get("Secrets") or []
               if r.get("File", {}).get("Name") == str(path)}  # fmt: skip
    for secret in labelled:
        if secret["ID"] not in mounted:
            log.warning("secret %s (ID %s) has the store key's label but is not the key mounted "
                        "into %s: %s", secret["Spec"]["Name"], secret["ID"], service,
                        NOT_MADE_HERE)  # fmt: skip


def _oldest_key_secret(swarm: Swarm) -> tuple[str, str] | None:
    found = sorted(swarm.secrets(f"{KIND}={ObjectRole.STORE_KEY}"),
                   key=lambda s: (str(s.get("CreatedAt", "")), s["Spec"]["Name"]))  # fmt: skip
    for other in found[1:]:
        log.warning("secret %s (ID %s) has the store key's label, but %s is older: %s",
                    other["Spec"]["Name"], other["ID"], found[0]["Spec"]["Name"],
                    NOT_MADE_HERE)  # fmt: skip
    return (str(found[0]["Spec"]["Name"]), str(found[0]["ID"])) if found else None


def _new_key_secret(swarm: Swarm) -> tuple[str, str]:
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S") + random_tokens.token_hex(4)
    name = STORE_KEY_PREFIX + stamp
    labels = {MANAGED: "true", KIND: ObjectRole.STORE_KEY}
    secret_id = swarm.create_secret(name, random_tokens.token_bytes(STORE_KEY_BYTES), labels)
    log.info("made the store key secret %s", name)
    return name, secret_id
