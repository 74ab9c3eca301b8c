"""One pass: desired (labels) vs actual (swarm) → plan → act.

The only module that sequences stages.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from certbotless.acme.ari import lifetime_renewal_time
from certbotless.acme.challenges import EdgeSelfCheck
from certbotless.acme.errors import AcmeError
from certbotless.acme.orders import AcmeIssuer
from certbotless.discovery import discover, find_edge_service
from certbotless.edge import (
    NGINX_CONF_TARGET,
    cert_files,
    render_nginx_conf,
    validate_nginx_conf,
)
from certbotless.model import CertSpec, FileReference, PassReport, Plan, Route, StoredCert
from certbotless.rollout import RolloutResult, roll_service
from certbotless.settings import Settings
from certbotless.store import CertStore, latest_per_name
from certbotless.swarm import Swarm

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

def plan_certificates(
    specs: Iterable[CertSpec],
    current: Mapping[str, StoredCert],
    now: datetime,
    forced: Collection[str] = (),
    renew_at: Mapping[str, datetime] | None = None,
) -> Plan:
    """`current`: the version in use per name; `renew_at`: the CA's (ARI) renewal time per name,
    where it gave one (otherwise 1/3 of the lifetime left)."""
    renew_at = renew_at or {}
    to_issue: list[CertSpec] = []
    reasons: dict[str, str] = {}
    for spec in specs:
        cert = current.get(spec.name)
        if cert is None:
            reason = "new"
        elif set(cert.domains) != set(spec.domains):
            reason = "domains changed"
        elif cert.key_type != spec.key_type:
            reason = "key type changed"
        elif spec.name in forced:
            reason = "requested now"
        elif now >= renew_at.get(spec.name, lifetime_renewal_time(cert.not_before, cert.not_after)):
            reason = f"due for renewal (expires {cert.not_after:%Y-%m-%d %H:%M} UTC)"
        else:
            continue
        to_issue.append(spec)
        reasons[spec.name] = reason
    return Plan(to_issue=tuple(to_issue), reasons=reasons, current=dict(current))


def replaced_certificates(plan: Plan) -> dict[str, str]:
    """ARI `replaces`: the identifier of the version each renewal supersedes (same name, and at
    least one name in common, as RFC 9773 requires)."""
    replaces = {}
    for spec in plan.to_issue:
        old = plan.current.get(spec.name)
        if old is not None and old.ari_id and set(old.domains) & set(spec.domains):
            replaces[spec.name] = old.ari_id
    return replaces


def edge_references(
    routes: Iterable[Route], current: dict[str, StoredCert], conf: tuple[str, str], certs_dir: str
) -> list[FileReference]:
    """What the edge must mount: its nginx.conf and the current version of each routed cert."""
    routed_hosts = {host for route in routes for host in route.hosts}
    wanted = [FileReference("config", conf[1], conf[0], NGINX_CONF_TARGET, 0o444)]
    for cert in sorted(current.values(), key=lambda c: c.name):
        if routed_hosts.isdisjoint(cert.domains):
            continue
        files = cert_files(cert.name, certs_dir)
        wanted.append(
            FileReference("config", cert.config_id, cert.config_name, files.fullchain, 0o444)
        )
        wanted.append(
            FileReference("secret", cert.secret_id, cert.secret_name, files.privkey, 0o400)
        )
    return wanted


@contextmanager
def pass_lock(path: Path) -> Iterator[None]:
    """One pass at a time per container, whether from the daemon or `docker exec … issue`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Reconciler:
    def __init__(
        self,
        settings: Settings,
        swarm: Swarm,
        store: CertStore,
        issuer_factory: Callable[[], AcmeIssuer],
    ) -> None:
        self.settings = settings
        self.swarm = swarm
        self.store = store
        self._issuer_factory = issuer_factory
        self._issuer: AcmeIssuer | None = None

    @property
    def issuer(self) -> AcmeIssuer:
        if self._issuer is None:
            self._issuer = self._issuer_factory()
        return self._issuer

    def run_pass(
        self,
        force: bool = False,
        extra_specs: Sequence[CertSpec] = (),
        roll: bool = True,
        progress: Progress = log.info,
    ) -> PassReport:
        with pass_lock(self.settings.lock_file):
            services = self.swarm.services()
            found = discover(services)
            for problem in found.problems:
                log.warning("%s", problem)
            wanted_specs = {spec.name: spec for spec in (*found.specs, *extra_specs)}
            forced = set(wanted_specs) if force else {spec.name for spec in extra_specs}
            current = latest_per_name(self.store.inventory())
            renewals = self.issuer.renewal_times(
                [cert for name, cert in current.items() if name in wanted_specs]
            )
            plan = plan_certificates(
                wanted_specs.values(),
                current,
                datetime.now(UTC),
                forced,
                {name: renewal.renew_at for name, renewal in renewals.items()},
            )
            # The edge is needed to roll it, or to self-check challenges through it.
            needs_edge = roll or (self.settings.self_check and bool(plan.to_issue))
            edge = (
                (self.settings.nginx_service or find_edge_service(services)) if needs_edge else None
            )
            self_check = (
                EdgeSelfCheck(f"tasks.{edge}")
                if edge is not None and self.settings.self_check
                else None
            )
            issued: list[str] = []
            failed: dict[str, str] = {}
            for spec in plan.to_issue:
                progress(f"{spec.name}: {plan.reasons[spec.name]}")
            outcomes = self.issuer.issue_many(
                plan.to_issue, progress, self_check, replaced_certificates(plan)
            )
            for spec, outcome in outcomes:
                if isinstance(outcome, AcmeError):
                    log.error("%s", outcome)
                    failed[spec.name] = str(outcome)
                    continue
                stored = self.store.save(outcome)
                progress(
                    f"{spec.name}: stored {stored.config_name} serial {stored.serial}, "
                    f"expires {stored.not_after:%Y-%m-%d %H:%M} UTC"
                )
                current[spec.name] = stored
                issued.append(spec.name)
            rolled = False
            if roll and edge is not None:
                rolled = self._deploy_edge(edge, found.routes, current, progress).changed
            return PassReport(
                issued=tuple(issued), failed=failed, problems=found.problems, rolled=rolled
            )

    def render(self) -> str:
        found = discover(self.swarm.services())
        current = latest_per_name(self.store.inventory())
        return self._render(found.routes, current)

    def _render(self, routes: Iterable[Route], current: dict[str, StoredCert]) -> str:
        return render_nginx_conf(
            routes, current, self.settings.responder_upstream, self.settings.certs_dir
        )

    def _deploy_edge(
        self,
        edge_service: str,
        routes: tuple[Route, ...],
        current: dict[str, StoredCert],
        progress: Progress,
    ) -> RolloutResult:
        text = self._render(routes, current)
        validate_nginx_conf(text, self.settings.certs_dir)
        conf = self.store.ensure_nginx_conf(text)
        wanted = edge_references(routes, current, conf, self.settings.certs_dir)
        result = roll_service(
            self.swarm, edge_service, wanted, self.settings.rollout_timeout, progress
        )
        if result.changed:
            progress(f"{edge_service}: rolled in {result.seconds:.1f} s with {conf[0]}")
        return result
