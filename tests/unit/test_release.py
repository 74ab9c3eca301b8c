"""One version (issue 26, item 1): pyproject.toml's, and nowhere else by hand. `--version`, the
metrics and the status page read it from the installed distribution; the images carry it as
OCI annotations and as their tag, which stacks/edge.yml deploys; CHANGELOG.md has its entry."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version

import pytest
from prometheus_client import REGISTRY

from certbotless import __version__, cli
from rig.images import RELEASED_IMAGES, release_build_args, release_tags
from tests.support.paths import PACKAGE, REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def test_the_running_version_is_the_installed_distributions() -> None:
    # An editable install keeps the version it was installed with: `pip install -e .` again
    # after changing pyproject.toml (rig/install.py does when pyproject.toml changed).
    assert __version__ == version("certbotless")


def test_no_module_spells_the_version_out() -> None:
    spelled = [str(path) for path in PACKAGE.rglob("*.py") if f'"{PYPROJECT}"' in path.read_text()]
    assert spelled == []


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"certbotless {__version__}"


def test_build_info_metric() -> None:
    import certbotless.daemon.metrics  # noqa: F401  (registers the metrics)

    value = REGISTRY.get_sample_value("certbotless_build_info", {"version": __version__})
    assert value == 1


def test_the_edge_stack_deploys_this_releases_images() -> None:
    edge = (REPO / "stacks" / "edge.yml").read_text()
    defaults = re.findall(r"\$\{CERTBOTLESS_VERSION:-([^}]*)\}", edge)
    assert defaults == [PYPROJECT, PYPROJECT]  # nginx and the sidecar


def test_the_rig_tags_and_annotates_images_with_the_version() -> None:
    assert release_tags("certbotless:local") == ["certbotless:local", f"certbotless:{PYPROJECT}"]
    assert release_tags("certbotless-nginx:forky") == ["certbotless-nginx:forky"]
    assert release_tags("certbotless-demo-app:local") == ["certbotless-demo-app:local"]
    assert f"VERSION={PYPROJECT}" in release_build_args()
    for image in RELEASED_IMAGES:
        directory = {
            "certbotless": ".",
            "certbotless-nginx": "nginx",
            "certbotless-front": "haproxy",
        }
        dockerfile = (REPO / directory[image] / "Dockerfile").read_text()
        for annotation in ("version", "revision", "source"):
            assert f"org.opencontainers.image.{annotation}=" in dockerfile, (image, annotation)


def test_the_changelog_starts_with_this_version() -> None:
    changelog = (REPO / "CHANGELOG.md").read_text()
    entries = re.findall(r"^## \[([^\]]+)\]", changelog, re.MULTILINE)
    # Keep a Changelog's [Unreleased] section gathers what main has that no release has yet.
    assert next(entry for entry in entries if entry != "Unreleased") == PYPROJECT
    assert "Unreleased" not in entries[1:]
    first = changelog.split(f"## [{PYPROJECT}]")[1].split("\n## [")[0]
    assert "### Upgrading" in first
