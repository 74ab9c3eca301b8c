"""Which nginx the edge runs: its version decides some of the syntax (HTTP/2, pooled upstreams,
certificates read on first use), and how it was built the group its workers run as."""

from __future__ import annotations

import re
import subprocess
from functools import cache

NginxVersion = tuple[int, int, int]
# From 1.25.1 nginx wants `http2 on;` and warns about `listen ... http2`; older ones reject it.
HTTP2_DIRECTIVE_SINCE: NginxVersion = (1, 25, 1)
# Debian bookworm's nginx, the oldest the edge image is built on.
DEFAULT_NGINX_VERSION: NginxVersion = (1, 22, 0)

_NGINX_VERSION_RE = re.compile(r"\bnginx/([0-9]+)\.([0-9]+)\.([0-9]+)", re.ASCII)


def parse_nginx_version(text: str) -> NginxVersion:
    """The version in `nginx -v` output: `nginx version: nginx/1.26.3`, `nginx/1.25.1 (Ubuntu)`."""
    match = _NGINX_VERSION_RE.search(text)
    if match is None:
        raise ValueError(
            f"cannot read an nginx version from {text.strip()!r}; "
            "expected `nginx -v` output such as 'nginx version: nginx/1.26.3'"
        )
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def nginx_version_number(text: str) -> NginxVersion:
    """A version written alone, `1.26.3` (as `certbotless lint --nginx-version` takes it)."""
    return parse_nginx_version(f"nginx/{text}")


@cache
def local_nginx_version(nginx: str = "nginx") -> NginxVersion:
    """The version of the nginx on this machine (`nginx -v` prints it on stderr)."""
    result = subprocess.run([nginx, "-v"], capture_output=True, text=True, timeout=30, check=False)
    return parse_nginx_version(result.stderr + result.stdout)


# The group of nginx's workers, by name as `nginx -V` shows how nginx was built, → its id in
# the images the edge is built on: the official nginx images (Debian and Alpine) make `nginx`
# 101; without --user nginx runs its workers as nobody, group nogroup (or nobody): 65534.
_KNOWN_GROUP_IDS = {"nginx": 101, "www-data": 33, "nogroup": 65534, "nobody": 65534}
_BUILD_OPTION_RE = re.compile(r"--(user|group)=(\S+)", re.ASCII)


def worker_group_id(nginx_build: str) -> int | None:
    """The group id of nginx's workers from `nginx -V` output (the rendered nginx.conf sets no
    `user`, so the built-in one applies); None when the group is not one the table knows."""
    options = dict(_BUILD_OPTION_RE.findall(nginx_build))
    group = options.get("group") or options.get("user") or "nogroup"
    return _KNOWN_GROUP_IDS.get(group)
