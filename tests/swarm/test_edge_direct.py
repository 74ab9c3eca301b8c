"""The documented way without the L4 front (stacks/edge-direct.yml): nginx publishes 80/443
itself, speaks no PROXY protocol, and still gets its certificates and serves them."""

import json
from collections.abc import Iterator, Mapping

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
    sidecar_container,
    sidecar_logs,
    wait_for_https,
)

pytestmark = pytest.mark.rig


@pytest.fixture(scope="module")
def direct_edge(rig_env: Mapping[str, str]) -> Iterator[None]:
    remove_stacks([DEMO_STACK, EDGE_STACK])
    purge_managed_objects()
    deploy_edge(rig_env, direct=True)
    yield
    remove_stacks([DEMO_STACK, EDGE_STACK])


def test_without_the_front_nginx_publishes_its_ports_and_serves_https(
    direct_edge: None, pebble_root: str
) -> None:
    deploy_demo_app()
    try:
        answer = wait_for_https(DEMO_HOST, pebble_root, timeout=240)
    except TimeoutError:
        print(sidecar_logs())
        raise
    assert json.loads(answer.body)["host"] == DEMO_HOST
    assert docker("service", "ps", "-q", f"{EDGE_STACK}_front").strip() == "", "no front task"
    nginx = json.loads(docker("service", "inspect", f"{EDGE_STACK}_nginx"))[0]
    published = {p["PublishedPort"] for p in nginx["Spec"]["EndpointSpec"]["Ports"]}
    assert published == {80, 443}
    assert nginx["Spec"]["UpdateConfig"]["Order"] == "stop-first"
    # The configuration it was rolled to takes no PROXY protocol header.
    rendered = docker("exec", sidecar_container(), "certbotless", "render")
    assert "proxy_protocol" not in rendered and f"server_name {DEMO_HOST};" in rendered
