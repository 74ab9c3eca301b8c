"""The nginx edge as a Swarm service: what it mounts, checking it, rolling it (an EdgeDeployer).

It owns the two ways of configuring nginx: `rendered` (certbotless writes nginx.conf from the
labels) and `own` (the operator's nginx.conf includes the snippets certbotless writes).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Mapping, Sequence

from certbotless.edge import (
    DEFAULT_NGINX_VERSION,
    NGINX_CONF_TARGET,
    CertFiles,
    NginxVersion,
    cert_files,
    local_nginx_version,
    placeholder_certificate,
    render_nginx_conf,
    render_snippets,
    validate_nginx_conf,
)
from certbotless.model import FileReference, ObjectKind, RolloutResult, Route, StoredCert
from certbotless.rollout import (
    RolloutError,
    ServedCertificates,
    check_in_edge_image,
    nginx_version_in_edge_image,
    references_change,
    roll_service,
    rolls_start_first_with_rollback,
    stuck_update,
)
from certbotless.seams import Progress
from certbotless.settings import NginxConfMode, Settings
from certbotless.store import CertStore
from certbotless.swarm import Json, NotFound, Swarm

log = logging.getLogger(__name__)


def edge_references(
    routes: Iterable[Route],
    current: Mapping[str, StoredCert],
    conf: tuple[str, str],
    certs_dir: str,
) -> list[FileReference]:
    """What the edge must mount: its nginx.conf and the current version of each routed cert."""
    routed_hosts = {host for route in routes for host in route.hosts}
    wanted = [FileReference(ObjectKind.CONFIG, conf[1], conf[0], NGINX_CONF_TARGET, 0o444)]
    for cert in sorted(current.values(), key=lambda c: c.name):
        served = tuple(domain for domain in cert.domains if domain in routed_hosts)
        if not served:
            continue
        wanted += certificate_references(cert, cert_files(cert.name, certs_dir), served)
    return wanted


def certificate_references(
    cert: StoredCert, files: CertFiles, served: tuple[str, ...]
) -> list[FileReference]:
    """One stored version mounted at `files`: its chain, which the roll checks is served for
    `served`, and its key."""
    return [
        FileReference(
            ObjectKind.CONFIG,
            cert.config_id,
            cert.config_name,
            files.fullchain,
            0o444,
            serves=(served, cert.serial),
        ),
        FileReference(ObjectKind.SECRET, cert.secret_id, cert.secret_name, files.privkey, 0o400),
    ]


class SwarmEdgeDeployer:
    """EdgeDeployer for an nginx Swarm service."""

    def __init__(self, settings: Settings, swarm: Swarm, store: CertStore) -> None:
        self.settings = settings
        self.swarm = swarm
        self.store = store
        # Reference sets a roll failed with, so that the same roll is not retried every pass
        # (a restart tries once more). Only the latest few matter.
        self._failed: deque[frozenset[str]] = deque(maxlen=16)
        self._nginx_versions: dict[str, NginxVersion] = {}  # edge image → its nginx version

    def deploy(
        self,
        edge: str,
        routes: Sequence[Route],
        current: Mapping[str, StoredCert],
        wanted_names: Iterable[str],
        progress: Progress,
    ) -> RolloutResult:
        service = self.swarm.inspect_service(edge)
        text, wanted = self._configuration(service, routes, current, set(wanted_names))
        if not references_change(service, wanted):
            problem = stuck_update(service)
            if problem is not None:
                raise RolloutError(problem)
            self._failed.clear()
            return RolloutResult(changed=False)
        attempt = frozenset(ref.object_id for ref in wanted)
        if attempt in self._failed:
            raise RolloutError(
                f"{edge}: not rolling again to the references that failed before; "
                "`certbotless renew --force` gets fresh certificates"
            )
        try:
            result = self._roll(edge, service, wanted, text, progress)
        except RolloutError:  # RolledBack too
            self._failed.append(attempt)
            raise
        self._failed.clear()
        if result.changed:
            progress(f"{edge}: rolled in {result.seconds:.1f} s")
        return result

    def _configuration(
        self,
        service: Json,
        routes: Sequence[Route],
        current: Mapping[str, StoredCert],
        wanted_names: set[str],
    ) -> tuple[str, list[FileReference]]:
        """The configuration text and every reference the edge must mount."""
        if self.settings.nginx_conf == NginxConfMode.OWN:
            return self._snippet_references(current, wanted_names)
        text = self._render(routes, current, self._edge_nginx_version(service))
        # The sidecar's own nginx first: quick, and its errors name the line and route.
        for warning in validate_nginx_conf(
            self._render(routes, current, local_nginx_version()), self.settings.certs_dir
        ):
            log.warning("nginx -t: %s", warning)
        conf = self.store.ensure_nginx_conf(text)
        return text, edge_references(routes, current, conf, self.settings.certs_dir)

    def _roll(
        self, edge: str, service: Json, wanted: list[FileReference], text: str, progress: Progress
    ) -> RolloutResult:
        # A rendered configuration has passed the sidecar's `nginx -t`. Rolled start-first with
        # rollback, a task that nginx refuses to start exits while the old ones serve, and Swarm
        # rolls back: the edge image's own `nginx -t` (a ~1 s job) would only say so sooner.
        # Stop-first, or an operator's own nginx.conf, still gets it.
        if self.settings.nginx_conf == NginxConfMode.OWN or not rolls_start_first_with_rollback(
            service
        ):
            for warning in check_in_edge_image(
                self.swarm, service, wanted, text, self.settings.rollout_timeout, progress
            ):
                log.warning("nginx -t in the edge image: %s", warning)
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
            return "".join(f"# --- {target}\n{text}" for target, text in snippets.items())
        version = DEFAULT_NGINX_VERSION
        if edge is not None:
            version = self._edge_nginx_version(self.swarm.inspect_service(edge))
        return self._render(routes, current, version)

    def mounted_object_ids(self, edge: str) -> set[str] | None:
        try:
            return self.swarm.mounted_object_ids(edge)
        except NotFound:
            return None

    def referenced_object_ids(self) -> set[str]:
        return self.swarm.referenced_object_ids()

    def _render(
        self, routes: Iterable[Route], current: Mapping[str, StoredCert], version: NginxVersion
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
        if image not in self._nginx_versions:
            try:
                self._nginx_versions[image] = nginx_version_in_edge_image(
                    self.swarm, service, self.settings.rollout_timeout
                )
            except (RolloutError, ValueError) as error:
                log.warning("nginx version of %s unknown (%s); rendering for %s", image, error,
                            ".".join(map(str, DEFAULT_NGINX_VERSION)))  # fmt: skip
                return DEFAULT_NGINX_VERSION
            log.info("the edge image %s has nginx %s", image,
                     ".".join(map(str, self._nginx_versions[image])))  # fmt: skip
        return self._nginx_versions[image]

    def _snippet_references(
        self, current: Mapping[str, StoredCert], wanted_names: set[str]
    ) -> tuple[str, list[FileReference]]:
        """For an operator's own nginx.conf: the snippets it includes, and each wanted
        certificate (or the placeholder, until it is issued) at its usual paths."""
        certs_dir = self.settings.certs_dir
        snippets = render_snippets(wanted_names, self.settings.responder_upstream, certs_dir)
        wanted = []
        for target, text in snippets.items():
            name, config_id = self.store.ensure_nginx_conf(text)
            wanted.append(FileReference(ObjectKind.CONFIG, config_id, name, target, 0o444))
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
        return "".join(snippets.values()), wanted
