"""The rendered configuration on both nginx generations the edge meets: this machine's nginx
(Debian bookworm's 1.22, which rejects `http2 on;`) and a newer one (>= 1.25.1, which warns about
`listen ... http2`), run from a root filesystem such as Debian trixie's. Each must accept the
configuration rendered for its version without a single warning: an edge prints them at every
start, and operators learn to ignore its log.

The newer nginx's root is the rig's unpacked trixie (`CBL_NGINX_NEW_ROOT` in its env); without
it the test skips, or fails in CI.
"""

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from certbotless.edge.nginx_version import (
    HTTP2_DIRECTIVE_SINCE,
    NginxVersion,
    local_nginx_version,
    parse_nginx_version,
)
from certbotless.edge.snippets import render_snippets
from certbotless.edge.validation import validate_nginx_conf
from tests.support.factories import CERTS_DIR, RESPONDER, SCENARIOS
from tests.support.paths import REPO

IN_CI = os.environ.get("CI", "").lower() == "true"
NGINX_CONFIGURATION = REPO / "docs" / "nginx-configuration.md"

# nginx in NEW_ROOT as in a container: a private mount namespace gives it /proc and /dev (the
# rendered config logs to /dev/stdout), and both mounts vanish with it.
_IN_ROOT = (
    'mount -t proc proc "$0/proc" && mount --rbind /dev "$0/dev" && exec chroot "$0" nginx "$@"'
)


@dataclass(frozen=True)
class Nginx:
    version: NginxVersion
    command: tuple[str, ...]
    root: Path

    def warnings(self, text: str | Mapping[str, str]) -> tuple[str, ...]:
        return validate_nginx_conf(text, command=self.command, root=self.root)


def _missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


def _local_nginx() -> Nginx:
    if shutil.which("nginx") is None:
        _missing("nginx is not installed (apt-get install nginx-light)")
    version = local_nginx_version()
    assert version < HTTP2_DIRECTIVE_SINCE, f"expected bookworm's nginx 1.22 here, not {version}"
    return Nginx(version, ("nginx",), Path("/"))


def _new_nginx(root: Path) -> Nginx:
    if not (root / "usr/sbin/nginx").is_file():
        _missing(f"no nginx >= 1.25.1 root at {root} (`python3 -m rig up` unpacks one)")
    command = ("unshare", "--mount", "--fork", "sh", "-c", _IN_ROOT, str(root))
    output = subprocess.run(
        [*command, "-v"], capture_output=True, text=True, timeout=60, check=False
    )
    version = parse_nginx_version(output.stderr + output.stdout)
    assert version >= HTTP2_DIRECTIVE_SINCE, f"{root} has nginx {version}, not >= 1.25.1"
    return Nginx(version, command, root)


@pytest.fixture(scope="module", params=["local-1.22", "new-root", "newest-root"])
def nginx(request: pytest.FixtureRequest, rig_env: dict[str, str]) -> Nginx:
    if request.param == "local-1.22":
        return _local_nginx()
    if request.param == "newest-root":  # forky's 1.30: pooled upstreams (edge/upstreams.py)
        return _new_nginx(Path(rig_env.get("CBL_NGINX_NEWEST_ROOT", "")))
    return _new_nginx(Path(rig_env.get("CBL_NGINX_NEW_ROOT", "")))


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_rendered_config_passes_without_warnings(nginx: Nginx, scenario: str) -> None:
    assert nginx.warnings(SCENARIOS[scenario].files(nginx.version)) == ()


def readme_own_nginx_conf(version: NginxVersion) -> str:
    """The documentation's own-nginx.conf example (docs/nginx-configuration.md), with
    certbotless's snippets in place of its includes and a location in place of its `...`; for an
    nginx older than 1.25.1, HTTP/2 the way the example's comment says."""
    section = NGINX_CONFIGURATION.read_text().split("\n## Bring your own nginx.conf\n", 1)[1]
    example = section.split("```nginx\n", 1)[1].split("```", 1)[0]
    snippets = render_snippets(["shop.example.com"], RESPONDER, CERTS_DIR)
    for target, snippet in snippets.items():
        assert f"include {target};" in example, f"the documentation no longer includes {target}"
        example = example.replace(f"include {target};", snippet)
    if version < HTTP2_DIRECTIVE_SINCE:
        example, changed = re.subn(
            r"listen 443 ssl;\n\s*http2 on;[^\n]*", "listen 443 ssl http2;", example
        )
        assert changed == 1
    example = example.replace("...", "location / { return 200; }")
    return f"events {{}}\nhttp {{\n{example}}}\n"


def test_readme_own_nginx_conf_passes_without_warnings(nginx: Nginx) -> None:
    assert nginx.warnings(readme_own_nginx_conf(nginx.version)) == ()
