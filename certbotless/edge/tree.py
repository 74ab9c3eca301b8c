"""What the edge would mount for some routes, written out as a directory tree (`certbotless lint
--render DIR`): every file of the configuration at its mount target under DIR, and each
certificate, key, basic-auth and forward-auth TLS secret it names as a placeholder, so that a
CI pipeline can run `nginx -t` and real requests against exactly what a pass would roll, with
no swarm."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath

from certbotless.edge.guards import htpasswd_secrets
from certbotless.edge.mounts import SNIPPETS_DIR, htpasswd_secret_target
from certbotless.edge.nginx_version import DEFAULT_NGINX_VERSION, NginxVersion
from certbotless.edge.render import NginxFiles, render_nginx_conf
from certbotless.edge.snippets import placeholder_certificate, render_snippets
from certbotless.edge.validation import certificate_paths, moved_paths
from certbotless.model import CertSpec, Route, StoredCert
from certbotless.settings import NginxConfMode, Settings

PLACEHOLDER_SERIAL = "placeholder"
# The users of a basic-auth Swarm secret are the operator's: certbotless never reads them, so
# its placeholder lets nobody in (nginx answers 401) until the real file is put there.
_HTPASSWD_PLACEHOLDER = (
    "# Placeholder for the Swarm secret {secret}, which the edge mounts here: nobody gets in.\n"
)


class TreeError(Exception):
    """The directory cannot take the tree."""


@dataclass(frozen=True)
class EdgeTree:
    """What the edge would mount: the configuration (target → text) and the placeholders of
    the certificates, keys and basic-auth secrets it names (target → bytes)."""

    configuration: NginxFiles
    placeholders: dict[str, bytes]


def as_if_issued(specs: Iterable[CertSpec]) -> dict[str, StoredCert]:
    """Every wanted certificate as if it were issued, so that its hosts get their 443 servers
    as they will once it is."""
    now = datetime.now(UTC)
    return {
        spec.name: StoredCert(
            name=spec.name, domains=spec.domains, serial=PLACEHOLDER_SERIAL, not_before=now,
            not_after=now + timedelta(days=1), key_type=spec.key_type,
            config_name=spec.name, config_id="", secret_name=spec.name, secret_id="",
        )
        for spec in specs
    }  # fmt: skip


def edge_tree(
    routes: Sequence[Route],
    specs: Sequence[CertSpec],
    settings: Settings,
    nginx_version: NginxVersion = DEFAULT_NGINX_VERSION,
) -> EdgeTree:
    """The files a pass would roll for `routes` once every certificate of `specs` is issued
    (with an operator's own nginx.conf, the snippets it includes), rendered as the sidecar
    renders them for an edge of `nginx_version`."""
    if settings.nginx_conf == NginxConfMode.OWN:
        names = [spec.name for spec in specs]
        configuration = render_snippets(names, settings.responder_upstream, settings.certs_dir)
    else:
        configuration = render_nginx_conf(
            routes, as_if_issued(specs), settings.responder_upstream, settings.certs_dir,
            nginx_version=nginx_version, front_subnets=settings.front_subnets,
        )  # fmt: skip
    chain, key = placeholder_certificate()
    placeholders = {
        path: key if is_key else chain
        for path, is_key in sorted(certificate_paths(configuration).items())
    }
    if settings.nginx_conf == NginxConfMode.RENDERED:
        for secret in sorted(htpasswd_secrets(routes)):
            text = _HTPASSWD_PLACEHOLDER.format(secret=secret)
            placeholders[htpasswd_secret_target(secret)] = text.encode()
    return EdgeTree(configuration, placeholders)


def write_tree(tree: EdgeTree, directory: Path, certs_dir: str, *, rebase: bool) -> list[Path]:
    """Each file at its mount target under `directory`, which must be empty or new (nginx.conf
    includes `hosts/*.conf`: a file left from an earlier tree would be served too). `rebase`:
    the paths the configuration names under certbotless's directory and `certs_dir` point into
    `directory`, so that an nginx outside the edge image reads the tree (`nginx -p DIR/ -c
    DIR/etc/nginx/nginx.conf`). The files written, in order."""
    directory = directory.absolute()
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise TreeError(
            f"{directory} is not an empty directory: name a new or empty one (nginx.conf "
            "includes hosts/*.conf, so a file left from an earlier render would be read too)"
        )
    moves = {mounted: f"{directory}{mounted}" for mounted in (SNIPPETS_DIR, certs_dir)}
    written = []
    for target, text in tree.configuration.items():
        written.append(
            _write(directory, target, (moved_paths(text, moves) if rebase else text).encode())
        )
    for target, data in tree.placeholders.items():
        written.append(_write(directory, target, data))
    return written


def _write(directory: Path, target: str, data: bytes) -> Path:
    path = directory / PurePosixPath(target).relative_to("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
