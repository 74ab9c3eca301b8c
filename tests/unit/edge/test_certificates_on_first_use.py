"""Certificates read on first use (edge/certificates.py): on the edge image's nginx generation
(>= 1.27.4: the rig's unpacked Debian forky, nginx 1.30) a real nginx serves 50 hosts each with
its own certificate by SNI through the default server's handshake, a wildcard one, and the
default server's for unknown names (or refuses them, without an IP address), without loading
any at start; a key it cannot read fails that host's handshakes only, and the check the edge
image runs before a roll (CERTIFICATE_CHECK_CONF) refuses it. Client certificates on nginx 1.30:
test_client_certificates.py."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any, cast

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certbotless.edge.certificates import (
    CERTIFICATE_VARIABLE,
    CERTIFICATES_ON_FIRST_USE_SINCE,
    CHECK_LISTEN,
)
from certbotless.edge.deployer import SwarmEdgeDeployer, certificate_references, edge_references
from certbotless.edge.mounts import (
    CERTIFICATE_CHECK_CONF,
    NGINX_CONF_TARGET,
    SNIPPETS_DIR,
    cert_files,
    ticket_key_target,
)
from certbotless.edge.nginx_version import NginxVersion, local_nginx_version, worker_group_id
from certbotless.edge.render import render_nginx_conf
from certbotless.edge.rollout import swap_references
from certbotless.edge.validation import NginxConfigError, moved_paths, validate_nginx_conf
from certbotless.model import ObjectKind, Route, StoredCert
from certbotless.settings import Settings
from certbotless.swarm.api import JobResult, Swarm
from certbotless.swarm.store import CertStore
from tests.support.edge_nginx import NginxBinary
from tests.support.factories import CERTS_DIR, RESPONDER, stored_cert
from tests.support.ports import unused_ports
from tests.unit.edge.test_edge_limits import ConfigStore, OneServiceSwarm

HOSTS = [f"h{index:02d}.example.test" for index in range(50)]
WILDCARD_HOST = "any.wild.example.test"  # no certificate of its own: *.wild.example.test's
IP_HOST = "127.0.0.1"  # its server is the default one: unknown names get its certificate
# Without the capabilities that let root read any file, a key with no permission bits is
# unreadable to nginx's workers as it is to a worker user without the key's group.
NO_READ_OVERRIDE = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search")


def _certificate(directory: Path, name: str, domains: Sequence[str]) -> bytes:
    """A self-signed pair laid out as the edge mounts it (`<name>/fullchain.pem`,
    `<name>/privkey.pem`); its DER, what a client must be shown."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    folder = directory / name
    folder.mkdir(parents=True)
    (folder / "fullchain.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "privkey.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))  # fmt: skip
    return cert.public_bytes(serialization.Encoding.DER)


class Edge:
    """The rendered configuration with real certificates, in a scratch tree under the nginx
    root (`tree` here, `seen` to nginx)."""

    def __init__(self, binary: NginxBinary, tree: Path, ip_address: bool = True) -> None:
        self.binary, self.tree = binary, tree
        self.seen = PurePosixPath("/") / tree.relative_to(binary.root)
        certs = tree / "certs"
        own = [*HOSTS, IP_HOST] if ip_address else HOSTS
        self.der = {host: _certificate(certs, host, [host]) for host in own}
        self.der[WILDCARD_HOST] = _certificate(certs, "wild", ["*.wild.example.test"])
        stored = {host: stored_cert(name=host, domains=(host,)) for host in own}
        stored["wild"] = stored_cert(name="wild", domains=("*.wild.example.test",))
        routes = [Route("127.0.0.1", (host,), 9) for host in [*own, WILDCARD_HOST]]
        self.files = render_nginx_conf(routes, stored, RESPONDER, str(self.seen / "certs"),
                                       nginx_version=binary.version)  # fmt: skip
        self.http_port, self.tls_port = unused_ports(2)
        for target, text in self.files.items():
            text = (moved_paths(text, {SNIPPETS_DIR: str(self.seen / "certbotless")})
                    .replace("listen 80", f"listen 127.0.0.1:{self.http_port}")
                    .replace("listen 443", f"listen 127.0.0.1:{self.tls_port}")
                    .replace(f"listen {CHECK_LISTEN}", f"listen 127.0.0.1:{self.http_port}")
                    .replace("access_log /dev/stdout certbotless;", "access_log off;"))  # fmt: skip
            path = tree / PurePosixPath(target).relative_to(PurePosixPath(NGINX_CONF_TARGET).parent)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)

    def key(self, name: str) -> Path:
        return self.tree / "certs" / name / "privkey.pem"

    def nginx(self, conf: PurePosixPath, *arguments: str, directives: str = "") -> list[str]:
        return [*NO_READ_OVERRIDE, *self.binary.command, "-e", "stderr", "-p", f"{self.seen}/",
                "-c", str(conf), "-g", f"pid {self.seen}/nginx.pid;{directives}",
                *arguments]  # fmt: skip

    def check_every_pair(self) -> subprocess.CompletedProcess[str]:
        """What the edge image runs before a roll: `nginx -t -c CERTIFICATE_CHECK_CONF`."""
        conf = PurePosixPath(CERTIFICATE_CHECK_CONF).relative_to(SNIPPETS_DIR)
        check = self.nginx(self.seen / "certbotless" / conf, "-t", "-q")
        return subprocess.run(check, capture_output=True, text=True, timeout=60, check=False)

    def served(self, name: str | None) -> bytes | None:
        """The certificate shown to a client sending `name` in SNI (None: none sent), or None
        when the handshake fails."""
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        try:
            with (
                socket.create_connection(("127.0.0.1", self.tls_port), 5) as raw,
                context.wrap_socket(raw, server_hostname=name) as tls,
            ):
                return tls.getpeercert(binary_form=True)
        except (ssl.SSLError, OSError):
            return None


@pytest.fixture
def edge(newest: NginxBinary) -> Iterator[Edge]:
    tree = Path(tempfile.mkdtemp(prefix="certbotless-first-use-", dir=newest.root / "tmp"))
    try:
        yield Edge(newest, tree)
    finally:
        subprocess.run(["rm", "-rf", str(tree)], check=False)


def _running(edge: Edge) -> subprocess.Popen[bytes]:
    command = edge.nginx(edge.seen / "nginx.conf", directives=" daemon off; user root;")
    nginx = subprocess.Popen(command, stderr=(edge.tree / "stderr").open("wb"))
    for _ in range(400):
        if nginx.poll() is not None:
            raise AssertionError((edge.tree / "stderr").read_text())
        if (edge.tree / "nginx.pid").exists():
            return nginx
        time.sleep(0.025)
    nginx.kill()  # unshare's --kill-child takes nginx with it
    raise AssertionError("nginx did not start within 10 s")


def _stop(edge: Edge, nginx: subprocess.Popen[bytes]) -> None:
    # unshare ignores SIGTERM while it waits: stop nginx by the pid it wrote.
    os.kill(int((edge.tree / "nginx.pid").read_text()), signal.SIGTERM)
    nginx.wait(timeout=10)


def test_every_host_is_served_its_certificate_read_on_first_use(edge: Edge) -> None:
    # One handshake context, the default server's (the IP address's here), names them all.
    hosts_files = "".join(text for target, text in edge.files.items() if "/hosts/" in target)
    assert hosts_files.count("ssl_certificate ") == 1
    assert f"{CERTIFICATE_VARIABLE}/fullchain.pem;" in hosts_files
    nginx = _running(edge)
    try:
        for host in [*HOSTS, WILDCARD_HOST]:
            assert edge.served(host) == edge.der[host], host
        # Unknown names and clients sending none: the default server's (the IP address's).
        assert edge.served("unknown.example.test") == edge.der[IP_HOST]
        assert edge.served(None) == edge.der[IP_HOST]
        assert edge.served(HOSTS[0]) == edge.der[HOSTS[0]]  # again, from the cache
    finally:
        _stop(edge, nginx)
    assert edge.check_every_pair().returncode == 0


def test_without_an_ip_address_unknown_names_are_still_refused(newest: NginxBinary) -> None:
    tree = Path(tempfile.mkdtemp(prefix="certbotless-first-use-", dir=newest.root / "tmp"))
    try:
        edge = Edge(newest, tree, ip_address=False)
        nginx = _running(edge)
        try:
            assert edge.served(HOSTS[3]) == edge.der[HOSTS[3]]
            assert edge.served(WILDCARD_HOST) == edge.der[WILDCARD_HOST]
            assert edge.served("unknown.example.test") is None
            assert edge.served(None) is None
        finally:
            _stop(edge, nginx)
    finally:
        subprocess.run(["rm", "-rf", str(tree)], check=False)


def test_thousands_of_hosts_pass_the_edge_images_nginx_t(newest: NginxBinary) -> None:
    """The map of certificates has every host: its hash is sized like the server names'."""
    hosts = [f"host-{index:04d}.{'long-label.' * 8}example.test" for index in range(3000)]
    routes = [Route("127.0.0.1", (host,), 9) for host in hosts]
    certs = {host: stored_cert(name=host, domains=(host,)) for host in hosts}
    files = render_nginx_conf(routes, certs, RESPONDER, CERTS_DIR, nginx_version=newest.version)
    assert "map_hash_max_size 8192;" in files[NGINX_CONF_TARGET]
    assert validate_nginx_conf(files, command=newest.command, root=newest.root) == ()


def test_an_unreadable_key_fails_its_host_only_and_the_check_before_a_roll(edge: Edge) -> None:
    broken = HOSTS[7]
    edge.key(broken).chmod(0)
    nginx = _running(edge)  # nginx starts: it reads no key at start
    try:
        assert edge.served(broken) is None
        assert edge.served(HOSTS[8]) == edge.der[HOSTS[8]]
    finally:
        _stop(edge, nginx)
    assert "Permission denied" in (edge.tree / "stderr").read_text()
    # The edge image's check before a roll loads every pair at once: it refuses this one.
    check = edge.check_every_pair()
    assert check.returncode != 0
    assert f"{broken}/privkey.pem" in check.stderr and "Permission denied" in check.stderr


def test_older_nginx_loads_every_certificate_at_start() -> None:
    routes = [Route("127.0.0.1", (host,), 9) for host in HOSTS[:3]]
    certs = {host: stored_cert(name=host, domains=(host,)) for host in HOSTS[:3]}
    for version in ((1, 22, 0), (1, 27, 3)):
        files = render_nginx_conf(routes, certs, RESPONDER, CERTS_DIR, nginx_version=version)
        text = "".join(files.values())
        assert CERTIFICATE_VARIABLE not in text and "ssl_certificate_cache" not in text
        assert CERTIFICATE_CHECK_CONF not in files
        assert f"ssl_certificate {CERTS_DIR}/{HOSTS[0]}/fullchain.pem;" in text
    # Where the edge's workers' group is unknown, the deployer keeps them loaded at start too.
    files = render_nginx_conf(routes, certs, RESPONDER, CERTS_DIR, nginx_version=(1, 30, 0),
                              certificates_on_first_use=False)  # fmt: skip
    assert CERTIFICATE_VARIABLE not in "".join(files.values())


def test_the_rendering_for_first_use_passes_nginx_t_with_a_cache_for_every_certificate() -> None:
    routes = [Route("127.0.0.1", (host,), 9) for host in HOSTS]
    certs: Mapping[str, StoredCert] = {h: stored_cert(name=h, domains=(h,)) for h in HOSTS}
    files = render_nginx_conf(routes, certs, RESPONDER, CERTS_DIR, nginx_version=(1, 30, 0))
    assert "ssl_certificate_cache max=1024 inactive=1h valid=1m;" in files[NGINX_CONF_TARGET]
    check = "".join(text for target, text in files.items() if "certificate-check" in target)
    assert all(f"ssl_certificate_key {CERTS_DIR}/{host}/privkey.pem;" in check for host in HOSTS)
    if _local_nginx_at_least(CERTIFICATES_ON_FIRST_USE_SINCE):
        validate_nginx_conf(files)


def _local_nginx_at_least(version: NginxVersion) -> bool:
    try:
        return local_nginx_version() >= version
    except (OSError, ValueError):
        return False


def test_keys_read_on_first_use_are_mounted_readable_by_the_workers_group_only() -> None:
    cert = stored_cert()
    files = certificate_references(
        cert, cert_files(cert.name, CERTS_DIR), ("app.example.test",), 101
    )
    key = next(ref for ref in files if ref.kind == ObjectKind.SECRET)
    assert (key.mode, key.gid) == (0o440, 101)
    [mounted] = swap_references([], [key], ObjectKind.SECRET)
    assert mounted["File"] == {"Name": key.target, "UID": "0", "GID": "101", "Mode": 0o440}
    # Loaded at start by the master (root), as before: 0400, root's.
    refs = edge_references([Route("127.0.0.1", ("app.example.test",), 9)],
                           {cert.name: cert}, {}, CERTS_DIR)  # fmt: skip
    [old_key] = [ref for ref in refs if ref.kind == ObjectKind.SECRET]
    assert (old_key.mode, old_key.gid) == (0o400, None)
    [mounted] = swap_references([], [old_key], ObjectKind.SECRET)
    assert (mounted["File"]["GID"], mounted["File"]["Mode"]) == ("0", 0o400)


@pytest.mark.parametrize(
    ("build", "group"),
    [
        ("nginx version: nginx/1.28.0\nconfigure arguments: --user=nginx --group=nginx", 101),
        ("nginx version: nginx/1.26.3\nconfigure arguments: --with-http_ssl_module", 65534),
        ("configure arguments: --user=www-data", 33),
        ("configure arguments: --user=edge --group=edge", None),
    ],
)
def test_the_workers_group_is_read_from_how_nginx_was_built(build: str, group: int | None) -> None:
    assert worker_group_id(build) == group


class EdgeImageSwarm(OneServiceSwarm):
    """The edge service, its image's nginx 1.30 built with `--user=nginx --group=nginx` (the
    official image's), and the jobs run in it; `check_fails`: the certificate check fails."""

    def __init__(self, check_fails: bool = False) -> None:
        super().__init__()
        self.jobs: list[dict[str, Any]] = []
        self.check_fails = check_fails

    def run_job(self, name: str, task_template: dict[str, Any], timeout: float) -> JobResult:
        self.jobs.append(task_template)
        command = task_template["ContainerSpec"]["Command"]
        if command == ["nginx", "-V"]:
            return JobResult("complete", "nginx version: nginx/1.30.0\n"
                             "configure arguments: --user=nginx --group=nginx")  # fmt: skip
        if self.check_fails:
            return JobResult("failed", '[emerg] cannot load certificate key "…/privkey.pem"')
        return JobResult("complete", "")


def _deploy(swarm: EdgeImageSwarm) -> None:
    edge = SwarmEdgeDeployer(Settings(self_check=False), cast(Swarm, swarm),
                             cast(CertStore, ConfigStore()))  # fmt: skip
    cert = stored_cert()
    routes = [Route("stack_app", cert.domains, 8080)]
    edge.deploy("edge", routes, {cert.name: cert}, [cert.name], lambda _: None)


def test_the_edge_image_loads_every_pair_before_a_roll_and_keys_are_the_workers_groups() -> None:
    swarm = EdgeImageSwarm()
    _deploy(swarm)
    _, check = swarm.jobs  # `nginx -V`, then the certificate check
    assert check["ContainerSpec"]["Command"] == ["nginx", "-t", "-c", CERTIFICATE_CHECK_CONF]
    (update,) = swarm.updates
    files = {
        ref["File"]["Name"]: ref["File"]
        for ref in update["TaskTemplate"]["ContainerSpec"]["Secrets"]
    }
    key = files[f"{Settings().certs_dir}/app.example.test/privkey.pem"]
    assert (key["GID"], key["Mode"]) == ("101", 0o440)
    assert (files[ticket_key_target(0)]["GID"], files[ticket_key_target(0)]["Mode"]) == ("0", 0o400)
    configs = {ref["File"]["Name"] for ref in update["TaskTemplate"]["ContainerSpec"]["Configs"]}
    assert CERTIFICATE_CHECK_CONF in configs


def test_a_pair_the_edge_images_nginx_cannot_load_is_not_rolled() -> None:
    swarm = EdgeImageSwarm(check_fails=True)
    with pytest.raises(NginxConfigError, match="cannot load certificate key"):
        _deploy(swarm)
    assert swarm.updates == []
