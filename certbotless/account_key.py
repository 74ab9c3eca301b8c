"""The ACME account key's life in the swarm: one secret, made once, mounted into the sidecar."""

from __future__ import annotations

import logging

from josepy.jwk import JWK

from certbotless.acme.keys import (
    generate_private_key,
    load_account_key,
    load_account_key_pem,
    private_key_pem,
)
from certbotless.model import FileReference, KeyType, ObjectKind
from certbotless.rollout import mount_secret
from certbotless.settings import Settings
from certbotless.store import CertStore
from certbotless.swarm import Swarm

log = logging.getLogger(__name__)


class AccountKeyMounted(Exception):
    """certbotless updated its own service to mount the account key; Swarm now replaces it."""


class AccountKeyUnavailable(Exception):
    """The account key exists as a secret, but this process cannot see it."""


def resolve_account_key(
    settings: Settings, swarm: Swarm, store: CertStore, mount_into_own_service: bool
) -> JWK:
    """The ACME account key, which lives only in a Swarm secret mounted at
    `settings.account_key_file`. The first daemon makes the secret and mounts it into its own
    service (one self-update, once), so a restart or a move to another manager keeps the account.
    """
    if settings.account_key_file.is_file():
        return load_account_key(settings.account_key_file)
    secret = store.account_key_secret()
    fresh_pem = None
    if secret is None:
        fresh_pem = private_key_pem(generate_private_key(KeyType.EC256))
        secret = store.create_account_key_secret(fresh_pem)
        if secret is None:  # a concurrent start stored its key first: that one is the account's
            fresh_pem, secret = None, store.account_key_secret()
        else:
            log.info("created the ACME account key secret %s", secret[0])
    if secret is None:
        raise AccountKeyUnavailable("the ACME account key secret vanished while starting; retry")
    if mount_into_own_service:
        service = settings.own_service or swarm.own_service_name()
        if service is not None:
            ref = FileReference(
                ObjectKind.SECRET, secret[1], secret[0], str(settings.account_key_file), 0o400
            )
            if not mount_secret(swarm, service, ref):
                raise AccountKeyUnavailable(
                    f"secret {secret[0]} is mounted into service {service}, but not at "
                    f"{settings.account_key_file}: set CERTBOTLESS_ACCOUNT_KEY_FILE to its target"
                )
            raise AccountKeyMounted(
                f"mounted secret {secret[0]} into service {service} at "
                f"{settings.account_key_file}; Swarm restarts this task with it"
            )
    if fresh_pem is not None:
        return load_account_key_pem(fresh_pem)
    raise AccountKeyUnavailable(
        f"the ACME account key is in secret {secret[0]}, but {settings.account_key_file} does "
        f"not exist here: mount the secret there (docker service update --secret-add "
        f"source={secret[0]},target={settings.account_key_file},mode=0400 …)"
    )
