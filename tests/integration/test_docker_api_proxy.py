"""The sidecar's Docker API proxy (haproxy/docker-api-proxy.cfg), run by a real HAProxy on
loopback in front of a stand-in engine on a unix socket: every call certbotless's Swarm class
makes reaches the engine through it, and everything else is refused with a 403 that names the
call, without the engine ever seeing it."""

import http.client
import json
import os
import shutil
import socket
import socketserver
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.errors import APIError

from certbotless.edge.rollout import edge_job_template
from certbotless.model import FileReference, ObjectKind
from certbotless.swarm.api import Swarm
from tests.conftest import IN_CI
from tests.support.paths import REPO
from tests.support.ports import unused_port

PROXY_CONFIG = REPO / "haproxy" / "docker-api-proxy.cfg"
# What stacks/edge.yml tells the proxy (a stack named `edge`, an operator's htpasswd secret).
PROXY_ENV = {
    "EDGE_SERVICE": "edge_nginx",
    "SIDECAR_SERVICE": "edge_certbotless",
    "EDGE_IMAGE": "certbotless-nginx:latest",
    "SIDECAR_IMAGE": "certbotless:0.2.0",
    "USER_SECRETS": "site_htpasswd|shop_htpasswd_[0-9a-f]{8}",
    "EDGE_NETWORKS": "certbotless-edge|edge_front",
    "SIDECAR_NETWORKS": "certbotless-edge|edge_docker-api|edge_acme-tls",
}
# The networks the engine lists: the edge's, by the ID its spec gives, and another stack's.
NETWORKS = [{"Id": "netid0123456789abcdefghij", "Name": "certbotless-edge"},
            {"Id": "shopnetid0123456789abcdef", "Name": "shop_default"}]  # fmt: skip

# The edge's service as the engine returns it: what certbotless's updates and jobs start from.
EDGE_SERVICE: dict[str, Any] = {
    "ID": "edgeserviceid0123456789abc",
    "Version": {"Index": 42},
    "Spec": {
        "Name": "edge_nginx",
        "Labels": {"certbotless.edge": "true", "com.docker.stack.namespace": "edge"},
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "certbotless-nginx:latest@sha256:" + "0" * 64,
                "Args": ["nginx", "-g", "daemon off;"],
                "Env": ["NOTE=café"],
                "StopSignal": "SIGQUIT",
                "Ulimits": [{"Name": "nofile", "Hard": 65536, "Soft": 65536}],
                "Configs": [
                    {
                        "File": {
                            "Name": "/etc/nginx/nginx.conf",
                            "UID": "0",
                            "GID": "0",
                            "Mode": 292,
                        },
                        "ConfigID": "confid0123456789abcdefghi",
                        "ConfigName": "cbl-nginx-0123abcd",
                    }
                ],
                "Secrets": [],
            },
            "Placement": {"Constraints": ["node.role == manager"]},
            "Networks": [{"Target": "netid0123456789abcdefghij", "Aliases": ["nginx"]}],
            "ForceUpdate": 0,
        },
        "Mode": {"Global": {}},
        "UpdateConfig": {"Parallelism": 1, "Order": "start-first", "FailureAction": "rollback"},
        "EndpointSpec": {"Mode": "dnsrr"},
    },
}
OBJECT = {
    "ID": "objid0123456789abcdefghijk",
    "Version": {"Index": 7},
    "Spec": {"Name": "cbl-status", "Labels": {"certbotless.kind": "status"}, "Data": "eA=="},
}


@dataclass
class StandInEngine:
    """Answers like dockerd, well enough for docker-py, and records every call it gets."""

    socket_path: Path
    calls: list[tuple[str, str]] = field(default_factory=list)

    def answer(self, method: str, path: str) -> Any:
        self.calls.append((method, path))
        route = path.split("?")[0]
        if route.endswith("/version"):
            return {"ApiVersion": "1.41", "Version": "20.10.24", "MinAPIVersion": "1.12"}
        if route.endswith("/_ping"):
            return "OK"
        if route.endswith(("/services/create", "/configs/create", "/secrets/create")):
            return {"ID": "createdid0123456789abcdef"}
        if route.endswith("/networks"):
            return NETWORKS
        if route.endswith(("/services", "/tasks", "/secrets", "/configs", "/nodes")):
            return []
        if route.endswith(("/events", "/logs")):
            return ""
        if "/services/" in route:
            return EDGE_SERVICE
        if route.endswith("/json"):
            return {"Config": {"Labels": {"com.docker.swarm.service.name": "edge_certbotless"}}}
        if route.endswith("/info"):
            return {"ServerVersion": "20.10.24", "Swarm": {"ControlAvailable": True}}
        return OBJECT


def _handler(engine: StandInEngine) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def handle_one(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            answer = engine.answer(self.command, self.path)
            body = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_POST = do_DELETE = do_HEAD = handle_one

        def address_string(self) -> str:  # a unix socket has no client address
            return "engine"

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class UnixHttpServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@dataclass(frozen=True)
class Proxy:
    port: int
    engine: StandInEngine

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, body=body or None, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.read().decode(errors="replace")
        finally:
            connection.close()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    if shutil.which("haproxy") is None:
        if IN_CI:
            pytest.fail("haproxy is not installed (apt-get install haproxy)")
        pytest.skip("haproxy is not installed")
    work = tmp_path_factory.mktemp("docker-api-proxy")
    engine = StandInEngine(work / "docker.sock")
    server = UnixHttpServer(str(engine.socket_path), _handler(engine))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = unused_port()
    config = PROXY_CONFIG.read_text()
    assert "    bind :2375\n" in config and "server docker /var/run/docker.sock\n" in config
    config = config.replace("    bind :2375\n", f"    bind 127.0.0.1:{port}\n").replace(
        "server docker /var/run/docker.sock\n", f"server docker {engine.socket_path}\n"
    )
    (work / "haproxy.cfg").write_text(config)
    haproxy = subprocess.Popen(
        ["haproxy", "-db", "-f", str(work / "haproxy.cfg")],
        env={**os.environ, **PROXY_ENV},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError as refused:
            if haproxy.poll() is not None or time.monotonic() > deadline:
                haproxy.kill()
                error = haproxy.communicate()[1]
                raise RuntimeError(f"haproxy did not start: {error!r}") from refused
            time.sleep(0.05)
    try:
        yield Proxy(port, engine)
    finally:
        haproxy.terminate()
        haproxy.wait(timeout=10)
        server.shutdown()
        server.server_close()


def _every_swarm_call() -> dict[str, Callable[[Swarm], object]]:
    """One call of each public method of Swarm, with the arguments certbotless passes."""
    ref = FileReference(ObjectKind.SECRET, "secretid0123456789abcdefg", "cbl-a-1", "/k.pem", 0o400)
    return {
        "services": lambda s: s.services(),
        "inspect_service": lambda s: s.inspect_service("edge_nginx"),
        "update_service": lambda s: s.update_service(EDGE_SERVICE, EDGE_SERVICE["Spec"]),
        "run_job": lambda s: s.run_job(
            "nginx-check-0a1b2c3d",
            edge_job_template(EDGE_SERVICE, ["nginx", "-t"], [ref]),
            timeout=0,
        ),
        "remove_orphaned_jobs": lambda s: s.remove_orphaned_jobs(),
        "own_service_name": lambda s: s.own_service_name(),
        "tasks": lambda s: s.tasks("edgeserviceid0123456789abc"),
        "without_running_task": lambda s: s.without_running_task(["a"]),
        "service_events": lambda s: list(s.service_events(since=time.time())),
        "configs": lambda s: s.configs("certbotless.kind=chain"),
        "secrets": lambda s: s.secrets("certbotless.kind=key"),
        "secret_names": lambda s: s.secret_names(),
        "secret_ids": lambda s: s.secret_ids(["site_htpasswd"]),
        "engine_info": lambda s: s.engine_info(),
        "config_data": lambda s: s.config_data("objid0123456789abcdefghijk"),
        "create_config": lambda s: s.create_config("cbl-a-1", b"chain", {"certbotless.x": "1"}),
        "create_secret": lambda s: s.create_secret("cbl-a-1", b"key", {"certbotless.x": "1"}),
        "inspect_config_labels": lambda s: s.inspect_config_labels("objid0123456789abcdefghijk"),
        "update_config_labels": lambda s: s.update_config_labels(
            "objid0123456789abcdefghijk", {"certbotless.status.a": '{"reason": "é"}'}
        ),
        "inspect_object": lambda s: s.inspect_object(ObjectKind.SECRET, OBJECT["ID"]),
        "update_object_labels": lambda s: s.update_object_labels(
            ObjectKind.SECRET, OBJECT, {"certbotless.mac": "0"}
        ),
        "remove_config": lambda s: s.remove_config("cbl-a-1"),
        "remove_secret": lambda s: s.remove_secret("certbotless_front_haproxy_cfg_0123abcd"),
        "referenced_object_ids": lambda s: s.referenced_object_ids(),
        "mounted_object_ids": lambda s: s.mounted_object_ids("edge_nginx"),
    }


def test_every_call_certbotless_makes_passes_the_proxy(
    proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As in the stack: DOCKER_HOST names the proxy, and the client negotiates its version.
    monkeypatch.setenv("DOCKER_HOST", proxy.url)
    swarm = Swarm(owner="edge_certbotless")
    public = {name for name in vars(Swarm) if not name.startswith("_")}
    calls = _every_swarm_call()
    assert public == set(calls), "a new Swarm method needs a case here (and maybe a proxy rule)"
    for name, call in calls.items():
        before = len(proxy.engine.calls)
        try:
            call(swarm)
        except APIError as error:
            pytest.fail(f"Swarm.{name} was refused by the proxy: {error}")
        assert len(proxy.engine.calls) > before, f"Swarm.{name} never reached the engine"
    assert ("GET", "/version") in proxy.engine.calls  # the version negotiation


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1.41/containers/create"),
        ("POST", "/containers/create"),
        ("POST", "/v1.41/containers/abc123/exec"),
        ("POST", "/v1.41/exec/abc123/start"),
        ("POST", "/v1.41/containers/abc123/attach"),
        ("GET", "/v1.41/containers/abc123/archive"),
        ("DELETE", "/v1.41/containers/abc123"),
        ("GET", "/v1.41/containers/json"),
        ("POST", "/v1.41/images/create"),
        ("GET", "/v1.41/images/json"),
        ("POST", "/v1.41/volumes/create"),
        ("POST", "/v1.41/build"),
        ("POST", "/v1.41/swarm/join"),
        ("POST", "/v1.41/swarm/leave"),
        ("GET", "/v1.41/swarm/unlockkey"),
        ("GET", "/v1.41/swarm"),
        ("POST", "/v1.41/nodes/node1/update"),
        ("DELETE", "/v1.41/nodes/node1"),
        ("GET", "/v1.41/plugins"),
        ("POST", "/v1.41/plugins/pull"),
        ("POST", "/v1.41/networks/create"),
        ("GET", "/v1.41/secrets/../containers/json"),
        # Paths the engine would decode and clean into another call.
        ("DELETE", "/v1.41/services/x%2F..%2F..%2Fcontainers%2Fvictim"),
        ("POST", "/v1.41/configs/..%2Fnodes%2Fnode1/update"),
        ("POST", "/v1.41/services/../nodes/node1/update"),
        ("GET", "//v1.41/containers/abc123/json/../archive"),
    ],
)
def test_every_other_call_is_refused_naming_it(proxy: Proxy, method: str, path: str) -> None:
    before = len(proxy.engine.calls)
    status, body = proxy.request(method, path, b"{}" if method == "POST" else b"")
    assert status == 403, body
    message = json.loads(body)["message"]
    assert message.startswith(f"the certbotless Docker API proxy refuses {method} {path}: ")
    assert len(proxy.engine.calls) == before, "the engine saw a refused call"


@pytest.mark.parametrize(
    ("addition", "refusal"),
    [
        ({"Mounts": [{"Type": "bind", "Source": "/", "Target": "/host"}]}, "a bind mount"),
        ({"Mounts": [{"type": "bind", "source": "/var/run/docker.sock", "target": "/s"}]},
         "a bind mount"),
        ({"Mounts": [{"Type": "volume", "Source": "root", "Target": "/host", "VolumeOptions": {
            "DriverConfig": {"Name": "local",
                             "Options": {"type": "none", "o": "bind", "device": "/"}}}}]},
         "a volume device option"),
        ({"CapabilityAdd": ["CAP_SYS_ADMIN"]}, "added capabilities"),
        ({"Privileges": {"Seccomp": {"Mode": "unconfined"}}}, "an unconfined seccomp"),
        ({"MOUNTS": [{"TYPE": "bind", "Source": "/", "Target": "/host"}]}, "a bind mount"),
    ],
)  # fmt: skip
def test_a_service_spec_that_reaches_the_host_is_refused(
    proxy: Proxy, addition: dict[str, Any], refusal: str
) -> None:
    client = docker.APIClient(base_url=proxy.url, version="1.41")
    container = {"Image": "certbotless-nginx:latest", "Command": ["nginx", "-t"], **addition}
    before = len(proxy.engine.calls)
    with pytest.raises(APIError, match=f"refuses POST /v1.41/services/create: .*{refusal}"):
        client.create_service({"ContainerSpec": container}, name="cbl-job-evil")
    with pytest.raises(APIError, match=f"the body asks for {refusal}"):
        client.update_service(
            EDGE_SERVICE["ID"], 42, task_template={"ContainerSpec": container}, name="edge_nginx"
        )
    assert len(proxy.engine.calls) == before


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        # The key `Mounts` spelled with an escape, and with Go's long s (U+017F folds to s).
        (b'{"TaskTemplate":{"ContainerSpec":{"Mo\\u0075nts":[{"Typ\\u0065":"bind"}]}}}', {}),
        ('{"TaskTemplate":{"ContainerSpec":{"Mount\u017f":[]}}}'.encode(), {}),
        (b'{"TaskTemplate":{"ContainerSpec":{"Mount\\u017f":[]}}}', {}),
        (b'{"TaskTemplate":{"Runtime":"plugin","PluginSpec":{}}}', {}),
        (b'{"TaskTemplate":{"Networks":[{"Target":"host"}]}}', {}),
        # A body too long for the proxy to see whole, or one it cannot measure.
        (b'{"Name":"x","Labels":{"pad":"' + b"x" * 4_300_000 + b'"}}', {}),
        (b"{}", {"Transfer-Encoding": "chunked"}),
    ],
)
def test_a_service_spec_the_proxy_cannot_read_plainly_is_refused(
    proxy: Proxy, body: bytes, headers: dict[str, str]
) -> None:
    before = len(proxy.engine.calls)
    if headers:  # http.client frames the body itself
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        connection.request(
            "POST", "/v1.41/services/create", iter([body]), headers, encode_chunked=True
        )
        response = connection.getresponse()
        status, text = response.status, response.read().decode()
        connection.close()
    else:
        status, text = proxy.request("POST", "/v1.41/services/create", body)
    assert status == 403, text
    message = json.loads(text)["message"]
    assert message.startswith("the certbotless Docker API proxy refuses POST /v1.41/services/")
    assert len(proxy.engine.calls) == before


def _spec(container: dict[str, Any]) -> bytes:
    return json.dumps({"Name": "cbl-job-x", "TaskTemplate": {"ContainerSpec": container}}).encode()


def _job(**template: Any) -> bytes:
    """A job's spec as docker-py sends it, with `template` beside the container spec."""
    return json.dumps({"Name": "cbl-job-x", "TaskTemplate": {"ContainerSpec": NGINX_CHECK,
                                                             **template}}).encode()  # fmt: skip


NGINX_CHECK = {"Image": "certbotless-nginx:latest", "Command": ["nginx", "-t"]}
VOLUME = {"Type": "volume", "Source": "shop_db_data", "Target": "/var/lib/x"}
SECRET = {"SecretID": "secretid0123456789abcdefg", "File": {"Name": "/k", "UID": "0", "GID": "0"}}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        # Issue 28: what a compromised sidecar could do with the first proxy.
        ("DELETE", "/v1.41/services/shop_db", b""),
        ("DELETE", "/v1.41/services/edge_nginx", b""),
        ("DELETE", "/v1.41/services/edgeserviceid0123456789abc", b""),  # by ID: unknown whose
        ("POST", "/v1.41/services/shop_db/update?version=3",
         json.dumps({"Name": "shop_db", "TaskTemplate": {"ContainerSpec": {"Image": "evil"}}})
         .encode()),
        ("DELETE", "/v1.41/configs/shop_conf", b""),
        ("DELETE", "/v1.41/configs/confid0123456789abcdefghi", b""),
        ("DELETE", "/v1.41/secrets/shop_db_password", b""),
        ("POST", "/v1.41/secrets/shop_db_password/update?version=3", b'{"Name":"x"}'),
        ("POST", "/v1.41/configs/create", b'{"Name":"shop_conf","Data":"eA=="}'),
        ("POST", "/v1.41/configs/create",
         b'{"Labels":{"Name":"cbl-x"},"name":"shop_conf","Data":"eA=="}'),
        # Spec writes: another stack's secret, another image, another command, the linker.
        ("POST", "/v1.41/services/create",
         _spec({**NGINX_CHECK, "Secrets": [{**SECRET, "SecretName": "shop_db_password"}]})),
        ("POST", "/v1.41/services/create",
         _spec({**NGINX_CHECK, "secrets": [{**SECRET, "secretname": "shop_db_password"}]})),
        ("POST", "/v1.41/services/create", _spec({**NGINX_CHECK, "Image": "alpine"})),
        ("POST", "/v1.41/services/create",
         _spec({**NGINX_CHECK, "Image": "certbotless-nginx:latest.evil.example/x"})),
        ("POST", "/v1.41/services/create", _spec({**NGINX_CHECK, "Command": ["sh", "-c", "id"]})),
        ("POST", "/v1.41/services/create", _spec({**NGINX_CHECK, "Args": ["-c", "/x.conf"]})),
        ("POST", "/v1.41/services/create", _spec({**NGINX_CHECK, "Env": ["LD_PRELOAD=/x.so"]})),
        ("POST", "/v1.41/services/create",
         json.dumps({"Name": "shop_db", "TaskTemplate": {"ContainerSpec": NGINX_CHECK}}).encode()),
        ("POST", "/v1.41/services/edge_nginx/update?version=42",
         _spec({"Image": "alpine"})),
        ("POST", "/v1.41/services/edge_nginx/update?version=42",
         _spec({"Image": "certbotless-nginx:latest",
                "Secrets": [{**SECRET, "SecretName": "shop_db_password"}]})),
        ("POST", "/v1.41/services/edge_certbotless/update?version=42",
         _spec({"Image": "certbotless-nginx:latest"})),
        ("POST", "/v1.41/services/edge_certbotless/update?version=42",
         _spec({"Image": "certbotless:0.2.0",
                "Secrets": [{**SECRET, "SecretName": "shop_db_password"}]})),
        # Issue 28's remaining gaps: another stack's network (by name or by ID), a volume or a
        # tmpfs, a job's name anywhere but first, or a second name.
        ("POST", "/v1.41/services/create", _job(Networks=[{"Target": "shop_default"}])),
        ("POST", "/v1.41/services/create",
         _job(Networks=[{"Target": "shopnetid0123456789abcdef"}])),
        ("POST", "/v1.41/services/create",
         _job(Networks=[{"Target": "certbotless-edge"}, {"target": "shop_default"}])),
        ("POST", "/v1.41/services/edge_nginx/update?version=42",
         json.dumps({"Name": "edge_nginx", "TaskTemplate": {
             "ContainerSpec": NGINX_CHECK, "Networks": [{"Target": "shop_default"}]}}).encode()),
        ("POST", "/v1.41/services/edge_certbotless/update?version=42",
         json.dumps({"Name": "edge_certbotless", "TaskTemplate": {
             "ContainerSpec": {"Image": "certbotless:0.2.0"},
             "Networks": [{"Target": "edge_front"}]}}).encode()),
        ("POST", "/v1.41/services/create", _spec({**NGINX_CHECK, "Mounts": [VOLUME]})),
        ("POST", "/v1.41/services/create",
         _spec({**NGINX_CHECK, "Mounts": [{"Type": "tmpfs", "Target": "/tmp"}]})),
        ("POST", "/v1.41/services/edge_nginx/update?version=42",
         _spec({"Image": "certbotless-nginx:latest", "mounts": [VOLUME]})),
        ("POST", "/v1.41/services/create",
         json.dumps({"Name": "cbl-job-x", "TaskTemplate": {"ContainerSpec": NGINX_CHECK},
                     "name": "shop_evil"}).encode()),
        ("POST", "/v1.41/services/create",
         json.dumps({"Labels": {"Name": "cbl-job-x"}, "Name": "shop_evil",
                     "TaskTemplate": {"ContainerSpec": NGINX_CHECK}}).encode()),
        ("POST", "/v1.41/services/create",
         json.dumps({"Labels": {"a": '{"Name": "cbl-job-x"}'}, "Name": "shop_evil",
                     "TaskTemplate": {"ContainerSpec": NGINX_CHECK}}).encode()),
    ],
)  # fmt: skip
def test_a_write_to_what_is_not_certbotlesss_is_refused(
    proxy: Proxy, method: str, path: str, body: bytes
) -> None:
    before = len(proxy.engine.calls)
    status, text = proxy.request(method, path, body)
    assert status == 403, text
    assert json.loads(text)["message"].startswith("the certbotless Docker API proxy refuses ")
    assert len(proxy.engine.calls) == before, "the engine saw a refused call"


@pytest.mark.parametrize(
    ("path", "container"),
    [
        ("/v1.41/services/create",
         {**NGINX_CHECK, "Secrets": [{**SECRET, "SecretName": "cbl-shop-1"},
                                     {**SECRET, "SecretName": "site_htpasswd"},
                                     {**SECRET, "SecretName": "shop_htpasswd_0a1b2c3d"}]}),
        ("/v1.41/services/edge_nginx/update?version=42",
         {"Image": "certbotless-nginx:latest@sha256:" + "0" * 64, "Args": ["nginx"]}),
        ("/v1.41/services/edge_certbotless/update?version=42",
         {"Image": "certbotless:0.2.0",
          "Secrets": [{**SECRET, "SecretName": "certbotless-dns-rfc2136-key-secret"}]}),
        ("/v1.41/services/create",
         {**NGINX_CHECK, "Mounts": [], "Ulimits": [{"Name": "nofile", "Hard": 1, "Soft": 1}],
          "Secrets": [{"File": {"Name": "/k", "UID": "0"}, "SecretName": "cbl-shop-1"}]}),
    ],
)  # fmt: skip
def test_certbotlesss_own_spec_writes_pass(
    proxy: Proxy, path: str, container: dict[str, Any]
) -> None:
    status, text = proxy.request("POST", path, _spec(container))
    assert status == 200, text


@pytest.mark.parametrize(
    ("path", "networks"),
    [
        ("/v1.41/services/create", ["certbotless-edge", "edge_front"]),
        ("/v1.41/services/edge_nginx/update?version=42", ["certbotless-edge", "edge_front"]),
        ("/v1.41/services/edge_certbotless/update?version=42",
         ["certbotless-edge", "edge_docker-api"]),
    ],
)  # fmt: skip
def test_the_stacks_own_networks_pass_by_name(proxy: Proxy, path: str, networks: list[str]) -> None:
    image = "certbotless:0.2.0" if "certbotless/" in path else NGINX_CHECK["Image"]
    name = "cbl-job-x" if path.endswith("create") else path.split("/")[3]
    body = {"Name": name, "TaskTemplate": {
        "ContainerSpec": {**NGINX_CHECK, "Image": image},
        "Networks": [{"Target": n, "Aliases": ["nginx"]} for n in networks]}}  # fmt: skip
    status, text = proxy.request("POST", path, json.dumps(body).encode())
    assert status == 200, text
