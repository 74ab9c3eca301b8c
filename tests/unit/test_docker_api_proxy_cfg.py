"""The Docker API proxy (haproxy/docker-api-proxy.cfg) scopes writes by the names certbotless
gives its objects (issue 28): the names in its rules are the code's constants, and the stack
tells it the services and images certbotless writes, so the two cannot drift."""

import json
import re

import yaml

from certbotless.edge.rollout import CHECK_COMMAND, JOB_COMMANDS
from certbotless.labels.values import OPERATOR_SECRET_PREFIX, edge_may_mount
from certbotless.model import OBJECT_NAME_PREFIX
from certbotless.swarm.api import JOB_NAME_PREFIX
from certbotless.swarm.store import ACCOUNT_KEY_SECRET, STACK_FILE_NAME, TICKET_KEY_PREFIX
from tests.support.paths import REPO

CONFIG = (REPO / "haproxy" / "docker-api-proxy.cfg").read_text()
EDGE_STACK = yaml.safe_load((REPO / "stacks" / "edge.yml").read_text())


def acl(name: str) -> str:
    """What follows the name on one `acl` line of the proxy (the fetch and the pattern)."""
    [line] = [line for line in CONFIG.splitlines() if line.strip().startswith(f"acl {name} ")]
    return line.strip().removeprefix(f"acl {name} ")


def test_the_proxys_names_are_the_codes() -> None:
    path = r"^(/v[0-9]+\.[0-9]+)?"
    # Written into the patterns as they are: nothing in them a regular expression reads apart.
    assert re.fullmatch("[a-z-]+", JOB_NAME_PREFIX) and re.fullmatch("[a-z-]+", OBJECT_NAME_PREFIX)
    assert acl("a_job") == f"path_reg {path}/services/{JOB_NAME_PREFIX}[A-Za-z0-9_.-]*$"
    own = f"path_reg {path}/(secrets|configs)/{OBJECT_NAME_PREFIX}[A-Za-z0-9_.-]*"
    assert acl("own_object") == own + "$"
    assert acl("own_object_update") == own + "/update$"
    assert acl("stack_file") == f"path_reg {path}/(secrets|configs)/{STACK_FILE_NAME.pattern}$"
    assert f'"Name"\\s*:\\s*"{JOB_NAME_PREFIX}' in acl("body_job_name")
    assert f'(?!{OBJECT_NAME_PREFIX}[A-Za-z0-9_.-]*")' in acl("body_foreign_object_name")
    assert f"(?:{OBJECT_NAME_PREFIX}|certbotless-)" in acl("body_foreign_secret")


def test_certbotlesss_own_names_carry_the_prefix() -> None:
    assert JOB_NAME_PREFIX.startswith(OBJECT_NAME_PREFIX)
    for name in (ACCOUNT_KEY_SECRET, TICKET_KEY_PREFIX):
        assert name.startswith(OBJECT_NAME_PREFIX), name


def test_the_stack_tells_the_proxy_its_services_and_images() -> None:
    services = EDGE_STACK["services"]
    env = services["docker-api"]["environment"]
    namespace = '{{index .Service.Labels "com.docker.stack.namespace"}}'
    assert env["EDGE_SERVICE"] == f"{namespace}_nginx" and "nginx" in services
    assert env["SIDECAR_SERVICE"] == f"{namespace}_certbotless" and "certbotless" in services
    assert env["EDGE_IMAGE"] == services["nginx"]["image"]
    assert env["SIDECAR_IMAGE"] == services["certbotless"]["image"]
    sidecar_env = services["certbotless"]["environment"]
    assert env["USER_SECRETS"] == sidecar_env["CERTBOTLESS_USER_SECRETS"]
    for variable in ("EDGE_SERVICE", "SIDECAR_SERVICE", "EDGE_IMAGE", "SIDECAR_IMAGE",
                     "USER_SECRETS"):  # fmt: skip
        assert "${" + variable + "}" in CONFIG, variable
    # The rig's overrides of the images override what the proxy allows as well.
    rig = yaml.safe_load((REPO / "stacks" / "test-pebble.yml").read_text())["services"]
    assert rig["docker-api"]["environment"]["EDGE_IMAGE"] == rig["nginx"]["image"]
    assert rig["docker-api"]["environment"]["SIDECAR_IMAGE"] == rig["certbotless"]["image"]
    assert (rig["docker-api"]["environment"]["USER_SECRETS"]
            == rig["certbotless"]["environment"]["CERTBOTLESS_USER_SECRETS"])  # fmt: skip


def test_the_secrets_a_label_may_name_are_those_the_proxy_lets_the_edge_mount() -> None:
    pattern = re.compile("site_htpasswd|shop_htpasswd_[0-9a-f]{8}")
    mountable = ["cbl-shop-1", "certbotless-status-htpasswd", "site_htpasswd",
                 "shop_htpasswd_0a1b2c3d"]  # fmt: skip
    refused = ["shop_db_password", "site_htpasswd2", "xcbl-a", "shop_htpasswd_0a1b2c3dx"]
    assert [s for s in mountable + refused if edge_may_mount(s, pattern)] == mountable
    assert not [s for s in refused if edge_may_mount(s, None)]
    assert f"(?:{OBJECT_NAME_PREFIX}|{OPERATOR_SECRET_PREFIX})" in acl("body_foreign_secret")


def test_jobs_may_run_certbotlesss_commands_and_no_other() -> None:
    """The job command rule reads as the code's commands: each of JOB_COMMANDS, as docker-py
    sends it in a spec, passes; anything else is refused."""
    rule = acl("body_not_nginx_check")
    assert rule.startswith("req.body -m reg '") and rule.endswith("'")
    refuses = re.compile(rule.removeprefix("req.body -m reg '").removesuffix("'"))

    def spec(command: list[str]) -> str:
        return json.dumps({"TaskTemplate": {"ContainerSpec": {"Image": "x", "Command": command}}})

    for command in JOB_COMMANDS:
        assert not refuses.search(spec(command)), command
    for hostile in (["sh", "-c", "id"], ["nginx", "-t", "-c", "/run/secrets/shop_db"],
                    ["nginx", "-g", "daemon off;"], [*CHECK_COMMAND, "-p", "/"]):  # fmt: skip
        assert refuses.search(spec(hostile)), hostile
