"""Images without a registry: a debootstrapped Debian base, and the project's images built on it."""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from pathlib import Path

from rig.install import REPO, VENV
from rig.state import CACHE_DIR, RigError, run, say

BASE_IMAGE = "certbotless-test-base"
ROOTFS_TAR = CACHE_DIR / "bookworm-rootfs.tar"
BASE_PACKAGES = "python3,python3-venv,nginx-light,ca-certificates,curl"
PROJECT_IMAGES = [
    # (tag, Dockerfile directory, extra build args)
    ("certbotless:local", ".", ["--build-arg", "PIP_FIND_LINKS=/src/.build/wheels"]),
    ("certbotless-nginx:local", "nginx", []),
    ("certbotless-demo-app:local", "stacks/apps/hello", []),
]


def debian_mirror() -> str:
    """The machine's own Debian mirror, read from its apt sources."""
    sources = sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    for path in sources:
        for stanza in path.read_text().split("\n\n"):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.MULTILINE)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.MULTILINE)
            if uris and suites and "bookworm" in suites.group(1).split():
                return uris.group(1)
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        match = re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", legacy.read_text(), re.M)
        if match:
            return match.group(1)
    raise RigError("no bookworm mirror found in /etc/apt/sources.list{,.d}")


def image_exists(tag: str) -> bool:
    return run(["docker", "image", "inspect", tag], check=False).returncode == 0


def ensure_base_image() -> None:
    if image_exists(BASE_IMAGE):
        say(f"{BASE_IMAGE} present")
        return
    if not ROOTFS_TAR.exists():
        mirror = debian_mirror()
        say(f"debootstrapping bookworm from {mirror} (about a minute)")
        started = time.monotonic()
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE_DIR) as rootfs:
            run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--include={BASE_PACKAGES}",
                    "bookworm",
                    rootfs,
                    mirror,
                ]
            )
            partial = ROOTFS_TAR.with_suffix(".partial")
            run(["tar", "-C", rootfs, "-cf", str(partial), "."])
            partial.rename(ROOTFS_TAR)
        say(f"rootfs cached in {ROOTFS_TAR} ({time.monotonic() - started:.0f} s)")
    say(f"importing {BASE_IMAGE}")
    with ROOTFS_TAR.open("rb") as tar:
        subprocess.run(
            ["docker", "import", "-", BASE_IMAGE],
            stdin=tar,
            check=True,
            stdout=subprocess.DEVNULL,
        )


def build_project_images() -> None:
    ensure_base_image()
    # The host's Python matches bookworm's 3.11, so its wheels install offline in the image.
    say("building wheels for the sidecar image")
    run(
        [
            str(VENV / "bin" / "pip"),
            "wheel",
            "-q",
            "--wheel-dir",
            str(REPO / ".build/wheels"),
            str(REPO),
        ]
    )
    for tag, context, extra in PROJECT_IMAGES:
        started = time.monotonic()
        run(
            [
                "docker",
                "build",
                "-q",
                "--build-arg",
                f"BASE_IMAGE={BASE_IMAGE}",
                *extra,
                "-t",
                tag,
                "-f",
                str(REPO / context / "Dockerfile"),
                str(REPO / context),
            ]
        )
        say(f"built {tag} ({time.monotonic() - started:.0f} s)")
