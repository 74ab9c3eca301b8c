"""What `certbotless list` and `certbotless render` show, read through the seams."""

from __future__ import annotations

from datetime import UTC, datetime

from certbotless.model import Condition, Listed, RenewalFailure
from certbotless.observe import discovered, edge_if_any
from certbotless.seams import CertificateStore, EdgeDeployer, ServiceSource, StatusStore
from certbotless.settings import Settings
from certbotless.store import latest_per_name


def listing(
    settings: Settings,
    services: ServiceSource,
    store: CertificateStore,
    statuses: StatusStore,
    edge: EdgeDeployer,
) -> list[Listed]:
    """Each certificate's version in use, and its status record; a certificate that never got
    a version is listed while it is failing."""
    seen = services.services()
    current = latest_per_name(store.inventory(), datetime.now(UTC))
    records = statuses.load()
    wanted = {spec.name for spec in discovered(settings, seen, None).specs}
    edge_name = edge_if_any(settings, seen)
    mounted = None if edge_name is None else edge.mounted_object_ids(edge_name)
    failing = {name for name, record in records.items() if record.condition is Condition.FAILING}
    rows = []
    for name in sorted(set(current) | failing):
        record = records.get(name)
        cert = current.get(name)
        failure = None
        if record is not None and name in failing and record.last_failure is not None:
            failure = RenewalFailure(record.last_failure, record.message)
        in_use = None if mounted is None or cert is None else cert.config_id in mounted
        rows.append(Listed(name, cert, in_use, name in wanted, failure, record))
    return rows


def rendered(
    settings: Settings, services: ServiceSource, store: CertificateStore, edge: EdgeDeployer
) -> str:
    """What a pass would deploy: nginx.conf, or with an own nginx.conf the snippets."""
    seen = services.services()
    edge_name = edge_if_any(settings, seen)
    found = discovered(settings, seen, edge_name, services.secret_names())
    current = latest_per_name(store.inventory(), datetime.now(UTC))
    return edge.render(edge_name, found.routes, current, [spec.name for spec in found.specs])
