"""The seeds' stacks with their Traefik labels as written (stacks/seed-traefik.yml), served by
certbotless's nginx edge over HTTPS with the behaviour the native-label seed stacks show
(issue 15, item 1)."""

import base64
import json
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

STACK = "traefik-seeds"
API = "tapi.example.test"
SITE = "tsite.example.test"
NLP = "tnlp.example.test"
DASH = "tdash.example.test"
MB = 1_000_000


def basic(user_password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(user_password.encode()).decode()}


@pytest.fixture(scope="module")
def seeds(
    rig_env: Mapping[str, str], pebble_root: str, figure: Callable[[str], None]
) -> Iterator[str]:
    remove_stacks([STACK, *SEED_STACKS, DEMO_STACK, EDGE_STACK])
    deploy_edge(rig_env)  # CERTBOTLESS_LABEL_DIALECTS defaults to certbotless,traefik
    started = time.monotonic()
    deploy_stack(STACK, ["seed-traefik.yml"], {})
    try:
        # The dashboard is behind basic auth: it answers 200 only with the password.
        answers = [
            wait_for_https(host, pebble_root, timeout=300, path=path, headers=headers)
            for host, path, headers in (
                (NLP, "/", None), (API, "/service1", None), (SITE, "/", None),
                (DASH, "/", basic("ops:secret")),
            )
        ]  # fmt: skip
        figure(
            f"seed stacks with Traefik labels (8 services, 4 hosts) deployed → HTTPS answering: "
            f"{max(a.answering_since for a in answers) - started:.1f} s"
        )
        yield pebble_root
    except TimeoutError:
        print(sidecar_logs(200))
        raise
    finally:
        remove_stacks([STACK, EDGE_STACK])


def test_seed_000_routes_by_host_and_path_to_every_replica(seeds: str) -> None:
    tasks: set[str] = set()
    deadline = time.monotonic() + 60
    while len(tasks) < 3 and time.monotonic() < deadline:
        reply = json.loads(https_get(API, seeds, "/service1/predict").body)
        assert (reply["app"], reply["path"]) == ("flask-api", "/service1/predict")
        tasks.add(reply["task"])
        time.sleep(0.1)
    assert len(tasks) == 3
    assert https_get(API, seeds, "/").status == 404


def test_seed_003_websecure_router_is_served(seeds: str) -> None:
    assert "mysite" in https_get(SITE, seeds, "/").body


def test_seed_001_upload_limit_error_pages_and_forward_auth(seeds: str) -> None:
    big = https_get(NLP, seeds, "/backoffice/upload", method="POST", body=b"x" * 19 * MB)
    assert big.status == 200
    too_big = https_get(NLP, seeds, "/backoffice/upload", method="POST", body=b"x" * 21 * MB)
    assert too_big.status == 413
    missing = https_get(NLP, seeds, "/no/such/page")
    assert missing.status == 404 and "custom error page 404" in missing.body
    path = "/en_core_web_sm/ner"
    assert https_get(NLP, seeds, path).status == 401
    granted = https_get(NLP, seeds, path, headers={"Authorization": "Bearer let-me-in"})
    assert granted.status == 200 and json.loads(granted.body)["app"] == "en_core_web_sm"


def test_basic_auth_rate_limit_and_allowlist(seeds: str) -> None:
    assert https_get(DASH, seeds, "/").status == 401
    assert https_get(DASH, seeds, "/", headers=basic("ops:wrong")).status == 401
    assert https_get(DASH, seeds, "/", headers=basic("ops:secret")).status == 200
    # 1 a minute, a burst of 5 (Traefik's bucket holds 5): the 6th within the minute is refused.
    statuses = [https_get(DASH, seeds, "/slow/x").status for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    # 192.0.2.0/24 only: the rig's clients are refused.
    assert https_get(DASH, seeds, "/internal/x").status == 403
