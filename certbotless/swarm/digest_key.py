"""The key that signs digestAuth's nonces (edge/njs/certbotless.js), a Swarm secret every edge
task mounts, so that a nonce one task gave another accepts, before and after a roll. Made once
and signed as the store's objects are; nonces expire, so it needs no rotation."""

from __future__ import annotations

import secrets as random_tokens

from certbotless.model import ObjectKind, ObjectRole
from certbotless.swarm.api import APIError
from certbotless.swarm.authenticity import AuthenticObjects
from certbotless.swarm.store import KIND, MANAGED

DIGEST_KEY_NAME = "cbl-digest-nonce-key"
DIGEST_KEY_BYTES = 32


def ensure_digest_key(objects: AuthenticObjects) -> tuple[str, str]:
    """(name, id) of the key, made if missing (a concurrent pass's wins)."""
    role = ObjectRole.DIGEST_KEY
    found = objects.holder(ObjectKind.SECRET, role, DIGEST_KEY_NAME)
    if found is not None:
        return found
    try:
        return objects.create_named(ObjectKind.SECRET, DIGEST_KEY_NAME,
                                    random_tokens.token_bytes(DIGEST_KEY_BYTES),
                                    {MANAGED: "true", KIND: role})  # fmt: skip
    except APIError as error:
        raced = objects.holder(ObjectKind.SECRET, role, DIGEST_KEY_NAME)
        if error.status_code != 409 or raced is None:
            raise
        return raced
