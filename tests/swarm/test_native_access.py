"""certbotless's own access labels on the real swarm (issue 15, item 2): basic auth from an
htpasswd Swarm secret the edge mounts (certbotless.basic_auth_secret, and Traefik's
basicauth.usersFile naming the same secret), over HTTPS (stacks/native-access.yml). The other
native labels are answered by a real nginx in tests/unit/test_native_labels.py."""

import base64
import time
from collections.abc import Callable, Iterator, Mapping

import pytest

from rig.stacks import (
    DEMO_STACK,
    EDGE_STACK,
    SEED_STACKS,
    deploy_edge,
    deploy_stack,
    https_get,
    remove_stacks,
    sidecar_logs,
    wait_for_https,
)

pytestmark = pytest.mark.rig

STACK = "native-access"
NATIVE = "native.example.test"
USERS_FILE = "usersfile.example.test"
OPS = {"Authorization": "Basic " + base64.b64encode(b"ops:secret").decode()}


@pytest.fixture(scope="module")
def served(
    rig_env: Mapping[str, str], pebble_root: str, figure: Callable[[str], None]
) -> Iterator[str]:
    remove_stacks([STACK, "traefik-seeds", *SEED_STACKS, DEMO_STACK, EDGE_STACK])
    deploy_edge(rig_env)
    started = time.monotonic()
    deploy_stack(STACK, ["native-access.yml"], {})
    try:
        answers = [wait_for_https(host, pebble_root, timeout=300, headers=OPS)
                   for host in (NATIVE, USERS_FILE)]  # fmt: skip
        figure(
            "basic auth from a Swarm secret (2 services) deployed → HTTPS answering: "
            f"{max(a.answering_since for a in answers) - started:.1f} s"
        )
        yield pebble_root
    except TimeoutError:
        print(sidecar_logs(200))
        raise
    finally:
        remove_stacks([STACK, EDGE_STACK])


@pytest.mark.parametrize("host", [NATIVE, USERS_FILE])
def test_the_secrets_users_get_in_and_nobody_else(served: str, host: str) -> None:
    assert https_get(host, served, "/").status == 401
    wrong = {"Authorization": "Basic " + base64.b64encode(b"ops:wrong").decode()}
    assert https_get(host, served, "/", headers=wrong).status == 401
    assert https_get(host, served, "/", headers=OPS).status == 200
