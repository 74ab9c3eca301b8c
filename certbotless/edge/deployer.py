"""The nginx edge as a Swarm service: what it mounts, checking it, rolling it (an EdgeDeployer).

It owns the two ways of configuring nginx: `rendered` (certbotless writes nginx.conf from the
labels) and `own` (the operator's nginx.conf includes the snippets certbotless writes).
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from types import MappingProxyType

from certbotless.edge.guards import auth_tls_secrets, htpasswd_secrets
from certbotless.edge.mounts import (
    CERTIFICATE_CHECK_CONF,
    DIGEST_KEY_TARGET,
    CertFiles,
    auth_tls_secret_target,
    cert_files,
    htpasswd_secret_target,
    ticket_key_target,
)
from certbotless.edge.nginx_version import DEFAULT_NGINX_VERSION, NginxVersion, local_nginx_version
from certbotless.edge.njs import (
    ALL_FEATURES,
    NjsFeatures,
    local_njs_features,
    needs_digest_key,
    needs_njs,
    without_njs,
)
from certbotless.edge.render import NginxFiles, files_listing, render_nginx_conf
from certbotless.edge.rollout import (
    RolloutError,
    ServedCertificates,
    asked_once,
    check_in_edge_image,
    nginx_version_in_edge_image,
    njs_in_edge_image,
    references_change,
    roll_service,
    rolls_start_first_with_rollback,
    stuck_update,
)
from certbotless.edge.servers import certificate_per_host
from certbotless.edge.snippets import placeholder_certificate, render_snippets
from certbotless.edge.upstreams import without_unpooled_options
from certbotless.edge.validation import NginxConfigError, validate_nginx_conf
from certbotless.model import (
    FileReference,
    LabelProblem,
    ObjectKind,
    RolloutResult,
    Route,
    StoredCert,
)
from certbotless.seams import Progress
from certbotless.settings import NginxConfMode, Settings
from certbotless.swarm.api import APIError, Json, NotFound, Swarm
from certbotless.swarm.digest_key import ensure_digest_key
from certbotless.swarm.store import CertStore

log = logging.getLogger(__name__)


def edge_references(
    routes: Iterable[Route],
    current: Mapping[str, StoredCert],
    confs: Mapping[str, tuple[str, str]],
    certs_dir: str,
    secret_ids: Mapping[str, str] = MappingProxyType({}),
    key_group: int | None = None,
) -> list[FileReference]:
    """What the edge must mount: its configuration's files (`confs`: target → config name and
    id), the secrets holding basic-auth users (`secret_ids`: name → id) and the current
    version of each routed certificate (its key readable by `key_group`, see
    certificate_references)."""
    routes = list(routes)
    routed_hosts = {host for route in routes for host in route.hosts}
    wanted = [
        FileReference(ObjectKind.CONFIG, config_id, name, target, 0o444)
        for target, (name, config_id) in confs.items()
    ]
    wanted += [
        FileReference(ObjectKind.SECRET, secret_ids[name], name, htpasswd_secret_target(name),
                      0o444)  # nginx's workers read it, not only its master (root)
        for name in sorted(htpasswd_secrets(routes))
    ]  # fmt: skip
    wanted += [
        FileReference(ObjectKind.SECRET, secret_ids[name], name, auth_tls_secret_target(name),
                      0o400 if is_key else 0o444)  # nginx's master loads them, as root
        for name, is_key in sorted(auth_tls_secrets(routes).items())
    ]  # fmt: skip
    # As the rendering picks them: a host without its own certificate is served a wildcard one.
    per_host = certificate_per_host(current, routed_hosts)
    for cert in sorted(current.values(), key=lambda c: c.name):
        own = [domain for domain in cert.domains if domain in routed_hosts]
        covered = sorted(h for h in routed_hosts - set(own) if per_host.get(h) == cert.name)
        served = (*own, *covered)
        if not served:
            continue
        files = cert_files(cert.name, certs_dir)
        wanted += certificate_references(cert, files, served, key_group)
    return wanted


def ticket_key_references(keys: Sequence[tuple[str, str]]) -> list[FileReference]:
    """The TLS session ticket keys (name, id; newest first) where the rendering names them;
    read by nginx's master (root) only."""
    return [FileReference(ObjectKind.SECRET, key_id, name, ticket_key_target(index), 0o400)
            for index, (name, key_id) in enumerate(keys)]  # fmt: skip


def digest_key_references(routes: Iterable[Route], store: CertStore) -> list[FileReference]:
    """digestAuth's nonce key, when a route checks a digest (made then, if missing); read by
    njs in nginx's workers."""
    if not any(map(needs_digest_key, routes)):
        return []
    name, key_id = ensure_digest_key(store.objects)
    return [FileReference(ObjectKind.SECRET, key_id, name, DIGEST_KEY_TARGET, 0o444)]


def certificate_references(
    cert: StoredCert, files: CertFiles, served: tuple[str, ...], key_group: int | None = None
) -> list[FileReference]:
    """One stored version mounted at `files`: its chain, which the roll checks is served for
    `served`, and its key: read by nginx's master (root) only, or with `key_group` (nginx's
    workers', which read certificates on first use) by that group too. No weaker: a worker
    holds every key it serves in memory anyway, and nothing else runs in the edge's
    container."""
    key_mode = 0o400 if key_group is None else 0o440
    return [
        FileReference(
            ObjectKind.CONFIG,
            cert.config_id,
            cert.config_name,
            files.fullchain,
            0o444,
            serves=(served, cert.serial),
        ),
        FileReference(
            ObjectKind.SECRET,
            cert.secret_id,
            cert.secret_name,
            files.privkey,
            key_mode,
            gid=key_group,
        ),
    ]


def with_their_secrets(
    swarm: Swarm, routes: Sequence[Route]
) -> tuple[Sequence[Route], dict[str, str]]:
    """The routes whose basic-auth and forward-auth TLS secrets exist (discovery checked; one
    removed since is left out, never served without its password), and each secret's ID."""
    names = htpasswd_secrets(routes) | set(auth_tls_secrets(routes))
    if not names:
        return routes, {}
    ids = swarm.secret_ids(names)
    missing = names - set(ids)
    if missing:
        log.error("basic-auth or forward-auth TLS secrets %s are gone: their routes are not "
                  "served", ", ".join(sorted(missing)))  # fmt: skip
    kept = [r for r in routes if not (htpasswd_secrets([r]) | set(auth_tls_secrets([r])))
            & missing]  # fmt: skip
    return kept, ids


def routes_nginx_passes(
    routes: Sequence[Route],
    render: Callable[[Sequence[Route]], NginxFiles],
    validate: Callable[[NginxFiles], object],
    check_alone: Callable[[NginxFiles], object] = validate_nginx_conf,
) -> tuple[list[Route], tuple[LabelProblem, ...]]:
    """The routes whose configuration (`render`) the sidecar's nginx passes (`validate`). When
    the whole fails, each service's routes are tried alone and those that fail alone are left
    out, each with nginx's words: one service's labels cannot stop every other service's roll
    (a failure no service causes alone is raised, as before)."""
    try:
        validate(render(routes))
        return list(routes), ()
    except NginxConfigError as whole:
        by_service: dict[str, list[Route]] = {}
        for route in routes:
            by_service.setdefault(route.service, []).append(route)
        failing = {}
        for name, own in sorted(by_service.items()):
            try:
                check_alone(render(own))
            except NginxConfigError as error:
                failing[name] = str(error)
        if not failing:
            raise whole from None
    kept = [route for route in routes if route.service not in failing]
    validate(render(kept))
    for name, words in failing.items():
        log.error("%s is left out of the edge's configuration: %s", name, words)
    return kept, tuple(
        LabelProblem(
            name,
            "nginx -t",
            "",
            f"left out of the edge's nginx configuration, which nginx refuses with this "
            f"service's routes ({words}); every other service rolls: fix its labels",
        )
        for name, words in failing.items()
    )


class RememberedChecks:
    """`nginx -t` of one service's routes, remembered by content: while a service's part
    fails, each pass would otherwise check every service's part again."""

    _REMEMBERED = 10_000

    def __init__(self) -> None:
        self._verdicts: dict[str, NginxConfigError | None] = {}  # digest → its verdict

    def __call__(self, files: NginxFiles) -> None:
        digest = hashlib.sha256(repr(sorted(files.items())).encode()).hexdigest()
        if digest not in self._verdicts:
            if len(self._verdicts) > self._REMEMBERED:
                self._verdicts.clear()
            try:
                validate_nginx_conf(files)
                self._verdicts[digest] = None
            except NginxConfigError as error:
                self._verdicts[digest] = error
        failed = self._verdicts[digest]
        if failed is not None:
            raise failed


def servable_routes(
    routes: Sequence[Route], version: NginxVersion, njs: Callable[[], NjsFeatures]
) -> tuple[list[Route], tuple[LabelProblem, ...]]:
    """The routes the edge's nginx can serve, and a problem for each other: those that need
    what njs cannot do there (`njs`: what the edge's njs and the sidecar's own, which checks
    the configuration, both can), and those that need pooled upstreams on an nginx without
    them."""
    available = ALL_FEATURES if not any(map(needs_njs, routes)) else njs()
    routes, without = without_njs(routes, available)
    routes, unbalanced = without_unpooled_options(routes, version)
    return routes, (*without, *unbalanced)


class EdgeImageNginx:
    """Facts of the edge image's nginx, each asked once per image (a job; rollout.asked_once):
    its version and its workers' group id (None: unknown, and then certificates are loaded at
    start by nginx's master, as before; if it cannot be asked, the syntax every version reads),
    and what its njs can do."""

    def __init__(self, swarm: Swarm, timeout: float) -> None:
        self.swarm, self.timeout = swarm, timeout
        self.versions: dict[str, tuple[NginxVersion, int | None]] = {}  # by edge image
        self.njs_features: dict[str, NjsFeatures] = {}  # by edge image

    def __call__(self, service: Json) -> tuple[NginxVersion, int | None]:
        ask = lambda: nginx_version_in_edge_image(self.swarm, service, self.timeout)  # noqa: E731
        return asked_once(self.versions, service, ask, (DEFAULT_NGINX_VERSION, None),
                          lambda fact: "nginx " + ".".join(map(str, fact[0])))  # fmt: skip

    def njs(self, service: Json) -> NjsFeatures:
        ask = lambda: njs_in_edge_image(self.swarm, service, self.timeout)  # noqa: E731
        return asked_once(self.njs_features, service, ask, frozenset(),
                          lambda has: f"njs: {', '.join(sorted(has)) or 'none'}")  # fmt: skip


class SwarmEdgeDeployer:
    """EdgeDeployer for an nginx Swarm service."""

    def __init__(self, settings: Settings, swarm: Swarm, store: CertStore) -> None:
        self.settings = settings
        self.swarm = swarm
        self.store = store
        # Reference sets a roll failed with, so that the same roll is not retried every pass
        # (a restart tries once more). Only the latest few matter.
        self._failed: deque[frozenset[str]] = deque(maxlen=16)
        self._edge_nginx = EdgeImageNginx(swarm, settings.rollout_timeout)
        self._validated = ""  # digest of the configuration the sidecar's nginx last passed
        self._check_alone = RememberedChecks()

    def deploy(
        self,
        edge: str,
        routes: Sequence[Route],
        current: Mapping[str, StoredCert],
        wanted_names: Iterable[str],
        progress: Progress,
    ) -> RolloutResult:
        service = self.swarm.inspect_service(edge)
        files, wanted, left_out = self._configuration(service, routes, current, set(wanted_names))
        if not references_change(service, wanted):
            problem = stuck_update(service)
            if problem is not None:
                raise RolloutError(problem)
            self._failed.clear()
            return RolloutResult(changed=False, left_out=left_out)
        attempt = frozenset(ref.object_id for ref in wanted)
        if attempt in self._failed:
            raise RolloutError(
                f"{edge}: not rolling again to the references that failed before; "
                "`certbotless renew --force` gets fresh certificates"
            )
        try:
            result = self._roll(edge, service, wanted, files, progress)
        except RolloutError:  # RolledBack too
            self._failed.append(attempt)
            raise
        self._failed.clear()
        if result.changed:
            progress(f"{edge}: rolled in {result.seconds:.1f} s")
        return replace(result, left_out=left_out)

    def _configuration(
        self,
        service: Json,
        routes: Sequence[Route],
        current: Mapping[str, StoredCert],
        wanted_names: set[str],
    ) -> tuple[NginxFiles, list[FileReference], tuple[LabelProblem, ...]]:
        """The configuration's files, every reference the edge must mount, and the services
        left out of it (routes_nginx_passes)."""
        if self.settings.nginx_conf == NginxConfMode.OWN:
            return (*self._snippet_references(current, wanted_names), ())
        routes, secret_ids = with_their_secrets(self.swarm, routes)
        version, workers = self._edge_nginx(service)
        routes, unservable = servable_routes(
            routes, version, lambda: local_njs_features() & self._edge_nginx.njs(service)
        )
        tickets = self.store.ensure_ticket_keys(datetime.now(UTC).date())
        on_first_use = workers is not None  # their keys are mounted readable by the workers
        render = partial(self._render, current=current, ticket_keys=len(tickets),
                         on_first_use=on_first_use,
                         workers=workers_for_cpu_limit(service))  # fmt: skip
        routes, left_out = routes_nginx_passes(
            routes,
            lambda some: render(some, version=local_nginx_version()),
            self._validate,
            self._check_alone,
        )
        files = render(routes, version=version)
        try:
            confs = self.store.ensure_nginx_confs(files)
        except APIError as error:  # a failed roll, reported; the pass (and gc) goes on
            raise RolloutError(
                f"{service['Spec']['Name']}: Swarm refused a file of the new configuration, "
                f"so nothing rolled: {error}"
            ) from None
        key_group = workers if CERTIFICATE_CHECK_CONF in files else None
        references = edge_references(routes, current, confs, self.settings.certs_dir, secret_ids,
                                     key_group)  # fmt: skip
        references += ticket_key_references(tickets) + digest_key_references(routes, self.store)
        return files, references, (*unservable, *left_out)

    def _validate(self, files: NginxFiles) -> None:
        """The sidecar's own `nginx -t` (its errors name the file, line and route); a
        configuration it passed before is not checked again (5,000 routes take seconds)."""
        digest = hashlib.sha256(repr(sorted(files.items())).encode()).hexdigest()
        if digest == self._validated:
            return
        for warning in validate_nginx_conf(files):
            log.warning("nginx -t: %s", warning)
        self._validated = digest

    def _roll(
        self,
        edge: str,
        service: Json,
        wanted: list[FileReference],
        files: NginxFiles,
        progress: Progress,
    ) -> RolloutResult:
        # A rendered configuration has passed the sidecar's `nginx -t`. Rolled start-first with
        # rollback, a task that nginx refuses to start exits while the old ones serve, and Swarm
        # rolls back: the edge image's own `nginx -t` (a ~1 s job) would only say so sooner.
        # Stop-first, or an operator's own nginx.conf, still gets it.
        if self.settings.nginx_conf == NginxConfMode.OWN or not rolls_start_first_with_rollback(
            service
        ):
            for warning in check_in_edge_image(
                self.swarm, service, wanted, files, self.settings.rollout_timeout, progress
            ):
                log.warning("nginx -t in the edge image: %s", warning)
        if CERTIFICATE_CHECK_CONF in files:  # read on first use: a task starts with a bad pair
            check_in_edge_image(self.swarm, service, wanted, files, self.settings.rollout_timeout,
                                progress, conf=CERTIFICATE_CHECK_CONF)  # fmt: skip
        served = (
            ServedCertificates(f"tasks.{edge}", proxy_protocol=self.settings.proxy_protocol)
            if self.settings.self_check
            else None
        )
        return roll_service(
            self.swarm, edge, wanted, self.settings.rollout_timeout, progress, served
        )

    def render(
        self,
        edge: str | None,
        routes: Sequence[Route],
        current: Mapping[str, StoredCert],
        wanted_names: Iterable[str],
    ) -> str:
        if self.settings.nginx_conf == NginxConfMode.OWN:
            snippets = render_snippets(
                wanted_names, self.settings.responder_upstream, self.settings.certs_dir
            )
            return files_listing(snippets)
        version, workers = (DEFAULT_NGINX_VERSION, None) if edge is None else self._edge_nginx(
            self.swarm.inspect_service(edge))  # fmt: skip
        return files_listing(self._render(routes, current, version, 0, workers is not None))

    def mounted_object_ids(self, edge: str) -> set[str] | None:
        try:
            return self.swarm.mounted_object_ids(edge)
        except NotFound:
            return None

    def referenced_object_ids(self) -> set[str]:
        return self.swarm.referenced_object_ids()

    def _render(
        self,
        routes: Iterable[Route],
        current: Mapping[str, StoredCert],
        version: NginxVersion,
        ticket_keys: int = 0,
        on_first_use: bool = False,
        workers: int | None = None,
    ) -> NginxFiles:
        return render_nginx_conf(
            routes,
            current,
            self.settings.responder_upstream,
            self.settings.certs_dir,
            nginx_version=version,
            front_subnets=self.settings.front_subnets,
            ticket_keys=ticket_keys,
            certificates_on_first_use=on_first_use,
            workers=workers,
        )

    def _snippet_references(
        self, current: Mapping[str, StoredCert], wanted_names: set[str]
    ) -> tuple[NginxFiles, list[FileReference]]:
        """For an operator's own nginx.conf: the snippets it includes, and each wanted
        certificate (or the placeholder, until it is issued) at its usual paths."""
        certs_dir = self.settings.certs_dir
        snippets = render_snippets(wanted_names, self.settings.responder_upstream, certs_dir)
        wanted = [
            FileReference(ObjectKind.CONFIG, config_id, name, target, 0o444)
            for target, (name, config_id) in self.store.ensure_nginx_confs(snippets).items()
        ]
        placeholder = None
        for cert_name in sorted(wanted_names):
            files = cert_files(cert_name, certs_dir)
            cert = current.get(cert_name)
            if cert is not None:
                wanted += certificate_references(cert, files, cert.domains[:1])
                continue
            if placeholder is None:
                placeholder = self.store.ensure_placeholder(*placeholder_certificate())
            name, config_id, secret_id = placeholder
            wanted += [
                FileReference(ObjectKind.CONFIG, config_id, name, files.fullchain, 0o444),
                FileReference(ObjectKind.SECRET, secret_id, name, files.privkey, 0o400),
            ]
        return snippets, wanted


def workers_for_cpu_limit(service: Json) -> int | None:
    """nginx's worker processes for the edge service's CPU limit (`deploy.resources.limits.cpus`,
    rounded up): nginx's `auto` counts the node's CPUs, not a limit, and more workers than CPUs
    only cost memory (each worker keeps its own certificates). None: no limit, `auto`."""
    limits = service["Spec"]["TaskTemplate"].get("Resources", {}).get("Limits", {})
    nano_cpus = int(limits.get("NanoCPUs") or 0)
    return -(-nano_cpus // 1_000_000_000) if nano_cpus > 0 else None
