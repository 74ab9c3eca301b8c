"""The Docker API proxy (haproxy/docker-api-proxy.cfg) scopes writes by the names certbotless
gives its objects (issue 28): the names in its rules are the code's constants, and the stack
tells it the services and images certbotless writes, so the two cannot drift."""

import json
import re
from collections.abc import Callable

import docker
import requests
import yaml

from certbotless.edge.rollout import CHECK_COMMAND, JOB_COMMANDS, edge_job_template
from certbotless.labels.values import OPERATOR_SECRET_PREFIX, edge_may_mount
from certbotless.model import OBJECT_NAME_PREFIX, FileReference, ObjectKind
from certbotless.swarm.api import JOB_NAME_PREFIX, Json, Swarm
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
    assert f'^\\{{\\s*"Name"\\s*:\\s*"{JOB_NAME_PREFIX}' in acl("body_job_name")
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


# What the stack tells the proxy for a stack named `edge` (stacks/edge.yml's environment).
STACK_ENV = {
    "EDGE_SERVICE": "edge_nginx",
    "SIDECAR_SERVICE": "edge_certbotless",
    "EDGE_IMAGE": "certbotless-nginx:0.2.0",
    "SIDECAR_IMAGE": "certbotless:0.2.0",
    "USER_SECRETS": "site_htpasswd",
    "EDGE_NETWORKS": "certbotless-edge|edge_front",
    "SIDECAR_NETWORKS": "certbotless-edge|edge_docker-api|edge_acme-tls",
}
NETWORKS = [{"Id": "edgenetid0123456789abcdef", "Name": "certbotless-edge"},
            {"Id": "frontnetid0123456789abcde", "Name": "edge_front"},
            {"Id": "apinetid0123456789abcdefg", "Name": "edge_docker-api"},
            {"Id": "shopnetid0123456789abcdef", "Name": "shop_default"}]  # fmt: skip


def _unquote(argument: str, env: dict[str, str]) -> str:
    """One HAProxy argument as HAProxy reads it: 'single quotes' as they are, "double quotes"
    with ${VARIABLES} put in, unquoted text as it is."""
    text, rest = "", argument
    while rest:
        if rest[0] == "'":
            end = rest.index("'", 1)
            text, rest = text + rest[1:end], rest[end + 1 :]
        elif rest[0] == '"':
            end = rest.index('"', 1)
            quoted = re.sub(r"\$\{(\w+)\}", lambda m: env.get(m[1], ""), rest[1:end])
            text, rest = text + quoted, rest[end + 1 :]
        else:
            text, rest = text + rest[0], rest[1:]
    return text


def body_rule(name: str, env: dict[str, str] = STACK_ENV) -> re.Pattern[str]:
    """A `req.body -m reg` acl as Python's re reads the PCRE (\\Q…\\E spelt out)."""
    rule = acl(name)
    assert rule.startswith("req.body -m reg "), rule
    rule = rule.removeprefix("req.body -m reg ")
    flags = re.IGNORECASE if rule.startswith("-i ") else 0
    pattern = _unquote(rule.removeprefix("-i "), env)
    pattern = re.sub(r"\\Q(.*?)\\E", lambda m: re.escape(m[1]), pattern)
    return re.compile(pattern, flags)


def refusals(call: str, body: str) -> list[str]:
    """The body rules that refuse `body` on `call` (service_create, edge_update or
    sidecar_update), as the proxy's `set-var(txn.refusal)` lines apply them."""
    rules = {
        "body_foreign_secret": ("service_create", "edge_update", "sidecar_update"),
        "body_not_edge_image": ("service_create", "edge_update"),
        "body_not_sidecar_image": ("sidecar_update",),
        "body_not_edge_network": ("service_create", "edge_update"),
        "body_not_sidecar_network": ("sidecar_update",),
        "body_mounts": ("service_create", "edge_update", "sidecar_update"),
        "body_later_name": ("service_create",),
        "body_preload": ("service_create", "edge_update", "sidecar_update"),
        "body_not_nginx_check": ("service_create",),
    }
    refused = [name for name, calls in rules.items()
               if call in calls and body_rule(name).search(body)]  # fmt: skip
    if call == "service_create" and not body_rule("body_job_name").search(body):
        refused.append("body_job_name")
    for name, calls in rules.items():  # every rule above is applied so in the proxy
        for call_acl in calls:
            assert re.search(rf"if .*\b{call_acl}\b (spec_write )?{name}\b|if spec_write {name}",
                             CONFIG), (name, call_acl)  # fmt: skip
    return refused


def _sent(call: Callable[[Swarm], object]) -> str:
    """The body docker-py sends for a Swarm call (its POST caught before the network)."""
    client = docker.APIClient(base_url="tcp://127.0.0.1:9", version="1.41")
    bodies: list[str] = []

    def post(url: str, data: str = "", **_: object) -> requests.Response:
        bodies.append(data)
        answer = requests.Response()
        answer.status_code, answer._content = 200, b'{"ID": "newid"}'
        return answer

    client._post = post
    client.networks = lambda *a, **k: NETWORKS
    client.tasks = lambda *a, **k: []
    client.service_logs = lambda *a, **k: iter([])
    client.remove_service = lambda *a, **k: None
    call(Swarm(client, owner="edge_certbotless"))
    [body] = bodies
    return body


def _service(name: str, image: str, networks: list[str]) -> Json:
    """A service as the engine's inspect gives it: networks by ID."""
    ids = {n["Name"]: n["Id"] for n in NETWORKS}
    return {"ID": name + "-id", "Version": {"Index": 7}, "Spec": {
        "Name": name, "Labels": {"com.docker.stack.namespace": "edge"},
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": image + "@sha256:" + "0" * 64, "Args": ["nginx", "-g", "daemon off;"],
                "Ulimits": [{"Name": "nofile", "Hard": 65536, "Soft": 65536}],
                "Secrets": [{"File": {"Name": "/run/secrets/site_htpasswd", "UID": "0",
                                      "GID": "0", "Mode": 256},
                             "SecretID": "sid", "SecretName": "site_htpasswd"}]},
            "Networks": [{"Target": ids[n], "Aliases": [name]} for n in networks]},
        "Mode": {"Global": {}}}}  # fmt: skip


EDGE = _service("edge_nginx", "certbotless-nginx:0.2.0", ["certbotless-edge", "edge_front"])
SIDECAR = _service("edge_certbotless", "certbotless:0.2.0", ["certbotless-edge", "edge_docker-api"])
KEY = FileReference(ObjectKind.SECRET, "keyid", "cbl-shop-1", "/etc/nginx/certs/shop.key", 0o400)


def test_certbotlesss_own_spec_writes_pass_every_body_rule() -> None:
    for command in JOB_COMMANDS:
        job = _sent(
            lambda s, c=command: s.run_job(  # type: ignore[misc]
                "nginx-check-0a1b2c3d", edge_job_template(EDGE, c, [KEY]), timeout=0
            )
        )
        assert job.startswith('{"Name": "cbl-job-nginx-check-0a1b2c3d", ')
        assert refusals("service_create", job) == [], job
    update = _sent(lambda s: s.update_service(EDGE, EDGE["Spec"]))
    assert '"Target": "certbotless-edge"' in update and '"Target": "edge_front"' in update
    assert refusals("edge_update", update) == [], update
    own = _sent(lambda s: s.update_service(SIDECAR, SIDECAR["Spec"]))
    assert refusals("sidecar_update", own) == [], own


def _with(service: Json, **container: object) -> Json:
    """The service's spec as certbotless sends it (networks by name), `container` changed."""
    spec: Json = json.loads(json.dumps(service["Spec"]))
    spec["TaskTemplate"]["ContainerSpec"].update(container)
    names = {n["Id"]: n["Name"] for n in NETWORKS}
    for network in spec["TaskTemplate"]["Networks"]:
        network["Target"] = names[network["Target"]]
    return spec


def test_another_stacks_network_is_refused_by_name_or_id() -> None:
    """Gap 1 of issue 28: the edge, a job or the sidecar attached to another stack's network
    reaches its services."""
    for target in ("shop_default", "shopnetid0123456789abcdef", "edge_front2", "certbotless"):
        attached = [{"Target": "certbotless-edge"}, {"Target": target}]
        job = json.dumps({"Name": "cbl-job-x", "TaskTemplate": {
            "ContainerSpec": {"Image": "certbotless-nginx:0.2.0", "Command": ["nginx", "-t"]},
            "Networks": attached}})  # fmt: skip
        assert refusals("service_create", job) == ["body_not_edge_network"], target
        edge = {**EDGE["Spec"], "TaskTemplate": {**EDGE["Spec"]["TaskTemplate"],
                                                 "Networks": attached}}  # fmt: skip
        assert "body_not_edge_network" in refusals("edge_update", json.dumps(edge))
    # The sidecar's networks are its own, not the edge's: not the front's.
    front = {
        **SIDECAR["Spec"],
        "TaskTemplate": {**SIDECAR["Spec"]["TaskTemplate"], "Networks": [{"Target": "edge_front"}]},
    }
    assert refusals("sidecar_update", json.dumps(front)) == ["body_not_sidecar_network"]
    # The spec as the engine gives it (by ID) is refused: certbotless names them.
    assert "body_not_edge_network" in refusals("edge_update", json.dumps(EDGE["Spec"]))


def test_mounts_of_any_kind_are_refused() -> None:
    """Gap 1 of issue 28: another stack's named volume (its data on that node), or a tmpfs."""
    for mounts in ([{"Type": "volume", "Source": "shop_db", "Target": "/x"}],
                   [{"Type": "tmpfs", "Target": "/x", "TmpfsOptions": {"SizeBytes": 1 << 40}}],
                   [{"Type": "cluster", "Source": "shop_csi", "Target": "/x"}]):  # fmt: skip
        for call, service in (("edge_update", EDGE), ("sidecar_update", SIDECAR)):
            body = json.dumps(_with(service, Mounts=mounts))
            assert "body_mounts" in refusals(call, body), (call, mounts)
        body = json.dumps(_with(EDGE, mounts=mounts))  # Go reads keys in any case
        assert "body_mounts" in refusals("edge_update", body)
    none: list[Json] | None
    for none in ([], None):
        assert "body_mounts" not in refusals("edge_update", json.dumps(_with(EDGE, Mounts=none)))


def test_a_jobs_name_is_the_first_key_and_the_only_one() -> None:
    """Gap 2 of issue 28: Go's decoder takes the last `name` key, in any case; a name in a
    label's value or another object is not the service's."""
    container = {"Image": "certbotless-nginx:0.2.0", "Command": ["nginx", "-t"]}
    template = {"ContainerSpec": container}
    hostile = [
        {"Name": "cbl-job-x", "TaskTemplate": template, "Name2": 1, "name": "shop_db"},
        {"Name": "cbl-job-x", "TaskTemplate": template, "NAME": "shop_db"},
        {"Labels": {"Name": "cbl-job-x"}, "Name": "shop_db", "TaskTemplate": template},
        {"Labels": {"a": '"Name": "cbl-job-x"'}, "Name": "shop_db", "TaskTemplate": template},
        {"TaskTemplate": template, "Name": "cbl-job-x"},  # not first: not as docker-py sends
    ]
    for spec in hostile:
        assert refusals("service_create", json.dumps(spec)), spec
    # The first key is the name itself (with JSON's whitespace), and nothing after it is one.
    assert refusals("service_create", '{"Name": "cbl-job-x", "name": "shop"}') == [
        "body_later_name"]  # fmt: skip
    assert refusals("service_create", '{"Name":"cbl-job-x"}') == []
    assert refusals("service_create", '{"Name": "cbl-job-x2 ", "Labels": {}}') == [
        "body_job_name"]  # fmt: skip


def test_an_update_keeps_certbotlesss_image_and_secrets() -> None:
    """Gap 3 of issue 28: an update of the edge or the sidecar to another image, or mounting
    a secret neither certbotless's nor allowed."""
    for image in ("alpine", "certbotless-nginx:0.2.0.evil.example/x", "certbotless:0.2.0"):
        body = json.dumps(_with(EDGE, Image=image))
        assert "body_not_edge_image" in refusals("edge_update", body), image
    for image in ("alpine", "certbotless-nginx:0.2.0", "certbotless:0.2.0-evil"):
        body = json.dumps(_with(SIDECAR, Image=image))
        assert "body_not_sidecar_image" in refusals("sidecar_update", body), image
    foreign = [{"File": {"Name": "/x", "UID": "0", "GID": "0", "Mode": 256}, "SecretID": "s",
                "SecretName": "shop_db_password"}]  # fmt: skip
    for call, service in (("edge_update", EDGE), ("sidecar_update", SIDECAR)):
        body = json.dumps(_with(service, Secrets=foreign))
        assert refusals(call, body) == ["body_foreign_secret"], call
        allowed = [
            {**foreign[0], "SecretName": name}
            for name in ("cbl-shop-1", "certbotless-status-htpasswd", "site_htpasswd")
        ]
        assert refusals(call, json.dumps(_with(service, Secrets=allowed))) == [], call


def _network_names(service: str) -> list[str]:
    """The names a service of stacks/edge.yml's networks have in a stack named `edge`."""
    declared, attached = EDGE_STACK["networks"], EDGE_STACK["services"][service]["networks"]
    return [declared[n].get("name") or f"edge_{n}" for n in attached]


def test_the_stack_tells_the_proxy_its_services_networks() -> None:
    env = EDGE_STACK["services"]["docker-api"]["environment"]
    namespace = '{{index .Service.Labels "com.docker.stack.namespace"}}'
    for variable, service in (("EDGE_NETWORKS", "nginx"), ("SIDECAR_NETWORKS", "certbotless")):
        assert env[variable].replace(namespace, "edge").split("|") == _network_names(service)
        assert env[variable].replace(namespace, "edge") == STACK_ENV[variable]
