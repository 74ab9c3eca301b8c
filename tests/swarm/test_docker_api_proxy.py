"""The sidecar of stacks/edge.yml reaches the engine only through the Docker API proxy
(haproxy/docker-api-proxy.cfg): what would take a manager over is refused, and certbotless's
own commands work through it."""

import json
from collections.abc import Iterator
from typing import Any

import pytest

from rig.stacks import (
    DEMO_HOST,
    DEMO_STACK,
    EDGE_STACK,
    deploy_demo_app,
    deploy_edge,
    docker,
    purge_managed_objects,
    remove_stacks,
    service_logs,
    sidecar_container,
    wait_for_https,
)
from rig.state import run

pytestmark = pytest.mark.rig

PROXY_SERVICE = f"{EDGE_STACK}_docker-api"

# Run inside the sidecar: each call an attacker who owned the sidecar would try first, through
# the Docker SDK as certbotless builds it (DOCKER_HOST). Prints {call: status and message}.
ATTEMPTS = r"""
import json, socket, docker
api = docker.from_env(timeout=30).api
own = socket.gethostname()
attempts = {
    "create a privileged container": lambda: api.create_container(
        "certbotless-front:local", ["id"], name="cbl-proxy-escape",
        host_config=api.create_host_config(privileged=True, binds=["/:/host"])),
    "exec in the sidecar": lambda: api.exec_create(own, ["id"]),
    "list containers": lambda: api.containers(),
    "pull an image": lambda: api.pull("alpine", tag="latest"),
    "leave the swarm": lambda: api.leave_swarm(force=True),
    "a service with the engine's socket": lambda: api.create_service(
        {"ContainerSpec": {"Image": "certbotless-front:local", "Command": ["id"],
                           "Mounts": [{"Type": "bind", "Source": "/var/run/docker.sock",
                                       "Target": "/var/run/docker.sock"}]}},
        name="cbl-proxy-escape"),
}
results = {}
for what, attempt in attempts.items():
    try:
        attempt()
        results[what] = "allowed"
    except docker.errors.APIError as error:
        results[what] = f"{error.status_code} {error.explanation}"
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def edge_with_app(rig_env: dict[str, str], pebble_root: str) -> Iterator[str]:
    """The edge stack and the demo app, served over HTTPS: a whole pass (discovery, order,
    store, `nginx -t` job, roll) went through the proxy. Yields the sidecar's container."""
    remove_stacks([DEMO_STACK, EDGE_STACK])
    purge_managed_objects()
    deploy_edge(rig_env)
    deploy_demo_app()
    try:
        wait_for_https(DEMO_HOST, pebble_root, timeout=240)
        yield sidecar_container()
    finally:
        remove_stacks([DEMO_STACK, EDGE_STACK])


def test_the_sidecar_has_no_socket_only_the_proxy(edge_with_app: str) -> None:
    spec: dict[str, Any] = json.loads(docker("service", "inspect", f"{EDGE_STACK}_certbotless"))[0][
        "Spec"
    ]["TaskTemplate"]["ContainerSpec"]
    assert not spec.get("Mounts"), spec.get("Mounts")
    assert "DOCKER_HOST=tcp://docker-api:2375" in spec["Env"]
    probe = run(["docker", "exec", edge_with_app, "test", "-e", "/var/run/docker.sock"],
                check=False)  # fmt: skip
    assert probe.returncode != 0, "the sidecar still has the engine's socket"


def test_what_would_take_a_manager_over_is_refused(edge_with_app: str) -> None:
    output = docker("exec", edge_with_app, "python3", "-c", ATTEMPTS)
    results: dict[str, str] = json.loads(output.strip().splitlines()[-1])
    for what, result in results.items():
        assert result.startswith("403 the certbotless Docker API proxy refuses "), (what, result)
    assert "POST /v1.41/containers/create" in results["create a privileged container"]
    assert "/exec" in results["exec in the sidecar"]
    assert "a bind mount" in results["a service with the engine's socket"]
    # The engine never saw them.
    assert not docker("ps", "-aq", "--filter", "name=cbl-proxy-escape").split()
    assert not docker("service", "ls", "-q", "--filter", "name=cbl-proxy-escape").split()
    assert docker("info", "--format", "{{.Swarm.LocalNodeState}}").strip() == "active"
    # The proxy's log names each refused call.
    refused = [line for line in service_logs(PROXY_SERVICE).splitlines() if " 403 " in line]
    assert any("/containers/create" in line for line in refused), refused


def refused_calls() -> list[str]:
    """The proxy's log lines of the calls it refused."""
    return [line for line in service_logs(PROXY_SERVICE).splitlines() if " 403 " in line]


def test_every_command_works_through_the_proxy(edge_with_app: str) -> None:
    sidecar = edge_with_app
    refused_before = refused_calls()
    listed = json.loads(docker("exec", sidecar, "certbotless", "list", "--json"))
    assert DEMO_HOST in json.dumps(listed), listed
    assert DEMO_HOST in docker("exec", sidecar, "certbotless", "render")
    for command in (["doctor"], ["renew"], ["gc", "--dry-run"]):
        done = run(["docker", "exec", sidecar, "certbotless", *command], check=False)
        assert done.returncode == 0, f"certbotless {' '.join(command)}:\n{done.stdout}{done.stderr}"
    # Nothing certbotless itself asked for was refused, then or since the stack started.
    assert refused_calls() == refused_before
    assert all("cbl-proxy-escape" in line or "/exec" in line or "/containers/" in line
               or "/images/" in line or "/swarm/" in line or "/services/create" in line
               for line in refused_before), refused_before  # fmt: skip
