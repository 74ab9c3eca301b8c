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
from certbotless.swarm.api import Swarm
from certbotless.swarm.authenticity import (
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
    """The key mounted here; else (the daemon's first start) a new one, in a secret of a name
    nobody can have made before, mounted into certbotless's own service (one self-update,
    once): a secret found by name could be anyone's. None where no key can be had: a one-off
    command outside the sidecar, or a sidecar that is not a Swarm service."""
    path = store_key_file(settings)
    key = read_store_key(path)
    if key is not None or not mount_into_own_service:
        return key
    service = settings.own_service or swarm.own_service_name()
    if service is None:
        log.warning("not running as a Swarm service: no store key, so the objects of the "
                    "certificate store are not authenticated")  # fmt: skip
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S") + random_tokens.token_hex(4)
    name = STORE_KEY_PREFIX + stamp
    labels = {MANAGED: "true", KIND: ObjectRole.STORE_KEY}
    secret_id = swarm.create_secret(name, random_tokens.token_bytes(STORE_KEY_BYTES), labels)
    ref = FileReference(ObjectKind.SECRET, secret_id, name, str(path), 0o400)
    mount_secret(swarm, service, ref)
    raise StoreKeyMounted(
        f"made the store key secret {name} and mounted it into service {service} at {path}; "
        "Swarm restarts this task with it"
    )
