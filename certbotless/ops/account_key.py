"""The ACME account key's life in the swarm: one secret, made once, mounted into the sidecar."""

from __future__ import annotations

import logging
from enum import StrEnum
from pathlib import Path

from josepy.jwk import JWK

from certbotless.acme.keys import (
    generate_private_key,
    load_account_key,
    load_account_key_pem,
    private_key_pem,
)
from certbotless.edge.rollout import mount_secret
from certbotless.model import FileReference, KeyType, ObjectKind
from certbotless.settings import Settings
from certbotless.swarm.api import Swarm
from certbotless.swarm.store import CertStore

log = logging.getLogger(__name__)


class AccountKeyMounted(Exception):
    """certbotless updated its own service to mount the account key; Swarm now replaces it."""


class AccountKeyUnavailable(Exception):
    """The account key exists as a secret, but this process cannot see it."""


def account_key_file(settings: Settings, issuer: str = "") -> Path:
    """Where an issuer's account key is mounted: CERTBOTLESS_ACCOUNT_KEY_FILE for the first
    (""), the same path with `.<name>` added for each other of CERTBOTLESS_ACME_ISSUERS."""
    base = settings.account_key_file
    return base.with_name(f"{base.name}.{issuer}") if issuer else base


def key_owners(settings: Settings) -> dict[str, str]:
    """Issuer name → the name its account key secret and file carry ("" for the first)."""
    return {issuer.name: "" if index == 0 else issuer.name
            for index, issuer in enumerate(settings.issuers)}  # fmt: skip


def resolve_account_keys(
    settings: Settings, swarm: Swarm, store: CertStore, mount_into_own_service: bool
) -> dict[str, JWK]:
    """Every issuer's account key (`resolve_account_key`). Secrets mounted now are all mounted
    before AccountKeyMounted is raised, so that Swarm restarts the sidecar once."""
    keys, mounted = {}, []
    for name, owner in key_owners(settings).items():
        try:
            keys[name] = resolve_account_key(settings, swarm, store, mount_into_own_service,
                                             owner)  # fmt: skip
        except AccountKeyMounted as done:
            mounted.append(str(done))
    if mounted:
        raise AccountKeyMounted("; ".join(mounted))
    return keys


def resolve_account_key(
    settings: Settings, swarm: Swarm, store: CertStore, mount_into_own_service: bool,
    issuer: str = "",
) -> JWK:  # fmt: skip
    """An ACME account key, which lives only in a Swarm secret mounted at `account_key_file`
    (`issuer`: "" for the first issuer, whose secret is the one of releases before several
    issuers). The first daemon makes the secret and mounts it into its own service (one
    self-update, once), so a restart or a move to another manager keeps the account."""
    key_file = account_key_file(settings, issuer)
    if key_file.is_file():
        return load_account_key(key_file)
    secret = store.account_key_secret(issuer)
    fresh_pem = None
    if secret is None:
        fresh_pem = private_key_pem(generate_private_key(KeyType.EC256))
        secret = store.create_account_key_secret(fresh_pem, key_thumbprint(fresh_pem), issuer)
        if secret is None:  # a concurrent start stored its key first: that one is the account's
            fresh_pem, secret = None, store.account_key_secret(issuer)
        else:
            log.info("created the ACME account key secret %s", secret[0])
    if secret is None:
        raise AccountKeyUnavailable("the ACME account key secret vanished while starting; retry")
    if mount_into_own_service:
        service = settings.own_service or swarm.own_service_name()
        if service is not None:
            ref = FileReference(ObjectKind.SECRET, secret[1], secret[0], str(key_file), 0o400)
            if not mount_secret(swarm, service, ref):
                raise AccountKeyUnavailable(
                    f"secret {secret[0]} is mounted into service {service}, but not at "
                    f"{key_file}: set CERTBOTLESS_ACCOUNT_KEY_FILE to its target"
                )
            raise AccountKeyMounted(
                f"mounted secret {secret[0]} into service {service} at "
                f"{key_file}; Swarm restarts this task with it"
            )
    if fresh_pem is not None:
        return load_account_key_pem(fresh_pem)
    raise AccountKeyUnavailable(
        f"the ACME account key is in secret {secret[0]}, but {key_file} does "
        f"not exist here: mount the secret there (docker service update --secret-add "
        f"source={secret[0]},target={key_file},mode=0400 …)"
    )


class AccountKeyExists(Exception):
    """certbotless has an account key already, and the import was not told to replace it."""


class AccountKeyAction(StrEnum):
    CREATE = "create"  # certbotless has no account key yet
    KEEP = "keep"  # the key is certbotless's account key already
    REPLACE = "replace"  # a newer secret version, mounted in place of the current one


def key_thumbprint(key_pem: bytes) -> str:
    """The key's JWK thumbprint (RFC 7638), hex: the same for the same key in any encoding."""
    return load_account_key_pem(key_pem).thumbprint().hex()


def plan_account_key(
    settings: Settings, store: CertStore, key_pem: bytes, replace: bool
) -> AccountKeyAction:
    """What installing `key_pem` as the account key would do; AccountKeyExists when another key
    is the account's and `replace` is not set."""
    secret = store.account_key_secret()
    if secret is None:
        return AccountKeyAction.CREATE
    thumbprint = key_thumbprint(key_pem)
    current = store.account_key_thumbprint() or _mounted_thumbprint(settings)
    if current == thumbprint:
        return AccountKeyAction.KEEP
    if not replace:
        raise AccountKeyExists(
            f"certbotless already has an ACME account key (secret {secret[0]}); to make the "
            "imported account certbotless's instead, run again with --replace-account (the "
            "current key stays in its secret, and its certificates stay valid)"
        )
    return AccountKeyAction.REPLACE


def install_account_key(
    settings: Settings, swarm: Swarm, store: CertStore, key_pem: bytes, action: AccountKeyAction
) -> str:
    """Store `key_pem` as the account key as `action` says and mount it into certbotless's own
    service where that is known (Swarm then restarts it with the key). Returns what it did."""
    if action == AccountKeyAction.KEEP:
        return "the imported account key is certbotless's account key already"
    thumbprint = key_thumbprint(key_pem)
    before = store.account_key_secret()
    if action == AccountKeyAction.CREATE:
        secret = store.create_account_key_secret(key_pem, thumbprint)
        if secret is None:
            raise AccountKeyExists("another certbotless made an account key meanwhile; run again")
    else:
        secret = store.add_account_key_version(key_pem, thumbprint)
    service, target = settings.own_service, str(settings.account_key_file)
    if service is not None:
        ref = FileReference(ObjectKind.SECRET, secret[1], secret[0], target, 0o400)
        mount_secret(swarm, service, ref)
        return (
            f"stored the account key as secret {secret[0]} and mounted it into service "
            f"{service} at {target}; Swarm restarts {service} with it"
        )
    if before is None:
        return (
            f"stored the account key as secret {secret[0]}; the certbotless service mounts it "
            "itself when it starts"
        )
    return (
        f"stored the account key as secret {secret[0]}; make the certbotless service use it: "
        f"docker service update --secret-rm {before[0]} --secret-add "
        f"source={secret[0]},target={target},mode=0400 <the certbotless service>"
    )


def _mounted_thumbprint(settings: Settings) -> str:
    """The thumbprint of the key mounted into this container, if any (older secrets carry no
    thumbprint label)."""
    try:
        return key_thumbprint(settings.account_key_file.read_bytes())
    except (OSError, ValueError, TypeError):
        return ""
