"""The whole loop on a real swarm.

Label → Pebble certificate → secret/config → nginx rolled → HTTPS.
"""

import json
import time
from collections.abc import Callable, Iterator, Mapping

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
    sidecar_logs,
    stored_chain_labels,
    wait_for_https,
)

pytestmark = pytest.mark.rig


@pytest.fixture(scope="module")
def edge(rig_env: Mapping[str, str]) -> Iterator[None]:
    remove_stacks([DEMO_STACK, EDGE_STACK])
    purge_managed_objects()
    deploy_edge(rig_env)
    yield
    remove_stacks([DEMO_STACK, EDGE_STACK])


def test_labelled_app_gets_https_with_the_stored_certificate(
    edge: None, pebble_root: str, figure: Callable[[str], None]
) -> None:
    started = time.monotonic()
    deploy_demo_app()
    try:
        answer = wait_for_https(DEMO_HOST, pebble_root, timeout=240)
    except TimeoutError:
        print(sidecar_logs())
        raise
    figure(f"labelled app deployed → HTTPS answering: {time.monotonic() - started:.1f} s")

    assert json.loads(answer.body)["host"] == DEMO_HOST
    assert json.loads(answer.body)["forwarded_proto"] == "https"
    stored = [
        labels for labels in stored_chain_labels() if labels["certbotless.cert.name"] == DEMO_HOST
    ]
    assert len(stored) == 1, stored
    assert stored[0]["certbotless.cert.serial"] == answer.serial


def test_plain_http_redirects_with_308(edge: None, pebble_root: str) -> None:
    wait_for_https(DEMO_HOST, pebble_root, timeout=240)
    status = docker(
        "run",
        "--rm",
        "--network",
        "host",
        "certbotless-test-base",
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{redirect_url}",
        "-H",
        f"Host: {DEMO_HOST}",
        "http://127.0.0.1/some/path",
    )
    assert status == f"308 https://{DEMO_HOST}/some/path"
