"""What `certbotless list` and `certbotless render` show, read through the seams."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType

from certbotless.acme.ari import lifetime_renewal_time
from certbotless.daemon.alerts import is_expiring
from certbotless.labels.dialects import discovered, edge_if_any
from certbotless.model import Condition, Listed, RenewalFailure
from certbotless.seams import CertificateStore, EdgeDeployer, ServiceSource, StatusStore
from certbotless.settings import Settings
from certbotless.swarm.store import latest_per_name


def listing(
    settings: Settings,
    services: ServiceSource,
    store: CertificateStore,
    statuses: StatusStore,
    edge: EdgeDeployer,
    recorded: Mapping[str, str] = MappingProxyType({}),
) -> list[Listed]:
    """Each certificate's version in use, and its status record; a certificate that never got
    a version is listed while it is failing."""
    seen = services.services()
    current = latest_per_name(store.inventory(), datetime.now(UTC))
    records = statuses.load()
    wanted = {spec.name for spec in discovered(settings, seen, None, recorded=recorded).specs}
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
    settings: Settings,
    services: ServiceSource,
    store: CertificateStore,
    edge: EdgeDeployer,
    recorded: Mapping[str, str] = MappingProxyType({}),
) -> str:
    """What a pass would deploy: nginx.conf, or with an own nginx.conf the snippets; `recorded`:
    the claims ledger."""
    seen = services.services()
    edge_name = edge_if_any(settings, seen)
    found = discovered(settings, seen, edge_name, services.secret_names(), recorded)
    wanted = {spec.name for spec in found.specs}  # only what labels want is served
    latest = latest_per_name(store.inventory(), datetime.now(UTC))
    current = {name: cert for name, cert in latest.items() if name in wanted}
    return edge.render(edge_name, found.routes, current, sorted(wanted))


def listed_json(row: Listed, now: datetime) -> dict[str, object]:
    """One certificate as `certbotless list --json` and the status page's API show it."""
    cert = row.cert
    failure = row.failure
    return {
        "name": row.name,
        "domains": list(cert.domains) if cert else [],
        "not_after": cert.not_after.isoformat() if cert else None,
        "days_left": round(days_left(cert.not_after, now), 4) if cert else None,
        "serial": cert.serial if cert else None,
        "key_type": cert.key_type.value if cert else None,
        "in_use": row.in_use,
        "wanted": row.wanted,
        "status": listed_status(row, now),
        "failure": _failure_json(row) if failure else None,
        "config": cert.config_name if cert else None,
        "secret": cert.secret_name if cert else None,
        "label_mismatches": list(cert.mismatches) if cert else [],
        **issuer_json(row),
    }


def issuer_json(row: Listed) -> dict[str, object]:
    """Which issuer the version in use came from, the one a label pins, and why the issuers
    before it were passed over for that version."""
    record = row.status
    return {
        "issuer": (record.issuer or None) if record else None,
        "pinned_issuer": record.pinned if record else None,
        "passed_over": list(record.skipped) if record else [],
    }


def issuer_text(row: Listed) -> str:
    """The issuer column of `list`: its name, `*` after it when issuers were passed over."""
    record = row.status
    if record is None or not record.issuer:
        return "-"
    return record.issuer + ("*" if record.skipped else "")


def _failure_json(row: Listed) -> dict[str, object]:
    assert row.failure is not None
    record = row.status
    next_attempt = record.next_attempt if record else None
    return {
        "at": row.failure.at.isoformat(),
        "error": row.failure.error,
        "reason": record.reason.value if record and record.reason else None,
        "failures": record.failures if record else 1,
        "next_attempt": next_attempt.isoformat() if next_attempt else None,
        "abandoned": bool(record and record.abandoned),
    }


def listed_status(row: Listed, now: datetime) -> str:
    """expired / expiring (less than 1/6 of the lifetime left) / abandoned (failed for 30 days:
    not ordered again until its labels change) / failed (the last renewal attempt failed) /
    renewing (due) / unwanted (no label asks for it: neither served nor renewed) / ok."""
    cert = row.cert
    if cert is not None and cert.not_after <= now:
        return "expired"
    if cert is not None and is_expiring(cert, now):
        return "expiring"
    if row.failure is not None and row.status is not None and row.status.abandoned:
        return "abandoned"
    if row.failure is not None:
        return "failed"
    if not row.wanted:
        return "unwanted"
    if cert is not None and now >= lifetime_renewal_time(cert.not_before, cert.not_after):
        return "renewing"
    return "ok"


def days_left(not_after: datetime, now: datetime) -> float:
    return (not_after - now).total_seconds() / 86400


def status_text(row: Listed, now: datetime) -> str:
    """A row's status as `list` words it: with the failure and what it means."""
    status = listed_status(row, now)
    if status == "unwanted":
        return f"{status} (no label asks for it: neither served nor renewed)"
    record = row.status
    if row.failure is None and record is not None and record.skipped:
        return f"{status} (from issuer {record.issuer}, passed over: {'; '.join(record.skipped)})"
    if row.failure is None:
        return status
    if record is not None and record.abandoned:
        status += f" (failing since {record.failing_since:%Y-%m-%d})"
    elif record is not None and record.next_attempt is not None:
        status += (f" ({record.failures} in a row, next attempt "
                   f"{record.next_attempt:%Y-%m-%d %H:%M} UTC)")  # fmt: skip
    return f"{status}: {row.failure.at:%Y-%m-%d %H:%M} {row.failure.error}"


def listed_table(rows: list[Listed], now: datetime) -> list[str]:
    """`certbotless list`'s lines: a header, then one per certificate."""
    lines = [
        f"{'NAME':<28} {'DOMAINS':<32} {'NOT AFTER (UTC)':<16} {'DAYS':>7} {'KEY':<7} "
        f"{'IN USE':<6} {'ISSUER':<14} {'SERIAL':<36} STATUS"
    ]
    for row in rows:
        cert = row.cert
        used = "?" if row.in_use is None else ("yes" if row.in_use else "no")
        domains = ",".join(cert.domains) if cert is not None else "-"
        lines.append(
            f"{row.name:<28} {domains:<32} "
            + (
                f"{cert.not_after:%Y-%m-%d %H:%M} {days_left(cert.not_after, now):>7.2f} "
                f"{cert.key_type.value:<7} {used:<6} {issuer_text(row):<14} {cert.serial:<36} "
                if cert is not None
                else f"{'-':<16} {'-':>7} {'-':<7} {'-':<6} {'-':<14} {'-':<36} "
            )
            + status_text(row, now)
        )
    return lines
