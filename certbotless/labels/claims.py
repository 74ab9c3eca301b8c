"""Who holds what between services: recorded claims, and who an owner lets join. Pure.

A certificate name, a host (and a wildcard's subtree), a host and path, a Traefik middleware name
belong to the service that claimed them first, as the sidecar recorded it (`Ledger`: each claim
→ the claimant's Swarm ID, kept by `swarm.claims`). A recorded claim passes on only when its
owner no longer claims it (the service is gone or its labels changed); new claims in one pass
go by Swarm's CreatedAt, then name (`claim_order`), as before anything was recorded.

A service's own stack label (`com.docker.stack.namespace`) is never trusted for this: any service
may set it. Others join an owner's certificate, host or middleware only when the owner's
`certbotless.share` label names them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from certbotless.labels.native import SHARE
from certbotless.model import ServiceInfo

EVERYONE = "*"
_DAWN = datetime.min.replace(tzinfo=UTC)

T = TypeVar("T")


def claim_order(service: ServiceInfo) -> tuple[bool, datetime, str]:
    """New claims of one pass: oldest first by Swarm's CreatedAt; a service of unknown age after
    every dated one; ties by name."""
    return (service.created_at is None, service.created_at or _DAWN, service.name)


def identity(service: ServiceInfo) -> str:
    """What a claim records: Swarm's ID of the service (its name where none is known, as in
    `lint`)."""
    return service.id or service.name


def shared_with(owner: ServiceInfo) -> frozenset[str]:
    """The names in the owner's `certbotless.share` label."""
    value = owner.labels.get(SHARE, "")
    return frozenset(word.strip() for word in value.split(",") if word.strip())


def may_join(joiner: ServiceInfo, owner: ServiceInfo) -> bool:
    """Whether `joiner` may use what `owner` holds: it is the owner, or the owner's
    `certbotless.share` names it (its Swarm name, or its name within the owner's stack as a
    stack file writes it: `api` for `shop_api`), or is `*`; or both are of one stack, where
    the operator trusts services' stacks (CERTBOTLESS_TRUST_STACK_NAMESPACE)."""
    if joiner.name == owner.name or (
        joiner.trusted_stack and joiner.trusted_stack == owner.trusted_stack
    ):
        return True
    names = shared_with(owner)
    if EVERYONE in names or joiner.name in names:
        return True
    return bool(owner.stack) and any(joiner.name == f"{owner.stack}_{n}" for n in names)


def wildcard_above(host: str) -> str | None:
    """The wildcard whose subtree holds `host` (`*.example.com` for `a.example.com`)."""
    if host.startswith("*.") or "." not in host:
        return None
    return "*." + host.split(".", 1)[1]


class Ledger:
    """The claims recorded before this pass (key → identity), and those this pass settles: every
    key claimed now, with its owner."""

    def __init__(self, recorded: Mapping[str, str]) -> None:
        self.recorded = recorded
        self.settled: dict[str, str] = {}

    def first(
        self, key: str, claimants: Sequence[T], service_of: Callable[[T], ServiceInfo]
    ) -> list[T]:
        """`claimants` (in claim order) with the recorded owner's first, when it still claims
        `key`; the first of them is the owner, and is recorded."""
        owner = self.recorded.get(key)
        ordered = sorted(claimants, key=lambda c: identity(service_of(c)) != owner)
        if ordered:
            self.settled[key] = identity(service_of(ordered[0]))
        return ordered


def host_key(host: str) -> str:
    return f"host:{host}"


def name_key(name: str) -> str:
    return f"certificate:{name}"


def path_key(host: str, path: str, conditions: tuple[object, ...]) -> str:
    """A host and path, with a digest of the conditions that tell its routes apart."""
    if not any(conditions):
        return f"path:{host}{path}"
    digest = hashlib.sha256(repr(conditions).encode()).hexdigest()[:16]
    return f"path:{host}{path} {digest}"


def middleware_key(name: str) -> str:
    return f"middleware:{name}"
