"""The seeds' Traefik scenarios, deployed on certbotless + nginx, checked over HTTPS."""

import http.client
import json
import re
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping

import pytest

from rig.stacks import (
    DEMO_STACK,
    EDGE_STACK,
    SEED_STACKS,
    deploy_edge,
    deploy_stack,
    docker,
    https_get,
    remove_stacks,
    service_logs,
    sidecar_logs,
    wait_for_https,
)

pytestmark = pytest.mark.rig

NEWEST_EDGE_IMAGE = "certbotless-nginx:forky"

NLP = "nlp.example.test"
API = "api.example.test"
MB = 1_000_000


@pytest.fixture(scope="module")
def seeds(
    rig_env: Mapping[str, str], pebble_root: str, figure: Callable[[str], None]
) -> Iterator[str]:
    remove_stacks([*SEED_STACKS, DEMO_STACK, EDGE_STACK])
    # nginx 1.30 here (1.22 in the other swarm tests), as the production image's nginx:stable:
    # its syntax, and services reached through pooled upstreams (edge/upstreams.py).
    deploy_edge({**rig_env, "CBL_RIG_EDGE_IMAGE": NEWEST_EDGE_IMAGE})
    started = time.monotonic()
    for stack, file in SEED_STACKS.items():
        deploy_stack(stack, [file], {})
    try:
        # The static site answers / on nlp; api has no route at / (404 is an answer too).
        answers = [
            wait_for_https(NLP, pebble_root, timeout=300),
            wait_for_https(API, pebble_root, timeout=120, path="/service1"),
        ]
    except TimeoutError:
        print(sidecar_logs(200))
        raise
    figure(
        f"seed stacks (7 services, 2 hosts) deployed → HTTPS answering: "
        f"{max(a.answering_since for a in answers) - started:.1f} s"
    )
    yield pebble_root
    remove_stacks([*SEED_STACKS, EDGE_STACK])


def test_routing_by_host_and_path_reaches_every_replica(seeds: str) -> None:
    # nginx re-resolves the service name every 10 s (resolver valid=10s): a replica that
    # started after the last lookup is reached after the next one.
    tasks: set[str] = set()
    deadline = time.monotonic() + 60
    while len(tasks) < 3 and time.monotonic() < deadline:
        answer = https_get(API, seeds, "/service1/predict")
        assert answer.status == 200
        reply = json.loads(answer.body)
        assert (reply["app"], reply["path"], reply["forwarded_proto"]) == (
            "flask-api", "/service1/predict", "https",
        )  # fmt: skip
        tasks.add(reply["task"])
        time.sleep(0.1)
    assert len(tasks) == 3, f"3 replicas behind /service1, saw {tasks}"
    assert https_get(API, seeds, "/").status == 404, "no route at / on this host"
    assert "<h1>corporate</h1>" in https_get(NLP, seeds, "/").body
    assert json.loads(https_get(NLP, seeds, "/backoffice/x").body)["app"] == "backoffice"


def test_upload_limit_is_per_route(seeds: str) -> None:
    accepted = https_get(NLP, seeds, "/backoffice/upload", method="POST", body=b"x" * 19 * MB)
    assert accepted.status == 200
    assert json.loads(accepted.body)["received_bytes"] == 19 * MB
    refused = https_get(NLP, seeds, "/backoffice/upload", method="POST", body=b"x" * 21 * MB)
    assert refused.status == 413


def test_forward_auth_guards_the_model_apis(seeds: str) -> None:
    for path in ("/en_core_web_sm/ner", "/en_core_web_lg/ner"):
        assert https_get(NLP, seeds, path).status == 401
        wrong = https_get(NLP, seeds, path, headers={"Authorization": "Bearer guess"})
        assert wrong.status == 401
        granted = https_get(NLP, seeds, path, headers={"Authorization": "Bearer let-me-in"})
        assert granted.status == 200
        assert json.loads(granted.body)["app"] == path.split("/")[1]
        forbidden = https_get(NLP, seeds, path, headers={"Authorization": "Bearer forbidden"})
        assert forbidden.status == 403, "the auth service's 403 reaches the client"


def test_clients_cannot_forge_their_forwarded_address(seeds: str) -> None:
    forged = https_get(API, seeds, "/service1/", headers={"X-Forwarded-For": "203.0.113.9"})
    seen = json.loads(forged.body)["forwarded_for"]
    assert seen and "203.0.113.9" not in seen


def test_websockets_pass_through_the_edge(seeds: str) -> None:
    context = ssl.create_default_context(cafile=seeds)
    with (
        socket.create_connection(("127.0.0.1", 443), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=NLP) as tls,
    ):
        tls.sendall(
            f"GET /live HTTP/1.1\r\nHost: {NLP}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += tls.recv(1)
        assert head.startswith(b"HTTP/1.1 101 "), head
        assert b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head  # RFC 6455's example accept value
        mask = b"\x01\x02\x03\x04"
        masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(b"hello"))
        frame = bytes([0x81, 0x80 | len(masked)]) + mask + masked  # a masked text frame
        tls.sendall(frame)
        echoed = b""
        while len(echoed) < len(frame):
            echoed += tls.recv(64)
        assert echoed == frame


def test_the_edge_speaks_http2_and_nginx_has_nothing_to_warn_about(seeds: str) -> None:
    version = docker(
        "run", "--rm", "--network", "host", "-v", f"{seeds}:/root.pem:ro", "certbotless-test-base",
        "curl", "-s", "--http2", "-o", "/dev/null", "-w", "%{http_version}", "--cacert",
        "/root.pem", "--resolve", f"{NLP}:443:127.0.0.1", f"https://{NLP}/",
    )  # fmt: skip
    assert version == "2"
    nginx_log = service_logs(f"{EDGE_STACK}_nginx")
    # About the configuration, not about one request: those name their connection ("*42"),
    # like the upload test's body buffered to a temporary file.
    config_warnings = [
        line
        for line in nginx_log.splitlines()
        if re.search(r"\[(warn|emerg)\]", line) and not re.search(r"\d+#\d+: \*\d+ ", line)
    ]
    assert not config_warnings, nginx_log[-3000:]
    assert "nginx 1.30" in sidecar_logs(500), "the sidecar rendered for the edge's nginx"


def test_errors_from_the_static_site_are_replaced_by_the_error_pages(seeds: str) -> None:
    missing = https_get(NLP, seeds, "/no/such/page")
    assert missing.status == 404
    assert "custom error page 404" in missing.body
    assert "plain 404" not in missing.body


def test_plain_http_redirects_with_308_and_hsts_is_sent(seeds: str) -> None:
    status = docker(
        "run", "--rm", "--network", "host", "certbotless-test-base",
        "curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
        "-H", f"Host: {NLP}", "http://127.0.0.1/en_core_web_sm?q=1",
    )  # fmt: skip
    assert status == f"308 https://{NLP}/en_core_web_sm?q=1"
    headers = docker(
        "run", "--rm", "--network", "host", "-v", f"{seeds}:/root.pem:ro", "certbotless-test-base",
        "curl", "-s", "-D", "-", "-o", "/dev/null", "--cacert", "/root.pem",
        "--resolve", f"{NLP}:443:127.0.0.1", f"https://{NLP}/",
    )  # fmt: skip
    assert "strict-transport-security: max-age=63072000" in headers.lower()


def test_a_roll_of_a_service_under_keep_alive_load_fails_no_request(
    seeds: str, figure: Callable[[str], None]
) -> None:
    """The edge keeps pooled connections to the service's tasks (its nginx is >= 1.27.3);
    rolling the service (each task stopped and replaced) must not cost a request. One client
    connection, kept alive, asks again and again until the roll is over (at most 180 s)."""
    edge = docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={EDGE_STACK}_nginx")
    assert "upstream certbotless_" in docker("exec", edge.split()[0], "nginx", "-T")
    roll = subprocess.Popen(
        ["docker", "service", "update", "--force", "--quiet", "--update-parallelism", "1",
         "--update-delay", "1s", "flask_api"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    client = _KeepAliveClient(API, seeds)
    answered, failed = 0, []
    deadline = time.monotonic() + 180
    try:
        while roll.poll() is None and time.monotonic() < deadline:
            try:
                status = client.get("/service1/predict")
            except (OSError, http.client.HTTPException) as error:
                failed.append(repr(error))
                client.close()
                continue
            answered += 1
            if status != 200:
                failed.append(str(status))
    finally:
        client.close()
        if roll.poll() is None:
            roll.kill()
    assert roll.wait(timeout=30) == 0, roll.stderr.read().decode() if roll.stderr else ""
    figure(f"flask_api rolled under keep-alive load: {answered} requests, {len(failed)} failed")
    assert answered > 50 and failed == []


class _KeepAliveClient:
    """HTTPS requests over one connection to the edge, kept alive (a new one after an error)."""

    def __init__(self, host: str, cafile: str) -> None:
        self.host = host
        self.context = ssl.create_default_context(cafile=cafile)
        self.tls: ssl.SSLSocket | None = None

    def get(self, path: str) -> int:
        if self.tls is None:
            raw = socket.create_connection(("127.0.0.1", 443), timeout=30)
            self.tls = self.context.wrap_socket(raw, server_hostname=self.host)
        self.tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
        response = http.client.HTTPResponse(self.tls)
        response.begin()
        response.read()
        if response.will_close:
            self.close()
        return response.status

    def close(self) -> None:
        if self.tls is not None:
            self.tls.close()
            self.tls = None
