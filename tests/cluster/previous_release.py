"""The release before the working tree, as an operator ran it: its checkout (a `git worktree`) for
its stack files, and its three images built from that checkout with plain `docker build`.

The previous release is the newest tag reachable from HEAD; in a clone without tags, the newest
commit titled "Release x.y.z"; before the first release, the commit issue 26 started from
(BASE_COMMIT). Its images are tagged `<repository>:upgrade-from-<commit>`, never `:local` (the
working tree's), and built once per machine: a commit never changes. The rig's own image builder is
not used for them: it would re-unpack the nginx roots other tests run and retag the `:local`
images.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rig.cluster import Cluster
from rig.images import BASE_IMAGE, IMAGE_PYTHON, image_exists
from rig.install import REPO
from rig.state import STATE_DIR, run, say

# The commit issue 26 starts from: the release before 0.2.0 had no tag.
BASE_COMMIT = "b5f220b"
# (repository, Dockerfile directory, extra build args): the sidecar installs offline from wheels.
IMAGES = [
    ("certbotless", ".", ["--build-arg", "PIP_FIND_LINKS=/src/.build/wheels"]),
    ("certbotless-nginx", "nginx", []),
    ("certbotless-front", "haproxy", []),
]


@dataclass(frozen=True)
class PreviousRelease:
    """The previous release's checkout and its images' tag."""

    commit: str  # full hash
    checkout: Path

    @property
    def tag(self) -> str:
        return f"upgrade-from-{self.commit[:7]}"

    def image(self, repository: str) -> str:
        return f"{repository}:{self.tag}"

    @property
    def images(self) -> list[str]:
        return [self.image(repository) for repository, _, _ in IMAGES]

    def stack_file(self, name: str) -> Path:
        return self.checkout / "stacks" / name


def previous_commit() -> str:
    """The newest tag reachable from HEAD; in a clone without tags (CI's), the newest commit
    titled "Release x.y.z" (each release is one); else BASE_COMMIT. As a full commit hash."""
    described = run(["git", "-C", str(REPO), "describe", "--tags", "--abbrev=0"], check=False)
    if described.returncode == 0:
        ref = described.stdout.strip()
    else:
        released = run(["git", "-C", str(REPO), "log", "-1", "--format=%H", "--extended-regexp",
                        "--grep=^Release [0-9]+\\.[0-9]+\\.[0-9]+"]).stdout.strip()  # fmt: skip
        ref = released or BASE_COMMIT
    return run(["git", "-C", str(REPO), "rev-parse", f"{ref}^{{commit}}"]).stdout.strip()


@contextmanager
def previous_release(cluster: Cluster) -> Iterator[PreviousRelease]:
    """The previous release checked out in a temporary worktree (removed after), its images built
    if missing and loaded into every node of `cluster` that lacks them."""
    commit = previous_commit()
    checkout = Path(tempfile.mkdtemp(prefix="cbl-previous-release-"))
    run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(checkout), commit])
    try:
        release = PreviousRelease(commit, checkout)
        if not all(image_exists(image) for image in release.images):
            build_images(release)
        load_images(cluster, release)
        yield release
    finally:
        run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(checkout)], check=False)
        shutil.rmtree(checkout, ignore_errors=True)


def build_images(release: PreviousRelease) -> None:
    """Its images on the rig's base image, as its own rig built them (its rig/images.py)."""
    wheels = release.checkout / ".build" / "wheels"
    wheels.mkdir(parents=True)
    pip = [sys.executable, "-m", "pip"]
    run([*pip, "wheel", "-q", "--no-deps", "--wheel-dir", str(wheels), str(release.checkout)])
    # Its dependencies, for the image's Python: the working tree's wheels when the rig built
    # them (the same requirements so far), else from the index as the rig does.
    ours = REPO / ".build" / "wheels"
    for wheel in ours.glob("*.whl") if ours.is_dir() else []:
        if not wheel.name.startswith("certbotless-"):
            shutil.copy(wheel, wheels)
    offline = ["--no-index", "--find-links", str(wheels)]
    download = [*pip, "download", "-q", "--only-binary=:all:", "--python-version", IMAGE_PYTHON,
                "--dest", str(wheels)]  # fmt: skip
    if run([*download, *offline, str(release.checkout)], check=False).returncode != 0:
        run([*download, str(release.checkout)])
    for repository, context, extra in IMAGES:
        say(f"building {release.image(repository)} from {release.commit[:7]}")
        directory = release.checkout / context
        run(["docker", "build", "-q", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", *extra,
             "-t", release.image(repository), "-f", str(directory / "Dockerfile"),
             str(directory)])  # fmt: skip


def load_images(cluster: Cluster, release: PreviousRelease) -> None:
    """Into the nodes that lack them (by image ID), through one `docker save`."""
    wanted = {image: _image_id(image, {}) for image in release.images}
    stale = [
        node
        for node in cluster.names
        if any(_image_id(image, cluster.env(node)) != i for image, i in wanted.items())
    ]
    if not stale:
        return
    archive = STATE_DIR / f"previous-release-{release.tag}.tar"
    run(["docker", "save", "-o", str(archive), *release.images])
    try:
        for node in stale:
            cluster.docker(node, "load", "-q", "-i", str(archive))
    finally:
        archive.unlink(missing_ok=True)


def _image_id(image: str, env: dict[str, str]) -> str:
    found = run(["docker", "image", "inspect", "--format", "{{.Id}}", image], False, env)
    return found.stdout.strip() if found.returncode == 0 else ""
