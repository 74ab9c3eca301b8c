"""What the edge's tests share: the rig's newest nginx (forky's 1.30, the generation of the edge
image's nginx:stable), run in its root."""

from __future__ import annotations

from pathlib import Path

import pytest

from certbotless.edge.certificates import CERTIFICATES_ON_FIRST_USE_SINCE
from certbotless.edge.upstreams import UPSTREAM_RESOLVE_SINCE
from tests.support.edge_nginx import NginxBinary


@pytest.fixture(scope="session")
def newest(rig_env: dict[str, str]) -> NginxBinary:
    """An nginx with pooled upstreams (1.27.3) and certificates read on first use (1.27.4)."""
    root = Path(rig_env.get("CBL_NGINX_NEWEST_ROOT", ""))
    if not (root / "usr/sbin/nginx").is_file():
        pytest.fail(f"no nginx >= 1.27.4 root at {root} (`python3 -m rig up` unpacks one)")
    binary = NginxBinary(root)
    assert binary.version >= max(UPSTREAM_RESOLVE_SINCE, CERTIFICATES_ON_FIRST_USE_SINCE)
    return binary
