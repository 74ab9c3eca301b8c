"""The swarm tests start from a swarm without what an interrupted earlier run left behind."""

import pytest

from rig.stacks import remove_leftovers


@pytest.fixture(scope="session", autouse=True)
def swarm_without_leftovers(rig_env: dict[str, str]) -> None:
    removed = remove_leftovers()
    if removed:
        print(f"removed what an earlier run left: {', '.join(removed)}")
