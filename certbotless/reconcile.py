"""One pass: desired (labels) vs actual (swarm) → plan → act.

The only module that sequences stages.
"""

from __future__ import annotations

import fcntl
import logging
import secrets
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from josepy.jwk import JWK

from certbotless.acme.ari import lifetime_renewal_time
from certbotless.acme.challenges import ChallengeNotServed, EdgeSelfCheck
from certbotless.acme.errors import AcmeError, CaUnreachable
from certbotless.acme.keys import (
    generate_private_key,
    load_account_key,
    load_account_key_pem,
    private_key_pem,
)
from certbotless.acme.orders import AcmeIssuer, RevocationReason
from certbotless.discovery import EdgeNotFound, discover, find_edge_service
from certbotless.edge import (
    NGINX_CONF_TARGET,
    NginxConfigError,
    cert_files,
    placeholder_certificate,
    render_nginx_conf,
    render_snippets,
    validate_nginx_conf,
)
from certbotless.model import (
    CertSpec,
    Discovery,
    FileReference,
    KeyType,
    LabelProblem,
    PassReport,
    Plan,
    Removal,
    Route,
    ServiceInfo,
    StoredCert,
)
from certbotless.rollout import (
    RolloutError,
    RolloutResult,
    ServedCertificates,
    check_in_edge_image,
    mount_secret,
    roll_service,
)
from certbotless.settings import Settings
from certbotless.store import CertStore, latest_per_name, plan_garbage
from certbotless.swarm import NotFound, Swarm

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
            FileReference(
                "config",
                cert.config_id,
                cert.config_name,
                files.fullchain,
                0o444,
                serves=(cert.domains[0], cert.serial),
            )
        )
        wanted.append(
            FileReference("secret", cert.secret_id, cert.secret_name, files.privkey, 0o400)
        )
    return wanted


@dataclass
class _Issuance:
    issued: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    saved: dict[str, StoredCert] = field(default_factory=dict)
    ca_unreachable: str | None = None


@dataclass(frozen=True)
class Check:
    """One `certbotless doctor` finding."""

    what: str
    ok: bool
    detail: str
    fix: str = ""


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
        log.info("created the ACME account key secret %s", secret[0])
    if mount_into_own_service:
        service = settings.own_service or swarm.own_service_name()
        if service is not None:
            ref = FileReference(
                "secret", secret[1], secret[0], str(settings.account_key_file), 0o400
            )
            mount_secret(swarm, service, ref)
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
        # Reference sets Swarm refused; kept in memory so a restart tries once more.
        self._failed_rollouts: set[frozenset[str]] = set()
        self._reported: set[LabelProblem] = set()

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
    ) -> PassReport:
        """One pass. `force`: renew every certificate now (True) or these names. `dry_run`:
        order every wanted certificate but store nothing and roll nothing."""
        with pass_lock(self.settings.lock_file):
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
            if needs_edge and edge is None:
                edge = find_edge_service(services)  # raises, saying how to mark the edge
            elif not needs_edge:
                edge = None
            self_check = (
                EdgeSelfCheck(f"tasks.{edge}")
                if edge is not None and self.settings.self_check
                else None
            )
            issuance = self._issue(plan, progress, self_check, store=not dry_run)
            current.update(issuance.saved)
            stored.extend(issuance.saved.values())
            issued, failed = issuance.issued, issuance.failed
            rolled, rollout_error = False, None
            removed: tuple[Removal, ...] = ()
            if roll and edge is not None:
                try:
                    rolled = self._deploy_edge(
                        edge, found.routes, current, set(wanted_specs), progress
                    ).changed
                except (RolloutError, NginxConfigError) as error:
                    log.error("%s", error)
                    rollout_error = str(error)
                else:
                    removed = tuple(self._collect_garbage(stored, set(wanted_specs), False))
            return PassReport(
                issued=tuple(issued),
                failed=failed,
                problems=found.problems,
                rolled=rolled,
                rollout_error=rollout_error,
                removed=removed,
                ca_unreachable=issuance.ca_unreachable,
                certificates=tuple(c for name, c in current.items() if name in wanted_specs),
                next_renewal=min(
                    (
                        lifetime_renewal_time(cert.not_before, cert.not_after)
                        if name in issued or name not in renewals
                        else renewals[name].renew_at
                        for name, cert in current.items()
                        if name in wanted_specs and name not in failed
                    ),
                    default=None,
                ),
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
            if isinstance(outcome, AcmeError):
                log.error("%s", outcome)
                result.failed[spec.name] = str(outcome)
                if isinstance(outcome, CaUnreachable):
                    result.ca_unreachable = str(outcome)
                continue
            result.issued.append(spec.name)
            if not store:
                progress(f"{spec.name}: dry run: the CA issued it (not stored, not rolled)")
                continue
            saved = self.store.save(outcome)
            progress(
                f"{spec.name}: stored {saved.config_name} serial {saved.serial}, "
                f"expires {saved.not_after:%Y-%m-%d %H:%M} UTC"
            )
            result.saved[spec.name] = saved
        return result

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

    def doctor(self) -> list[Check]:
        """Everything certbotless needs, checked in order, each with the fix when it fails."""
        checks: list[Check] = []
        try:
            info = self.swarm.engine_info()
        except Exception as error:
            return [Check("Docker API", False, str(error), "mount /var/run/docker.sock")]
        checks.append(Check("Docker API", True, f"engine {info.get('ServerVersion', '?')}"))
        manager = bool((info.get("Swarm") or {}).get("ControlAvailable"))
        checks.append(
            Check("on a manager", manager, "yes" if manager else "this node is not a manager",
                  "constrain the certbotless service to node.role == manager")
        )  # fmt: skip
        if not manager:
            return checks
        services = self.swarm.services()
        edge = self._edge_if_any(services)
        if edge is None:
            try:
                find_edge_service(services)
            except EdgeNotFound as missing:
                checks.append(Check("nginx service", False, str(missing)))
        else:
            networks = next((s.network_names for s in services if s.name == edge), ())
            checks.append(
                Check("nginx service", True, f"{edge} on {', '.join(networks) or 'no network'}")
            )
            checks.append(self._check_challenge_path(edge))
        try:
            directory = self.issuer.acme.directory
        except AcmeError as error:
            fix = "check CERTBOTLESS_ACME_DIRECTORY and CERTBOTLESS_CA_BUNDLE"
            checks.append(Check("ACME directory", False, str(error), fix))
            return checks
        resources = len(directory.to_partial_json())
        checks.append(
            Check("ACME directory", True, f"{self.issuer.directory_url} ({resources} resources)")
        )
        try:
            account = self.issuer.existing_account()
        except AcmeError as error:
            checks.append(Check("ACME account", False, str(error)))
        else:
            checks.append(
                Check("ACME account", True, account or "none yet: registered at the first order")
            )
        return checks

    def _check_challenge_path(self, edge: str) -> Check:
        token = "certbotless-doctor-" + secrets.token_urlsafe(16)
        self.issuer.tokens.put(token, token + ".check")
        try:
            EdgeSelfCheck(f"tasks.{edge}", timeout=60).wait_until_served(
                "certbotless-doctor.invalid", token, token + ".check"
            )
        except ChallengeNotServed as error:
            return Check("challenge path through nginx", False, str(error))
        finally:
            self.issuer.tokens.remove(token)
        return Check("challenge path through nginx", True, f"every task of {edge} answers")

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

    def listing(self) -> list[tuple[StoredCert, bool | None]]:
        """The newest version of each certificate, and whether the edge's current spec mounts
        it (None when there is no edge to ask)."""
        current = latest_per_name(self.store.inventory())
        try:
            edge = self.settings.nginx_service or find_edge_service(self.swarm.services())
            mounted: set[str] | None = self.swarm.mounted_object_ids(edge)
        except (EdgeNotFound, NotFound):
            mounted = None
        return [
            (cert, None if mounted is None else cert.config_id in mounted)
            for cert in sorted(current.values(), key=lambda c: c.name)
        ]

    def render(self) -> str:
        """What a pass would deploy: nginx.conf, or with an own nginx.conf the snippets."""
        services = self.swarm.services()
        found = self._discover(services, self._edge_if_any(services))
        if self.settings.nginx_conf == "own":
            snippets = render_snippets(
                [spec.name for spec in found.specs],
                self.settings.responder_upstream,
                self.settings.certs_dir,
            )
            return "".join(f"# --- {target}\n{text}" for target, text in snippets.items())
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
        wanted_names: set[str],
        progress: Progress,
    ) -> RolloutResult:
        if self.settings.nginx_conf == "own":
            text, wanted = self._snippet_references(current, wanted_names)
        else:
            text = self._render(routes, current)
            validate_nginx_conf(text, self.settings.certs_dir)
            conf = self.store.ensure_nginx_conf(text)
            wanted = edge_references(routes, current, conf, self.settings.certs_dir)
        attempt = frozenset(ref.object_id for ref in wanted)
        if attempt in self._failed_rollouts:
            raise RolloutError(
                f"{edge_service}: not rolling again to the references that Swarm rolled back "
                "before; `certbotless renew --force` gets fresh certificates"
            )
        check_in_edge_image(
            self.swarm, edge_service, wanted, text, self.settings.rollout_timeout, progress
        )
        served = ServedCertificates(f"tasks.{edge_service}") if self.settings.self_check else None
        try:
            result = roll_service(
                self.swarm,
                edge_service,
                wanted,
                self.settings.rollout_timeout,
                progress,
                served,
            )
        except RolloutError:
            self._failed_rollouts.add(attempt)
            raise
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
                                  0o444, serves=(cert.domains[0], cert.serial)),
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
