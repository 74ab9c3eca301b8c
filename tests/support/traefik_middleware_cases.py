"""Traefik's middleware and service label cases (tests/traefik_cases/, kind "middlewares"): each
case's labels define middlewares (`traefik.http.middlewares.<m>.…`) and options of the Traefik
service `s` (`traefik.http.services.s.…`); the runner adds one router `r` for `a.test` (the
case's `rule`, else ``Host(`a.test`)``) on the entry point `web` (`websecure` with TLS when the
case says `"tls": true`) using those middlewares in order (or the case's `middlewares`), and
`s`'s port, an echo server's. A real nginx answers the case's requests, and each expected
answer is compared on what it gives: `status`, answer `headers` (a value, or null: absent),
and what reached the service, `upstream`: its `path` (the request target as sent to it) and
`headers` (lower-case names, a value or null), or `"upstream": null` for nothing. TLS with
clients: the case's `dynamic` configuration and router `tls_options`, and requests showing the
throwaway CA's client certificate (`client_cert`). A service that balances over its tasks
(p2c, a sticky cookie) has two, on 127.0.0.1 and SECOND_TASK, and requests may be repeated,
send back the previous answer's cookie and expect the same task or both; see
tests/traefik_cases/README.md.

Verdicts: REFUSED when a LabelProblem names one of the case's middlewares or `s`'s options
(whether the route is then served without them or not at all), unless the case says that
Traefik ignores that option too (`traefik_ignores`) and every answer is Traefik's; a problem
saying the middleware differs in a situation only (`situational`) is judged by the answers:
BEHAVES when every one is Traefik's, REFUSED when one differs and the words name that
difference (the case's `difference_said` is in them), else SILENT; otherwise
BEHAVES when every answer is Traefik's, SILENT when one differs, when the router is dropped
without a word, or when the case has no request to check what certbotless accepted."""

from __future__ import annotations

import json
import re
import socket
import ssl
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import replace
from functools import partial
from pathlib import Path
from tempfile import mkdtemp
from threading import Lock
from typing import Any
from urllib.parse import urlsplit
from uuid import uuid4

from cryptography import x509

from certbotless.edge.deployer import servable_routes
from certbotless.edge.mounts import htpasswd_secret_target
from certbotless.labels.traefik.dynamic import read_dynamic_config
from certbotless.labels.traefik.middlewares.options import NO_FILE_MIDDLEWARES, FileMiddlewares
from certbotless.model import LabelProblem, Route, ServiceInfo
from tests.support.client_ca import (
    auth_tls_secrets,
    client_certificate,
    once,
    throwaway_ca,
    tls_echo_port,
)
from tests.support.digest_client import DIGEST_KEY_FILE, with_digest
from tests.support.edge_nginx import (
    ECHO_ADDRESS_HEADER,
    LOCAL_NGINX,
    Echo,
    NginxBinary,
    StubDns,
    echo_task,
    serve_routes,
    stop,
)
from tests.support.factories import certs_for
from tests.support.traefik_cases import (
    FRONT,
    GO_REMOTE,
    LOOPBACK,
    CaseFile,
    Outcome,
    Verdict,
    discover_case,
    proxy_header,
    public_host,
    request_bytes,
)
from tests.support.traefik_cases import case_outcome as other_case_outcome

HOST = "a.test"
MIDDLEWARES = "traefik.http.middlewares."
SERVICE = "traefik.http.services.s."
SECOND_TASK = "127.0.0.2"  # the service's second task, beside LOOPBACK, when it balances
CASE_REQUEST = "X-Case-Request"  # a request's own id, to find what reached the echo server


def with_echo(value: Any, port: int) -> Any:
    """`value` (a case's JSON) with `{echo}` read as the echo server's port, `{client_ca}`
    as the PEM of the CA that signs the client's certificate, `{client_pem}` as that
    certificate as Traefik passes it (its PEM without BEGIN/END lines and newlines), its
    `{client_serial}` (decimal), `{client_nb}` and `{client_na}` (validity dates, Unix
    seconds), and `{echo_tls}` as the port of an echo server over HTTPS (its certificate from
    that CA)."""
    text = json.dumps(value).replace("{echo}", str(port))
    if "{echo_tls}" in text:
        text = text.replace("{echo_tls}", str(tls_echo_port()))
    if "{client_" in text:
        pem = client_certificate().cert_pem
        passed = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
        text = text.replace("{client_ca}", json.dumps(throwaway_ca().cert_pem)[1:-1])
        text = text.replace("{client_pem}", passed)
        cert = x509.load_pem_x509_certificate(pem.encode())
        text = text.replace("{client_serial}", str(cert.serial_number))
        text = text.replace("{client_nb}", str(int(cert.not_valid_before_utc.timestamp())))
        text = text.replace("{client_na}", str(int(cert.not_valid_after_utc.timestamp())))
    return json.loads(text)


def dynamic_config(case: Mapping[str, Any], port: int, scratch: Path) -> FileMiddlewares:
    """The case's Traefik dynamic configuration (`dynamic`, as a file provider's document)."""
    if not case.get("dynamic"):
        return NO_FILE_MIDDLEWARES
    path = scratch.parent / f"{scratch.name}-dynamic.yml"
    path.write_text(json.dumps(with_echo(case["dynamic"], port)))
    return read_dynamic_config([path])


def case_labels(case: Mapping[str, Any], port: int) -> dict[str, str]:
    """The Swarm service's labels: the case's, router `r` and service `s` on `port` (and with
    `https_router`, a router `r-secure` for the same rule over HTTPS, as beside a router that
    redirects to it)."""
    labels: dict[str, str] = with_echo(case["labels"], port)
    names = case.get("middlewares")
    if names is None:
        names = list(dict.fromkeys(
            label.split(".")[3] for label in labels if label.lower().startswith(MIDDLEWARES)
        ))  # fmt: skip
    router = {
        "rule": case.get("rule", f"Host(`{HOST}`)"),
        "entrypoints": "websecure" if case.get("tls") else "web",
        "service": "s",
    }
    if case.get("tls"):
        router["tls"] = "true"
    if case.get("tls_options"):
        router["tls.options"] = case["tls_options"]
    if names:
        router["middlewares"] = ",".join(names)
    if case.get("https_router"):
        secure = {"rule": router["rule"], "entrypoints": "websecure", "tls": "true", "service": "s"}
        labels |= {f"traefik.http.routers.r-secure.{k}": v for k, v in secure.items()}
    spelled = {label.lower() for label in labels}
    if f"{SERVICE}loadbalancer.server.url" not in spelled:
        labels[f"{SERVICE}loadbalancer.server.port"] = str(port)
    return {"traefik.enable": "true", **{f"traefik.http.routers.r.{k}": v
                                          for k, v in router.items()}, **labels}  # fmt: skip


def _own(problem: LabelProblem, case: Mapping[str, Any]) -> bool:
    """Whether the problem names one of the case's labels (a middleware's or `s`'s), or the
    rule the case gives its routers (`rule`)."""
    label = problem.label.lower()
    own = {key.lower() for key in case["labels"]}
    if case.get("rule"):
        own |= {f"traefik.http.routers.{router}.rule" for router in ("r", "r-secure")}
    names = {key.split(".")[3].lower() for key in own if key.startswith(MIDDLEWARES)}
    return label in own or any(
        label.startswith(f"{MIDDLEWARES}{name}.") or f"middleware {name}" in
        problem.message.lower() for name in names
    )  # fmt: skip


def middleware_case_outcome(
    case: Mapping[str, Any],
    area: str,
    stem: str,
    ports: Sequence[int],
    scratch: Path,
    binary: NginxBinary = LOCAL_NGINX,
) -> Outcome:
    case_id = f"{stem}:{case['id']}"
    if case.get("not_applicable"):
        return Outcome(case_id, area, Verdict.NOT_APPLICABLE, case["not_applicable"])
    routes, problems = discover_case([ServiceInfo("svc", case_labels(case, ports[0]))],
                                     files=dynamic_config(case, ports[0], scratch))  # fmt: skip
    routes = [_errors_on_loopback(route) for route in routes]
    # The edge refuses what needs njs when its nginx has none, and what needs pooled upstreams
    # when its nginx cannot pool: refusals of the case's own.
    routes, unservable = servable_routes(routes, binary.version, lambda: binary.njs_features)
    said = [p for p in problems if _own(p, case)] + list(unservable)
    text = " | ".join(f"{p.label}: {p.message}" for p in said)
    if case.get("traefik_rejects"):
        if routes and not said:
            return Outcome(case_id, area, Verdict.SILENT,
                           "Traefik rejects these labels; certbotless serves them")  # fmt: skip
        return Outcome(case_id, area, Verdict.BEHAVES, text)
    # Said to differ in a situation only (LabelProblem.situational): the answers tell.
    situational = bool(said) and all(p.situational for p in said) and bool(routes)
    if said and not (case.get("traefik_ignores") and routes) and not situational:
        return Outcome(case_id, area, Verdict.REFUSED, text)
    if not routes:
        others = " | ".join(f"{p.label}: {p.message}" for p in problems)
        return Outcome(case_id, area, Verdict.SILENT, f"router dropped: {others or 'no word'}")
    requests = [r for r in case.get("requests", []) if not r.get("not_applicable")]
    if not requests:
        return Outcome(case_id, area, Verdict.SILENT, "accepted; no request checks it")
    for path, answer in case.get("auth_answers", {}).items():
        headers = [(name, value) for name, value in answer.get("headers", [])]
        Echo.scripted[path] = (answer["status"], headers, answer_body(answer.get("body", "")))
    secrets = {htpasswd_secret_target(name): text for name, text in case.get("secrets", {}).items()}
    differing = answers_differing(with_echo(requests, ports[0]), routes, scratch, binary, secrets)
    if differing:
        if situational:  # refused in words only where the words name this case's difference
            named = case.get("difference_said", "")
            verdict = Verdict.REFUSED if named and named in text else Verdict.SILENT
            return Outcome(case_id, area, verdict, text if named in text else "; ".join(differing))
        if said:  # says what it does not do, and that differs from Traefik's ignoring it
            return Outcome(case_id, area, Verdict.REFUSED, text)
        return Outcome(case_id, area, Verdict.SILENT, "; ".join(differing))
    # An option Traefik reads and then ignores: certbotless ignores it too, and says so.
    return Outcome(case_id, area, Verdict.BEHAVES, text)


def _errors_on_loopback(route: Route) -> Route:
    """The errors middleware's service, `svc`, is the echo server on loopback too."""
    pages = route.error_pages
    if pages is None:
        return route
    url = pages.url.replace("http://svc:", f"http://{LOOPBACK}:")
    return replace(route, error_pages=replace(pages, url=url))


def answers_differing(
    requests: Sequence[Mapping[str, Any]],
    routes: Sequence[Route],
    scratch: Path,
    binary: NginxBinary = LOCAL_NGINX,
    secrets: Mapping[str, str] = DIGEST_KEY_FILE,
) -> list[str]:
    """What differs from Traefik's answers; `secrets`: Swarm secrets' files the edge mounts
    (target → text), beside forward auth's TLS files and digestAuth's nonce key."""
    with ExitStack() as stack:
        resolver = ""
        if any(route.upstream.balances for route in routes):  # over `tasks.<service>`: two
            _second_task(routes[0].port)
            dns = StubDns([LOOPBACK, SECOND_TASK])
            stack.callback(dns.close)
            resolver = dns.address
        extra = {**auth_tls_secrets(), **DIGEST_KEY_FILE, **secrets}
        nginx, port, tls_port = serve_routes(routes, scratch, extra=extra,
                                             certs=certs_for(*_named_hosts(routes)),
                                             front_subnets=FRONT,
                                             binary=binary, resolver=resolver)  # fmt: skip
        stack.callback(stop, nginx)
        if resolver:
            _until_resolved(port)
        differing: list[str] = []
        previous: dict[str, Any] | None = None
        for request in requests:
            _script(request.get("answers", {}))
            time.sleep(request.get("after", 0))
            deadline = time.monotonic() + request.get("within", 0)
            while True:  # until the answer is Traefik's, or `within` seconds have passed
                answers, found = _asked(request, previous, port, tls_port)
                if not found or time.monotonic() >= deadline:
                    break
                time.sleep(0.1)
            differing += [f"{request['method']} {request['url']}: {d}"
                          for d in dict.fromkeys(found)]  # fmt: skip
            previous = answers[-1]
        return differing


def _named_hosts(routes: Sequence[Route]) -> list[str]:
    """a.test and each host a route names (a case's own `rule`): hostnames and IP addresses."""
    return list(dict.fromkeys([HOST, *(host for route in routes for host in route.hosts)]))


def _asked(
    request: Mapping[str, Any], previous: Mapping[str, Any] | None, port: int, tls_port: int
) -> tuple[list[dict[str, Any]], list[str]]:
    """The request's answers (`repeat` times) and what differs in them from Traefik's."""
    tls = urlsplit(request["url"]).scheme == "https"
    sent = _with_cookie(request, previous)
    answers = [with_digest(sent, partial(exchange, tls_port if tls else port, tls=tls))
               for _ in range(request.get("repeat", 1))]  # fmt: skip
    found = [d for got in answers for d in differences(request["expect"], got)]
    found += _task_differences(request["expect"].get("task"), answers, previous)
    return answers, found + _checked_differences(request["expect"].get("checked"))


def _script(answers: Mapping[str, Mapping[str, Any] | None]) -> None:
    """A request's `answers`: what the echo server answers at each path from now on (its
    status, headers, body, and `delay` in seconds before it), or the echo again (null)."""
    for path, answer in answers.items():
        Echo.scripted.pop(path, None)
        Echo.delayed.pop(path, None)
        if answer is not None:
            headers = [(name, value) for name, value in answer.get("headers", [])]
            Echo.scripted[path] = (answer["status"], headers, answer_body(answer.get("body", "")))
            Echo.delayed[path] = answer.get("delay", 0)


def answer_body(body: str | Mapping[str, int]) -> str:
    """A body as a case gives it: its text, or `{"generated": N}`, N bytes as the letters a to z
    in turn (a Go test's generateBytes(N), whose bytes run through every value, kept to ASCII:
    the same length, as compressible)."""
    if isinstance(body, str):
        return body
    return "".join(chr(0x61 + i % 26) for i in range(body["generated"]))


def _checked_differences(checked: Mapping[str, Any] | None) -> list[str]:
    """`checked`: the last request the echo server saw at `path` (a health check's) had
    `headers` (`:method` its method); `"seen": false`, none reached it."""
    if checked is None:
        return []
    seen = [headers for path, headers in Echo.seen if path == checked["path"]]
    if not checked.get("seen", True):
        return [f"health check: {checked['path']} asked, Traefik does not ask it"] if seen else []
    if not seen:
        return [f"health check: {checked['path']} not asked, Traefik asks it"]
    return [
        f"health check: {d}"
        for d in _seen_differences(checked, {"path": checked["path"], "headers": seen[-1]})
    ]


def _until_resolved(port: int) -> None:
    """nginx resolves `tasks.<service>` after it starts: until then its upstream has no task
    (502)."""
    for _ in range(100):
        if exchange(port, {"method": "GET", "url": f"http://{HOST}/"}, False)["status"] != 502:
            return
        time.sleep(0.05)


_SECOND_TASKS: dict[int, ExitStack] = {}  # kept (a stack let go would stop its server)
_SECOND_TASKS_LOCK = Lock()


def _second_task(port: int) -> None:
    """The service's second task (an echo server on SECOND_TASK at the first's port), started
    once and kept: cases run side by side share the echo servers."""
    with _SECOND_TASKS_LOCK:
        if port not in _SECOND_TASKS:
            _SECOND_TASKS[port] = ExitStack()
            _SECOND_TASKS[port].enter_context(echo_task(SECOND_TASK, port))


def _with_cookie(request: Mapping[str, Any], previous: Mapping[str, Any] | None
                 ) -> Mapping[str, Any]:  # fmt: skip
    """The request, with `"cookie": "previous"`: sending back the cookie the previous answer
    set (its Set-Cookie's name=value)."""
    if request.get("cookie") != "previous":
        return request
    set_cookie = (previous or {}).get("headers", {}).get("set-cookie", "")
    cookie = set_cookie.split(";", 1)[0]
    return {**request, "headers": [*request.get("headers", []), ["Cookie", cookie]]}


def _task_differences(task: str | None, answers: Sequence[Mapping[str, Any]],
                      previous: Mapping[str, Any] | None) -> list[str]:  # fmt: skip
    """`"task"`: "same": every answer from the task that gave the previous answer; "both":
    the service's two tasks answered (taken in turn or at random, not always one)."""
    tasks = [got["headers"].get(ECHO_ADDRESS_HEADER.lower()) for got in answers]
    if task == "same":
        first = (previous or {}).get("headers", {}).get(ECHO_ADDRESS_HEADER.lower())
        if set(tasks) != {first}:
            return [f"task: Traefik sends each to the previous answer's ({first}), "
                    f"certbotless to {sorted(set(map(str, tasks)))}"]  # fmt: skip
    if task == "both" and len(set(tasks)) != 2:
        return [f"task: Traefik takes both tasks, certbotless {sorted(set(map(str, tasks)))}"]
    return []


def exchange(port: int, request: Mapping[str, Any], tls: bool) -> dict[str, Any]:
    """The answer: status, headers (lower-case names; repeated ones joined with `, `), and
    what reached the echo server (None: nothing)."""
    marker = uuid4().hex
    sent = dict(request)
    sent["headers"] = [*request.get("headers", []), [CASE_REQUEST, marker]]
    with socket.create_connection((LOOPBACK, port), timeout=5) as raw:
        raw.sendall(proxy_header(request.get("remote") or GO_REMOTE))
        connection: socket.socket = raw
        if tls:
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            if request.get("client_cert"):  # the throwaway CA's client certificate
                context.load_cert_chain(*_client_files())
            named = urlsplit(request["url"]).hostname or HOST
            connection = context.wrap_socket(raw, server_hostname=public_host(named))
        connection.sendall(_with_body(request_bytes(sent), request.get("body", "")))
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    raw_head, _, body = answer.partition(b"\r\n\r\n")
    head = raw_head.decode("latin-1").split("\r\n")
    status = int(head[0].split()[1]) if head and head[0].startswith("HTTP/") else 0
    headers: dict[str, str] = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    seen: list[dict[str, Any]] = [{"path": path, "headers": got} for path, got in Echo.seen
                                  if got.get(CASE_REQUEST.lower()) == marker]  # fmt: skip
    # The forward-auth server (the echo too, at /auth…) is asked first, then the service.
    auth = [one for one in seen if str(one["path"]).split("?")[0].startswith("/auth")]
    service = [one for one in seen if one not in auth]
    if headers.get("transfer-encoding") == "chunked":
        body = _unchunked(body)
    return {
        "status": status,
        "headers": headers,
        "body": body.decode("latin-1"),
        "upstream": service[-1] if service else None,
        "auth": auth[0] if auth else None,
    }


def _unchunked(body: bytes) -> bytes:
    whole = b""
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        whole, body = whole + body[:size], body[size + 2 :]
    return whole


@once
def _client_files() -> tuple[Path, Path]:
    return client_certificate().files(Path(mkdtemp(prefix="cbl-client-")), "client")


def _with_body(head: bytes, body: str) -> bytes:
    if not body:
        return head
    length = f"Content-Length: {len(body.encode())}\r\n\r\n".encode()
    return head[: -len(b"\r\n")] + length + body.encode()


def differences(expect: Mapping[str, Any], got: Mapping[str, Any]) -> list[str]:
    found = []
    if "status" in expect and expect["status"] != got["status"]:
        found.append(f"status: Traefik {expect['status']}, certbotless {got['status']}")
    for name, value in expect.get("headers", {}).items():
        have = got["headers"].get(name.lower())
        if isinstance(value, dict):  # {"matches": a regex the whole value matches}
            if have is None or not re.fullmatch(value["matches"], have):
                found.append(f"answer header {name}: Traefik matches {value['matches']!r}, "
                             f"certbotless {have!r}")  # fmt: skip
        elif have != value:
            found.append(f"answer header {name}: Traefik {value!r}, certbotless {have!r}")
    if "body" in expect and answer_body(expect["body"]) != got["body"]:
        found.append(f"answer body: Traefik {str(expect['body'])[:80]!r}, "
                     f"certbotless {got['body'][:80]!r} ({len(got['body'])} bytes)")  # fmt: skip
    if "auth" in expect:
        found += [f"forward auth: {d}" for d in _seen_differences(expect["auth"], got["auth"])]
    if "upstream" in expect:
        found += _seen_differences(expect["upstream"], got["upstream"])
    return found


def _seen_differences(upstream: Mapping[str, Any] | None, seen: Mapping[str, Any] | None
                      ) -> list[str]:  # fmt: skip
    found = []
    if upstream is None or seen is None:
        if (upstream is None) != (seen is None):
            found.append(
                "the service "
                + ("is reached" if seen else "is not reached")
                + (", Traefik does not reach it" if seen else ", Traefik reaches it")
            )
        return found
    if "path" in upstream and upstream["path"] != seen["path"]:
        found.append(f"service path: Traefik {upstream['path']}, certbotless {seen['path']}")
    method = seen["headers"].get(":method")
    if "method" in upstream and upstream["method"] != method:
        found.append(f"method: Traefik {upstream['method']}, certbotless {method}")
    for name, value in upstream.get("headers", {}).items():
        have = seen["headers"].get(name.lower())
        if have != value:
            found.append(f"service header {name}: Traefik {value!r}, certbotless {have!r}")
    return found


def case_outcome(
    file: CaseFile,
    case: Mapping[str, Any],
    ports: Sequence[int],
    scratch: Path,
    binary: NginxBinary = LOCAL_NGINX,
) -> Outcome:
    """Any case: the middleware kind here, the others in traefik_cases; `binary`: the nginx
    that answers."""
    if file.kind == "middlewares":
        return middleware_case_outcome(case, file.area, file.stem, ports, scratch, binary)
    return other_case_outcome(file, case, ports, scratch, binary)
