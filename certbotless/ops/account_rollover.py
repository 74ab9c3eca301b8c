"""`certbotless account rollover`: the ACME account's key replaced (RFC 8555 §7.3.5), the account
kept, and never a moment without a stored key that works.

The order matters: the new key is stored as a new version of the account key secret *before*
the CA is told (once it is, only the new key works); the old secret is retired only after a
request signed with the new key has succeeded, and then labelled, not removed (Swarm refuses to
remove a secret a service still mounts, and an operator may want to see it).
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime

from docker.errors import APIError

from certbotless.acme.errors import AcmeError
from certbotless.acme.keys import generate_private_key, load_account_key_pem, private_key_pem
from certbotless.acme.session import CaSession
from certbotless.edge.rollout import RolloutError, mount_secret
from certbotless.model import FileReference, KeyType, ObjectKind, ObjectRole
from certbotless.ops.account_key import account_key_file, key_thumbprint
from certbotless.settings import Settings
from certbotless.swarm.api import Swarm
from certbotless.swarm.store import KIND, CertStore

log = logging.getLogger(__name__)

RETIRED = "certbotless.account.retired"  # on an account key secret the CA no longer accepts


class RolloverFailed(Exception):
    """The rollover stopped; the message says which key the account now signs with."""


def roll_over_account_key(
    settings: Settings,
    swarm: Swarm,
    store: CertStore,
    session: CaSession,
    key_type: KeyType = KeyType.EC256,
    owner: str = "",
) -> list[str]:
    """Replace the account's key with a fresh one; returns what was done, line by line.
    `owner`: whose key it is, as `account_key.key_owners` names it ("": the first issuer's)."""
    account_url = session.existing_account()
    if account_url is None:
        raise RolloverFailed(
            "the CA knows no account for the current key: nothing to roll over (certbotless "
            "registers one when it first orders)"
        )
    old = store.account_key_secret(owner)
    new_pem = private_key_pem(generate_private_key(key_type))
    # Stored before the CA is told: from then on, it is the only key that works.
    name, secret_id = store.add_account_key_version(new_pem, key_thumbprint(new_pem),
                                                    issuer=owner)  # fmt: skip
    try:
        session.change_key(load_account_key_pem(new_pem))
    except AcmeError as error:
        _withdraw(swarm, name)
        raise RolloverFailed(
            f"the CA refused the key change ({error}); the account keeps its current key"
        ) from error
    said = [f"the CA moved account {account_url} to a new key, stored as secret {name}"]
    found = session.existing_account()
    if found != account_url:
        raise RolloverFailed(
            f"the CA accepted the key change, but the new key finds account {found}, not "
            f"{account_url}; secret {name} holds the new key and the old secret is kept"
        )
    said.append("a request signed with the new key succeeded: the account URL is unchanged")
    target = str(account_key_file(settings, owner))
    said.append(_mount(settings, swarm, (name, secret_id), target, None if old is None else old[0]))
    if old is not None:
        _retire(swarm, old[0])
        said.append(
            f"secret {old[0]} labelled {RETIRED} (the CA no longer accepts its key); remove it "
            "with docker secret rm once no service mounts it"
        )
    return said


def _withdraw(swarm: Swarm, name: str) -> None:
    """The new secret was never used: removed, so that the current one stays the newest."""
    try:
        swarm.remove_secret(name)
    except APIError as error:
        log.error(
            "secret %s holds a key the CA never accepted, and could not be removed (%s): "
            "remove it by hand (docker secret rm %s)",
            name,
            error,
            name,
        )


def _mount(
    settings: Settings, swarm: Swarm, new: tuple[str, str], target: str, old_name: str | None
) -> str:
    name, secret_id = new
    service = settings.own_service or swarm.own_service_name()
    if service is not None:
        reference = FileReference(ObjectKind.SECRET, secret_id, name, target, 0o400)
        with contextlib.suppress(RolloutError):
            mount_secret(swarm, service, reference)
            return f"mounted {name} into service {service} at {target}; Swarm restarts it"
    return (
        f"make the certbotless service use it now (its old key no longer works): docker service "
        f"update --secret-rm {old_name or '<the old key secret>'} --secret-add "
        f"source={name},target={target},mode=0400 <the certbotless service>"
    )


def _retire(swarm: Swarm, name: str) -> None:
    for secret in swarm.secrets(f"{KIND}={ObjectRole.ACCOUNT_KEY}"):
        if secret["Spec"]["Name"] == name:
            labels = dict(secret["Spec"].get("Labels") or {})
            labels[RETIRED] = datetime.now(UTC).isoformat(timespec="seconds")
            try:
                swarm.update_object_labels(ObjectKind.SECRET, secret, labels)
            except APIError as error:
                log.warning("secret %s could not be labelled %s: %s", name, RETIRED, error)
