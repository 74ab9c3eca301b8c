"""The README's demo: edge + labelled app on the rig's swarm, ending with verified HTTPS."""

from __future__ import annotations

import sys
import time

from rig.pebble import current_pebble
from rig.stacks import (
    DEMO_HOST,
    DEMO_STACK,
    EDGE_STACK,
    deploy_demo_app,
    deploy_edge,
    purge_managed_objects,
    remove_stacks,
    sidecar_logs,
    wait_for_https,
)
from rig.state import STATE_DIR, read_env


def say(message: str) -> None:
    print(f"demo: {message}", flush=True)


def main() -> int:
    started = time.monotonic()
    rig_env = read_env()
    root = STATE_DIR / "pebble-root.pem"
    root.write_text(current_pebble(rig_env).root_pem())
    say("clearing the previous demo (stacks and the certificates of an earlier Pebble)")
    remove_stacks([DEMO_STACK, EDGE_STACK])
    purge_managed_objects()
    say(f"deploying the edge stack {EDGE_STACK} (nginx + certbotless)")
    deploy_edge(rig_env)
    say(f"deploying the labelled app (stack {DEMO_STACK}, certbotless.domains={DEMO_HOST})")
    app_deployed = time.monotonic()
    deploy_demo_app()
    try:
        answer = wait_for_https(DEMO_HOST, str(root), timeout=240, say=say, every=10)
    except TimeoutError as error:
        say(str(error))
        print(sidecar_logs(), file=sys.stderr)
        return 1
    https_after = answer.answering_since - app_deployed
    say(f"https://{DEMO_HOST}/ answered, verified against Pebble's root ({root}):")
    print(answer.body.rstrip())
    print(answer.describe())
    total = time.monotonic() - started
    say(f"app deployed → HTTPS in {https_after:.1f} s; whole demo {total:.1f} s")
    say(f"try it: curl --cacert {root} --resolve {DEMO_HOST}:443:127.0.0.1 https://{DEMO_HOST}/")
    say(f"remove it: docker stack rm {DEMO_STACK} {EDGE_STACK}")
    return 0
