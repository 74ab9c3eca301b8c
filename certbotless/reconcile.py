"""One pass: desired (labels) vs actual (swarm) → plan → act.

The only module that sequences stages.
"""

from __future__ import annotations

import fcntl
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from certbotless.acme.ari import RenewalTime, lifetime_renewal_time
from certbotless.acme.challenges import EdgeSelfCheck
from certbotless.acme.errors import Abandoned, AcmeError, BackingOff, CaUnreachable
from certbotless.acme.orders import AcmeIssuer, RevocationReason
from certbotless.discovery import EdgeNotFound, discover, find_edge_service
from certbotless.edge import (
    DEFAULT_NGINX_VERSION,
    NGINX_CONF_TARGET,
    NginxConfigError,
    NginxVersion,
    cert_files,
    local_nginx_version,
    placeholder_certificate,
    render_nginx_conf,
    render_snippets,
    validate_nginx_conf,
)
from certbotless.model import (
    CertSpec,
    Discovery,
    FileReference,
    LabelProblem,
    Listed,
    PassReport,
    Plan,
    Removal,
    RenewalFailure,
    Route,
    ServiceInfo,
    StoredCert,
)
from certbotless.rollout import (
    RolledBack,
    RolloutError,
    RolloutResult,
    ServedCertificates,
    check_in_edge_image,
    nginx_version_in_edge_image,
    references_change,
    roll_service,
    rolls_start_first_with_rollback,
    stuck_update,
)
from certbotless.settings import Settings
from certbotless.store import CertStore, latest_per_name, plan_garbage
from certbotless.swarm import SWARM_ERRORS, Json, NotFound, Swarm

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


def plan_certificates(
    specs: Iterable[CertSpec],
    current: Mapping[str, StoredCert],
    now: datetime,
    forced: Collection[str] = (),
    renew_at: Mapping[str, datetime] | None = None,
    directory_url: str = "",
) -> Plan:
    """`current`: the version in use per name; `renew_at`: the CA's (ARI) renewal time per name,
    where it gave one (otherwise 1/3 of the lifetime left); `directory_url`: the CA configured
    now, so that certificates from another one (say, staging) are replaced."""
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
        elif not from_ca(cert, directory_url):
            reason = f"issued by another CA ({cert.directory_url})"
        elif spec.name in forced:
            reason = "requested now"
        elif now >= renew_at.get(spec.name, lifetime_renewal_time(cert.not_before, cert.not_after)):
            reason = f"due for renewal (expires {cert.not_after:%Y-%m-%d %H:%M} UTC)"
        else:
            continue
        to_issue.append(spec)
        reasons[spec.name] = reason
    return Plan(tuple(to_issue), reasons, dict(current), directory_url)


def from_ca(cert: StoredCert, directory_url: str) -> bool:
    """Whether `cert` came from the CA at `directory_url` (unknown on either side counts as yes)."""
    return not (cert.directory_url and directory_url) or cert.directory_url == directory_url


def replaced_certificates(plan: Plan) -> dict[str, str]:
    """ARI `replaces`: the identifier of the version each renewal supersedes (same name, same CA,
    and at least one name in common, as RFC 9773 requires)."""
    replaces = {}
    for spec in plan.to_issue:
        old = plan.current.get(spec.name)
        if (
            old is not None
            and old.ari_id
            and from_ca(old, plan.directory_url)
            and set(old.domains) & set(spec.domains)
        ):
            replaces[spec.name] = old.ari_id
    return replaces


def edge_references(
    routes: Iterable[Route], current: dict[str, StoredCert], conf: tuple[str, str], certs_dir: str
) -> list[FileReference]:
    """What the edge must mount: its nginx.conf and the current version of each routed cert."""
    routed_hosts = {host for route in routes for host in route.hosts}
    wanted = [FileReference("config", conf[1], conf[0], NGINX_CONF_TARGET, 0o444)]
    for cert in sorted(current.values(), key=lambda c: c.name):
        served = tuple(domain for domain in cert.domains if domain in routed_hosts)
        if not served:
            continue
        files = cert_files(cert.name, certs_dir)
        wanted.append(
            FileReference(
                "config",
                cert.config_id,
                cert.config_name,
                files.fullchain,
                0o444,
                serves=(served, cert.serial),
            )
        )
        wanted.append(
            FileReference("secret", cert.secret_id, cert.secret_name, files.privkey, 0o400)
        )
    return wanted


@dataclass
class _Issuance:
    issued: list[str] = field(default_factory=list)
    failed: dict[str, AcmeError] = field(default_factory=dict)
    saved: dict[str, StoredCert] = field(default_factory=dict)
    ca_unreachable: str | None = None


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


def earliest_renewal(
    in_use: Mapping[str, StoredCert], renewals: Mapping[str, RenewalTime], issuance: _Issuance
) -> datetime | None:
    """When the next certificate comes due (failed ones are retried on their own schedule)."""
    return min(
        (
            lifetime_renewal_time(cert.not_before, cert.not_after)
            if name in issuance.issued or name not in renewals
            else renewals[name].renew_at
            for name, cert in in_use.items()
            if name not in issuance.failed
        ),
        default=None,
    )


class PassAbandoned(Exception):
    """certbotless is stopping; the pass did not start."""


class Reconciler:
    def __init__(
        self,
        settings: Settings,
        swarm: Swarm,
        store: CertStore,
        issuer_factory: Callable[[], AcmeIssuer],
        stopping: threading.Event | None = None,
    ) -> None:
        self.settings = settings
        self.swarm = swarm
        self.store = store
        self._issuer_factory = issuer_factory
        self._issuer: AcmeIssuer | None = None
        # Set on SIGTERM: no new pass, no new order, no roll (the next start rolls).
        self.stopping = stopping or threading.Event()
        # Reference sets a roll failed with, so that the same roll is not retried every pass
        # (a restart tries once more). Only the latest few matter.
        self._failed_rollouts: deque[frozenset[str]] = deque(maxlen=16)
        self._reported: set[LabelProblem] = set()
        self._edge_nginx: dict[str, NginxVersion] = {}  # edge image → its nginx version

    @property
    def issuer(self) -> AcmeIssuer:
        if self._issuer is None:
            self._issuer = self._issuer_factory()
        return self._issuer

    def run_pass(
        self,
        force: bool | Collection[str] = False,
        extra_specs: Sequence[CertSpec] = (),
        roll: bool = True,
        progress: Progress = log.info,
        dry_run: bool = False,
        defer_roll: Callable[[float], bool] = lambda began: False,
    ) -> PassReport:
        """One pass. `force`: renew every certificate now (True) or these names. `dry_run`:
        order every wanted certificate but store nothing and roll nothing. `defer_roll`, asked
        before rolling with the `time.monotonic()` at which this pass began (had the lock):
        whether another pass follows at once (services changed since), which then rolls this
        pass's certificates with its own, in one roll."""
        with pass_lock(self.settings.lock_file):
            began = time.monotonic()
            if self.stopping.is_set():
                raise PassAbandoned("certbotless is stopping")
            services = self.swarm.services()
            edge = self._edge_if_any(services)
            found = self._discover(services, edge)
            self._report_problems(found.problems)
            wanted_specs = {spec.name: spec for spec in (*found.specs, *extra_specs)}
            forced = {spec.name for spec in extra_specs}
            if force is True or dry_run:
                forced |= set(wanted_specs)
            elif force:
                forced |= set(force)
            roll = roll and not dry_run
            stored = self.store.inventory()
            current = latest_per_name(stored)
            directory_url = self.issuer.directory_url
            renewals = self.issuer.renewal_times(
                [
                    cert
                    for name, cert in current.items()
                    if name in wanted_specs and from_ca(cert, directory_url)
                ]
            )
            plan = plan_certificates(
                wanted_specs.values(),
                current,
                datetime.now(UTC),
                forced,
                {name: renewal.renew_at for name, renewal in renewals.items()},
                directory_url,
            )
            # The edge is needed to roll it, or to self-check challenges through it.
            needs_edge = roll or (self.settings.self_check and bool(plan.to_issue))
            if needs_edge and edge is None:
                edge = find_edge_service(services)  # raises, saying how to mark the edge
            elif not needs_edge:
                edge = None
            self_check = (
                EdgeSelfCheck(f"tasks.{edge}", proxy_protocol=self.settings.proxy_protocol)
                if edge is not None and self.settings.self_check
                else None
            )
            issuance = self._issue(plan, progress, self_check, store=not dry_run)
            current.update(issuance.saved)
            stored.extend(issuance.saved.values())
            # Each failure in the CA's words from the last real attempt (a name in back-off was
            # not tried again): alerts stay the same while the problem does.
            failed = {name: str(error) for name, error in issuance.failed.items()}
            if not dry_run:
                recorded = self._record_failures(issuance, set(wanted_specs))
                failed = {name: recorded[name].error for name in failed}
            ca_unreachable = issuance.ca_unreachable
            if ca_unreachable is None and not plan.to_issue:
                # Nothing ordered: ask the CA anyway, so that an outage is noticed in time.
                ca_unreachable = self.issuer.unreachable()
            rolled, rollout_error = False, None
            removed: tuple[Removal, ...] = ()
            if roll and edge is not None and self.stopping.is_set():
                progress(f"stopping: {edge} is rolled at the next start")
            elif roll and edge is not None and defer_roll(began):
                progress(f"more services changed during this pass: the next pass rolls {edge}")
            elif roll and edge is not None:
                try:
                    rolled = self._deploy_edge(
                        edge, found.routes, current, set(wanted_specs), progress
                    ).changed
                except (RolloutError, NginxConfigError) as error:
                    log.error("%s", error)
                    rollout_error = str(error)
                else:
                    removed = tuple(self._collect_garbage(stored, set(wanted_specs), False))
            in_use = {name: cert for name, cert in current.items() if name in wanted_specs}
            return PassReport(
                issued=tuple(issuance.issued),
                failed=failed,
                problems=found.problems,
                rolled=rolled,
                rollout_error=rollout_error,
                removed=removed,
                ca_unreachable=ca_unreachable,
                certificates=tuple(in_use.values()),
                next_renewal=earliest_renewal(in_use, renewals, issuance),
            )

    def _issue(
        self, plan: Plan, progress: Progress, self_check: EdgeSelfCheck | None, store: bool
    ) -> _Issuance:
        """Order what the plan says, storing each certificate as it arrives (unless `store` is
        off, for a dry run)."""
        result = _Issuance()
        for spec in plan.to_issue:
            progress(f"{spec.name}: {plan.reasons[spec.name]}")
        outcomes = self.issuer.issue_many(
            plan.to_issue, progress, self_check, replaced_certificates(plan)
        )
        for spec, outcome in outcomes:
            if isinstance(outcome, Abandoned):
                progress(str(outcome))  # not a failure: the next start orders it
                continue
            if isinstance(outcome, AcmeError):
                log.error("%s", outcome)
                result.failed[spec.name] = outcome
                if isinstance(outcome, CaUnreachable):
                    result.ca_unreachable = str(outcome)
                continue
            if not store:
                result.issued.append(spec.name)
                progress(f"{spec.name}: dry run: the CA issued it (not stored, not rolled)")
                continue
            try:
                saved = self.store.save(outcome)
            except SWARM_ERRORS as error:
                log.error("%s: the CA issued it, but storing it failed: %s", spec.name, error)
                result.failed[spec.name] = AcmeError(
                    f"{spec.name}: the CA issued it, but the swarm did not store it: {error}"
                )
                continue
            result.issued.append(spec.name)
            progress(
                f"{spec.name}: stored {saved.config_name} serial {saved.serial}, "
                f"expires {saved.not_after:%Y-%m-%d %H:%M} UTC"
            )
            result.saved[spec.name] = saved
        return result

    def _record_failures(
        self, issuance: _Issuance, wanted_names: set[str]
    ) -> dict[str, RenewalFailure]:
        """Keep the swarm's record of failed renewals current: what failed now, and what failed
        before and was not tried since (a name in back-off keeps the words of its last try)."""
        recorded = self.store.failures()
        now = datetime.now(UTC)
        failures = {
            name: failure
            for name, failure in recorded.items()
            if name in wanted_names and name not in issuance.issued
        }
        for name, error in issuance.failed.items():
            if not (isinstance(error, BackingOff) and name in failures):
                failures[name] = RenewalFailure(now, str(error))
        self.store.record_failures(failures)
        return failures

    def revoke(
        self, name: str, reason: RevocationReason, progress: Progress = log.info
    ) -> PassReport:
        """Revoke the version of `name` in use, then issue and roll a new one if a label still
        wants the name (without one, nginx keeps serving the revoked certificate)."""
        with pass_lock(self.settings.lock_file):
            cert = latest_per_name(self.store.inventory()).get(name)
            if cert is None:
                raise LookupError(
                    f"no stored certificate is named {name!r}; see `certbotless list`"
                )
            self.issuer.revoke(self.swarm.config_data(cert.config_id), reason)
            progress(f"{name}: revoked serial {cert.serial} ({reason.name})")
            wanted = {spec.name for spec in self._discover(self.swarm.services(), None).specs}
        if name not in wanted:
            progress(f"{name}: no label wants it any more, so no new certificate")
            return PassReport()
        return self.run_pass(force={name}, progress=progress)

    def _discover(self, services: Sequence[ServiceInfo], edge: str | None) -> Discovery:
        return discover(services, edge, routing=self.settings.nginx_conf == "rendered")

    def _edge_if_any(self, services: Sequence[ServiceInfo]) -> str | None:
        try:
            return self.settings.nginx_service or find_edge_service(services)
        except EdgeNotFound:
            return None

    def _report_problems(self, problems: Sequence[LabelProblem]) -> None:
        """Each label problem is logged once when it appears and once when it is gone."""
        current = set(problems)
        for problem in sorted(current - self._reported, key=str):
            log.warning("label problem: %s", problem)
        for problem in sorted(self._reported - current, key=str):
            log.info("label problem resolved: %s", problem)
        self._reported = current

    def collect_garbage(self, dry_run: bool) -> list[Removal]:
        """What gc removes (or, with `dry_run`, would remove), under the pass lock."""
        with pass_lock(self.settings.lock_file):
            found = self._discover(self.swarm.services(), None)
            wanted = {spec.name for spec in found.specs}
            return self._collect_garbage(self.store.inventory(), wanted, dry_run)

    def _collect_garbage(
        self, stored: list[StoredCert], wanted_names: set[str], dry_run: bool
    ) -> list[Removal]:
        removals = plan_garbage(
            stored,
            self.store.collectable_objects(),
            self.swarm.referenced_object_ids(),
            wanted_names,
            datetime.now(UTC),
            self.settings.gc_keep_versions,
            timedelta(days=self.settings.gc_keep_expired_days),
        )
        for removal in removals:
            if not dry_run:
                self.store.remove(removal.target)
            log.info(
                "gc: %s %s %s (%s)",
                "would remove" if dry_run else "removed",
                removal.target.kind,
                removal.target.name,
                removal.reason,
            )
        return removals

    def listing(self) -> list[Listed]:
        """Each certificate's version in use, or its failure if it never got one."""
        services = self.swarm.services()
        current = latest_per_name(self.store.inventory())
        failures = self.store.failures()
        wanted = {spec.name for spec in self._discover(services, None).specs}
        try:
            edge = self.settings.nginx_service or find_edge_service(services)
            mounted: set[str] | None = self.swarm.mounted_object_ids(edge)
        except (EdgeNotFound, NotFound):
            mounted = None
        return [
            Listed(
                name,
                current.get(name),
                None if mounted is None or name not in current
                else current[name].config_id in mounted,
                name in wanted,
                failures.get(name),
            )
            for name in sorted(set(current) | set(failures))
        ]  # fmt: skip

    def render(self) -> str:
        """What a pass would deploy: nginx.conf, or with an own nginx.conf the snippets."""
        services = self.swarm.services()
        edge = self._edge_if_any(services)
        found = self._discover(services, edge)
        if self.settings.nginx_conf == "own":
            snippets = render_snippets(
                [spec.name for spec in found.specs],
                self.settings.responder_upstream,
                self.settings.certs_dir,
            )
            return "".join(f"# --- {target}\n{text}" for target, text in snippets.items())
        current = latest_per_name(self.store.inventory())
        version = DEFAULT_NGINX_VERSION
        if edge is not None:
            version = self._edge_nginx_version(self.swarm.inspect_service(edge))
        return self._render(found.routes, current, version)

    def _render(
        self, routes: Iterable[Route], current: dict[str, StoredCert], version: NginxVersion
    ) -> str:
        return render_nginx_conf(
            routes,
            current,
            self.settings.responder_upstream,
            self.settings.certs_dir,
            nginx_version=version,
            front_subnets=self.settings.front_subnets,
        )

    def _edge_nginx_version(self, service: Json) -> NginxVersion:
        """Asked once per edge image; if it cannot be asked, the syntax every version reads."""
        image = service["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
        if image not in self._edge_nginx:
            try:
                self._edge_nginx[image] = nginx_version_in_edge_image(
                    self.swarm, service, self.settings.rollout_timeout
                )
            except (RolloutError, ValueError) as error:
                log.warning("nginx version of %s unknown (%s); rendering for %s", image, error,
                            ".".join(map(str, DEFAULT_NGINX_VERSION)))  # fmt: skip
                return DEFAULT_NGINX_VERSION
            log.info("the edge image %s has nginx %s", image,
                     ".".join(map(str, self._edge_nginx[image])))  # fmt: skip
        return self._edge_nginx[image]

    def _deploy_edge(
        self,
        edge_service: str,
        routes: tuple[Route, ...],
        current: dict[str, StoredCert],
        wanted_names: set[str],
        progress: Progress,
    ) -> RolloutResult:
        service = self.swarm.inspect_service(edge_service)
        if self.settings.nginx_conf == "own":
            text, wanted = self._snippet_references(current, wanted_names)
        else:
            text = self._render(routes, current, self._edge_nginx_version(service))
            # The sidecar's own nginx first: quick, and its errors name the line and route.
            for warning in validate_nginx_conf(
                self._render(routes, current, local_nginx_version()), self.settings.certs_dir
            ):
                log.warning("nginx -t: %s", warning)
            conf = self.store.ensure_nginx_conf(text)
            wanted = edge_references(routes, current, conf, self.settings.certs_dir)
        if not references_change(service, wanted):
            problem = stuck_update(service)
            if problem is not None:
                raise RolloutError(problem)
            self._failed_rollouts.clear()
            return RolloutResult(changed=False)
        attempt = frozenset(ref.object_id for ref in wanted)
        if attempt in self._failed_rollouts:
            raise RolloutError(
                f"{edge_service}: not rolling again to the references that failed before; "
                "`certbotless renew --force` gets fresh certificates"
            )
        try:
            # A rendered configuration has passed the sidecar's `nginx -t`. Rolled start-first
            # with rollback, a task that nginx refuses to start exits while the old ones serve,
            # and Swarm rolls back: the edge image's own `nginx -t` (a ~1 s job) would only say
            # so sooner. Stop-first, or an operator's own nginx.conf, still gets it.
            if self.settings.nginx_conf == "own" or not rolls_start_first_with_rollback(service):
                for warning in check_in_edge_image(
                    self.swarm, service, wanted, text, self.settings.rollout_timeout, progress
                ):
                    log.warning("nginx -t in the edge image: %s", warning)
            served = (
                ServedCertificates(
                    f"tasks.{edge_service}", proxy_protocol=self.settings.proxy_protocol
                )
                if self.settings.self_check
                else None
            )
            result = roll_service(
                self.swarm, edge_service, wanted, self.settings.rollout_timeout, progress, served
            )
        except RolledBack as refused:
            self._failed_rollouts.append(attempt)
            reason = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC: Swarm rolled back the update"
            for cert in current.values():
                if cert.config_id in refused.rotated:
                    self.store.mark_refused(cert, reason)
            raise
        except RolloutError:
            self._failed_rollouts.append(attempt)
            raise
        self._failed_rollouts.clear()
        if result.changed:
            progress(f"{edge_service}: rolled in {result.seconds:.1f} s")
        return result

    def _snippet_references(
        self, current: dict[str, StoredCert], wanted_names: set[str]
    ) -> tuple[str, list[FileReference]]:
        """For an operator's own nginx.conf: the snippets it includes, and each wanted
        certificate (or the placeholder, until it is issued) at its usual paths."""
        certs_dir = self.settings.certs_dir
        snippets = render_snippets(wanted_names, self.settings.responder_upstream, certs_dir)
        wanted = []
        for target, text in snippets.items():
            name, config_id = self.store.ensure_nginx_conf(text)
            wanted.append(FileReference("config", config_id, name, target, 0o444))
        placeholder = None
        for cert_name in sorted(wanted_names):
            files = cert_files(cert_name, certs_dir)
            cert = current.get(cert_name)
            if cert is not None:
                wanted += [
                    FileReference("config", cert.config_id, cert.config_name, files.fullchain,
                                  0o444, serves=(cert.domains[:1], cert.serial)),
                    FileReference("secret", cert.secret_id, cert.secret_name, files.privkey,
                                  0o400),
                ]  # fmt: skip
                continue
            if placeholder is None:
                placeholder = self.store.ensure_placeholder(*placeholder_certificate())
            name, config_id, secret_id = placeholder
            wanted += [
                FileReference("config", config_id, name, files.fullchain, 0o444),
                FileReference("secret", secret_id, name, files.privkey, 0o400),
            ]
        return "".join(snippets.values()), wanted
