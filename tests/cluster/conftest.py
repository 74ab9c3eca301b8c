"""The cluster tests share one multi-node swarm of Docker-in-Docker nodes (rig/cluster.py).

The session brings it up once, or reuses one already up (`python3 -m rig cluster up`), and removes
it at the end only if this session made it. CBL_KEEP_CLUSTER=1 keeps even that one, for the next
run.
"""

import os
from collections.abc import Iterator

import pytest

from rig.cluster import Cluster

KEEP = os.environ.get("CBL_KEEP_CLUSTER", "") == "1"


@pytest.fixture(scope="session")
def cluster(rig_env: dict[str, str]) -> Iterator[Cluster]:
    # rig_env: skipped (failed in CI) when the rig is not up, like every rig test.
    cluster, made = Cluster.ensure(nodes=4, managers=3)
    yield cluster
    if made and not KEEP:
        cluster.down()
