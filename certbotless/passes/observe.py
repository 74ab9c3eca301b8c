"""The observe step: what the labels want, what the swarm holds, what passes remembered."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from certbotless.labels.dialects import discovered, edge_if_any
from certbotless.model import (
    CertificateStatus,
    CertSpec,
    Discovery,
    LabelProblem,
    PastOrder,
    ServiceInfo,
    StoredCert,
)
from certbotless.seams import PassParts
from certbotless.settings import Settings
from certbotless.swarm.store import latest_per_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Observation:
    services: tuple[ServiceInfo, ...]
    edge: str | None  # the edge service, when one is configured or labelled
    found: Discovery
    wanted: dict[str, CertSpec]  # the labels' certificates and those asked for now
    stored: tuple[StoredCert, ...]
    current: dict[str, StoredCert]  # the version in use of each name
    statuses: dict[str, CertificateStatus]
    orders: tuple[PastOrder, ...]  # the last week's, for the CA's rate limits
    recorded: Mapping[str, str]  # the claims recorded before (found.claims: those now)
    # Objects with the store's labels certbotless did not make: ignored, reported, kept.
    untrusted: tuple[LabelProblem, ...] = ()


def observe(
    settings: Settings, parts: PassParts, extra_specs: Sequence[CertSpec] = ()
) -> Observation:
    services = parts.services.services()
    edge = edge_if_any(settings, services)
    recorded = parts.claims.load()
    found = discovered(settings, services, edge, parts.services.secret_names(), recorded)
    untrusted = parts.store.untrusted()
    # What an earlier release made and rolled is what the edge mounts now: signed once.
    mounted = parts.edge.mounted_object_ids(edge) if untrusted and edge is not None else None
    if mounted and parts.store.adopt(mounted):
        untrusted = parts.store.untrusted()
    stored = tuple(parts.store.inventory())
    return Observation(
        services=tuple(services),
        edge=edge,
        found=found,
        wanted={spec.name: spec for spec in (*found.specs, *extra_specs)},
        stored=stored,
        current=latest_per_name(stored, datetime.now(UTC)),
        statuses=parts.statuses.load(),
        orders=tuple(parts.orders.load()),
        recorded=recorded,
        untrusted=tuple(untrusted),
    )


def wanted_names(settings: Settings, parts: PassParts) -> set[str]:
    """The certificate names the labels want now, claims settled as recorded."""
    found = discovered(settings, parts.services.services(), None, recorded=parts.claims.load())
    return {spec.name for spec in found.specs}


class ProblemLog:
    """Each label problem is logged once when it appears and once when it is gone."""

    def __init__(self) -> None:
        self._reported: set[LabelProblem] = set()

    def log(self, problems: Sequence[LabelProblem]) -> None:
        current = set(problems)
        for problem in sorted(current - self._reported, key=str):
            log.warning("label problem: %s", problem)
        for problem in sorted(self._reported - current, key=str):
            log.info("label problem resolved: %s", problem)
        self._reported = current
