"""Images without a registry: a debootstrapped Debian base, and the project's images built on it."""

from __future__ import annotations

import hashlib
import re
import subprocess
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from rig.install import REPO, VENV
from rig.state import CACHE_DIR, RigError, run, say


@dataclass(frozen=True)
class DebianBase:
    """A debootstrapped Debian release imported as an image; its rootfs is cached as a tarball."""

    tag: str
    suite: str
    packages: str

    @property
    def rootfs_tar(self) -> Path:
        # Named after the package list too, so that adding a package debootstraps anew.
        packages = hashlib.sha256(self.packages.encode()).hexdigest()[:8]
        return CACHE_DIR / f"{self.suite}-{packages}-rootfs.tar"


# haproxy: the rig's L4 front (the production default is the official haproxy image).
BOOKWORM = DebianBase(
    "certbotless-test-base",
    "bookworm",
    "python3,python3-venv,nginx-light,haproxy,ca-certificates,curl",
)
# nginx 1.26: the syntax of the production image (nginx:stable), where `listen … http2` is
# deprecated in favour of `http2 on;`, which bookworm's 1.22 rejects.
TRIXIE = DebianBase("certbotless-test-base-trixie", "trixie", "nginx-light,ca-certificates")
# nginx 1.30 (Debian forky): upstream servers that follow DNS (`resolve`, 1.27.3) and certificates
# loaded on first use (`ssl_certificate_cache`, 1.27.4), as the edge image's nginx:stable has.
# With njs (libnginx-mod-http-js), as nginx:stable has it.
FORKY = DebianBase(
    "certbotless-test-base-forky", "forky", "nginx-light,libnginx-mod-http-js,ca-certificates"
)
BASE_IMAGE = BOOKWORM.tag
IMAGE_PYTHON = "3.11.2"  # bookworm's python3, which runs certbotless in the sidecar image
# A Docker-in-Docker node of the rig's multi-node cluster (rig/cluster.py).
NODE = DebianBase(
    "certbotless-test-node",
    "bookworm",
    "docker.io,iptables,ca-certificates,curl,procps,iproute2",
)
# Trixie's rootfs unpacked, so that tests can run its nginx with chroot.
NEWER_NGINX_ROOT = CACHE_DIR / "trixie-root"
NEWEST_NGINX_ROOT = CACHE_DIR / "forky-root"
# Roots unpacked from a base's rootfs, for tests that run its nginx with chroot.
_UNPACKED = ((NEWER_NGINX_ROOT, TRIXIE), (NEWEST_NGINX_ROOT, FORKY))
PROJECT_IMAGES = [
    # (tag, Dockerfile directory, base, extra build args)
    ("certbotless:local", ".", BOOKWORM, ["--build-arg", "PIP_FIND_LINKS=/src/.build/wheels"]),
    ("certbotless-nginx:local", "nginx", BOOKWORM, []),
    # nginx 1.30, as the edge image's nginx:stable: pooled upstreams, `http2 on;`.
    ("certbotless-nginx:forky", "nginx", FORKY, []),
    ("certbotless-front:local", "haproxy", BOOKWORM, []),
    ("certbotless-demo-app:local", "stacks/apps/hello", BOOKWORM, []),
]


# The release's images, tagged with its version too (stacks/edge.yml's default tag).
RELEASED_IMAGES = ("certbotless", "certbotless-nginx", "certbotless-front")


def release_version() -> str:
    """pyproject.toml's version: the one version of the release."""
    with (REPO / "pyproject.toml").open("rb") as file:
        return str(tomllib.load(file)["project"]["version"])


def release_build_args() -> list[str]:
    """The OCI annotations' values (each Dockerfile's VERSION, REVISION and SOURCE)."""
    revision = run(["git", "-C", str(REPO), "rev-parse", "HEAD"], check=False).stdout.strip()
    source = run(["git", "-C", str(REPO), "remote", "get-url", "origin"], check=False).stdout
    values = {"VERSION": release_version(), "REVISION": revision, "SOURCE": source.strip()}
    return [arg for name, value in values.items() for arg in ("--build-arg", f"{name}={value}")]


def release_tags(tag: str) -> list[str]:
    """`certbotless:local` is also `certbotless:<version>`; other tags stay as they are."""
    repository, _, variant = tag.partition(":")
    if repository in RELEASED_IMAGES and variant == "local":
        return [tag, f"{repository}:{release_version()}"]
    return [tag]


def debian_mirror() -> str:
    """The machine's own Debian mirror, read from its apt sources."""
    sources = sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    for path in sources:
        for stanza in path.read_text().split("\n\n"):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.MULTILINE)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.MULTILINE)
            if uris and suites and BOOKWORM.suite in suites.group(1).split():
                return uris.group(1)
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        match = re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", legacy.read_text(), re.M)
        if match:
            return match.group(1)
    raise RigError("no bookworm mirror found in /etc/apt/sources.list{,.d}")


def image_exists(tag: str) -> bool:
    return run(["docker", "image", "inspect", tag], check=False).returncode == 0


def ensure_base_images() -> None:
    for base in (BOOKWORM, TRIXIE, FORKY):
        ensure_base_image(base)
    for root, base in _UNPACKED:
        # Unpacked anew when its base's package list (so its tarball) changed.
        marker = root / ".certbotless-rootfs"
        if root.is_dir() and marker.exists() and marker.read_text() == base.rootfs_tar.name:
            continue
        partial, stale = root.with_suffix(".partial"), root.with_suffix(".stale")
        run(["rm", "-rf", str(partial), str(stale)])
        partial.mkdir(parents=True)
        run(["tar", "-C", str(partial), "-xf", str(base.rootfs_tar)])
        (partial / marker.name).write_text(base.rootfs_tar.name)
        if root.is_dir():  # a test may still run nginx in it: swapped, then removed
            root.rename(stale)
        partial.rename(root)
        run(["rm", "-rf", str(stale)])


def ensure_base_image(base: DebianBase) -> None:
    if image_exists(base.tag) and base.rootfs_tar.exists():
        say(f"{base.tag} present")
        return
    if not base.rootfs_tar.exists():
        mirror = debian_mirror()
        say(f"debootstrapping {base.suite} from {mirror} (about a minute)")
        started = time.monotonic()
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE_DIR) as rootfs:
            # Bookworm's debootstrap has no script for releases after trixie: sid's fits them.
            known = Path(f"/usr/share/debootstrap/scripts/{base.suite}").exists()
            script = [] if known else ["/usr/share/debootstrap/scripts/sid"]
            run(["debootstrap", "--variant=minbase", f"--include={base.packages}", base.suite,
                 rootfs, mirror, *script])  # fmt: skip
            partial = base.rootfs_tar.with_suffix(".partial")
            run(["tar", "-C", rootfs, "-cf", str(partial), "."])
            partial.rename(base.rootfs_tar)
        say(f"rootfs cached in {base.rootfs_tar} ({time.monotonic() - started:.0f} s)")
    say(f"importing {base.tag}")
    with base.rootfs_tar.open("rb") as tar:
        subprocess.run(
            ["docker", "import", "-", base.tag],
            stdin=tar,
            check=True,
            stdout=subprocess.DEVNULL,
        )


def ensure_node_image() -> None:
    """The cluster's node image; built only when a cluster is wanted."""
    ensure_base_image(NODE)


def build_project_images() -> None:
    ensure_base_images()
    # The image installs offline from these wheels. Its Python is bookworm's 3.11.2, older than
    # the host's: the dependencies are chosen for it (some releases ask for 3.11.5 or newer).
    say("building wheels for the sidecar image")
    pip, wheels = str(VENV / "bin" / "pip"), str(REPO / ".build/wheels")
    run([pip, "wheel", "-q", "--no-deps", "--wheel-dir", wheels, str(REPO)])
    run([pip, "download", "-q", "--only-binary=:all:", "--python-version", IMAGE_PYTHON,
         "--dest", wheels, str(REPO)])  # fmt: skip
    for tag, context, base, extra in PROJECT_IMAGES:
        started = time.monotonic()
        run(
            [
                "docker",
                "build",
                "-q",
                "--build-arg",
                f"BASE_IMAGE={base.tag}",
                *(release_build_args() if tag.partition(":")[0] in RELEASED_IMAGES else []),
                *extra,
                *[arg for name in release_tags(tag) for arg in ("-t", name)],
                "-f",
                str(REPO / context / "Dockerfile"),
                str(REPO / context),
            ]
        )
        say(f"built {tag} ({time.monotonic() - started:.0f} s)")
