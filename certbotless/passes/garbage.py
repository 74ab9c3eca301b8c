"""The gc step: remove stored versions and nginx.confs nothing uses any more (store.plan_garbage
decides)."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta

from certbotless.model import Removal, StoredCert
from certbotless.seams import CertificateStore
from certbotless.settings import Settings
from certbotless.swarm.store import plan_garbage

log = logging.getLogger(__name__)


def collect_garbage(
    store: CertificateStore,
    referenced: Collection[str],
    stored: Sequence[StoredCert],
    wanted: Collection[str],
    settings: Settings,
    dry_run: bool,
) -> list[Removal]:
    """`referenced`: every object a service's current or previous spec names."""
    removals = plan_garbage(
        stored,
        store.collectable_objects(),
        referenced,
        wanted,
        datetime.now(UTC),
        settings.gc_keep_versions,
        timedelta(days=settings.gc_keep_expired_days),
    )
    for removal in removals:
        if not dry_run:
            store.remove(removal.target)
        log.info(
            "gc: %s %s %s (%s)",
            "would remove" if dry_run else "removed",
            removal.target.kind,
            removal.target.name,
            removal.reason,
        )
    return removals
