"""A real nginx running a rendered configuration on loopback (random ports), the upstream it
proxies to, and the requests the tests send it: what the edge does is checked by asking it.

- `Echo`: the upstream; answers `<path> <Authorization or ->` with its own port in
  `X-Echo-Port` (which of several answered tells routers apart) and its address in
  `X-Echo-Address` (which task of a service, `echo_task`, answered), and keeps each request's
  headers and method (`Echo.seen`) so a test can check what reached the service (or a
  forward-auth server, or a health check); at a path given a scripted answer, gives that
  (after a delay when `Echo.delayed` says one).
- `serve_routes`: nginx serving routes over plain HTTP (and HTTPS for hosts given
  certificates: a stand-in self-signed pair).
- `get` / `answer`: a request over plain HTTP; `answer_tls`: one over HTTPS with SNI;
  `request`: one with headers in order, a name possibly twice, for any host.
- `h2c_front`: an h2c server (HTTP/2 without TLS, as gRPC services speak) before an echo
  upstream, for routes with scheme h2c.
- `StubDns`: a DNS server on loopback answering every name with the addresses given, for
  upstream names that stand for several tasks.
"""

from __future__ import annotations

import base64
import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import ClassVar

import dns.message
import dns.rdatatype
import dns.rrset

from certbotless.edge.mounts import NGINX_CONF_TARGET
from certbotless.edge.nginx_version import NginxVersion, parse_nginx_version
from certbotless.edge.njs import NJS, PROBE_COMMAND, NjsFeatures, njs_features
from certbotless.edge.render import render_nginx_conf
from certbotless.edge.validation import _write_scratch_tree
from certbotless.model import Route, StoredCert
from tests.support.factories import CERTS_DIR, RESPONDER
from tests.support.ports import unused_ports

HOST = "app.example.com"
# nginx in a root filesystem (the rig's unpacked trixie, nginx 1.26, or forky, nginx 1.30: the
# generation of the edge image's nginx:stable) as in a container: a private mount namespace
# gives it /proc and /dev, both gone with it, and it dies with the command that started it.
_IN_ROOT = (
    'mount -t proc proc "$0/proc" && mount --rbind /dev "$0/dev" && exec chroot "$0" nginx "$@"'
)


@dataclass(frozen=True)
class NginxBinary:
    """Which nginx runs: this machine's, or the one in `root` (seen by it as `/`)."""

    root: Path = Path("/")

    @property
    def version(self) -> NginxVersion:
        """Its version, which the configuration is rendered for, as the edge renders it."""
        return _version_of(self.command)

    @property
    def has_njs(self) -> bool:
        """Whether it has njs, as the edge asks its nginx."""
        return NJS in self.njs_features

    @property
    def njs_features(self) -> NjsFeatures:
        """What its njs can do, as the edge asks its nginx."""
        return _njs_of(self.command)

    @property
    def command(self) -> tuple[str, ...]:
        if self.root == Path("/"):
            return ("nginx",)
        return ("unshare", "--mount", "--fork", "--kill-child", "sh", "-c", _IN_ROOT,
                str(self.root))  # fmt: skip


LOCAL_NGINX = NginxBinary()


@cache
def _version_of(command: tuple[str, ...]) -> NginxVersion:
    found = subprocess.run(
        [*command, "-v"], capture_output=True, text=True, timeout=60, check=False
    )
    return parse_nginx_version(found.stderr + found.stdout)


@cache
def _njs_of(command: tuple[str, ...]) -> NjsFeatures:
    found = subprocess.run(
        [*command, *PROBE_COMMAND[1:]], capture_output=True, text=True, timeout=60, check=False
    )
    return njs_features(found.stderr + found.stdout)


# Scratch trees written inside another root, removed when their nginx stops.
_SCRATCH_IN_ROOT: dict[int, Path] = {}
NO_HEADERS: Mapping[str, str] = MappingProxyType({})
ECHO_PORT_HEADER = "X-Echo-Port"
ECHO_ADDRESS_HEADER = "X-Echo-Address"  # which of a service's tasks (loopback addresses)
METHOD_SEEN = ":method"  # the method of a request the echo server saw, among its headers


class Echo(BaseHTTPRequestHandler):
    """The upstream: echoes the path it was asked for and the Authorization it got; answers
    with `X-Frame-Options: SAMEORIGIN` and `X-Upstream: echo` of its own."""

    # Each request's path and headers (lowercase names, and its method as `:method`, as
    # HTTP/2 names it), oldest first, of every Echo server.
    seen: ClassVar[list[tuple[str, dict[str, str]]]] = []

    # Answers given in place of the echo, by path: a forward-auth server's (status, headers,
    # body), as a Traefik test's handler writes them.
    scripted: ClassVar[dict[str, tuple[int, list[tuple[str, str]], str]]] = {}

    # Seconds a scripted answer waits before it is given, by path (a slow health endpoint).
    delayed: ClassVar[dict[str, float]] = {}

    def _answer(self) -> None:
        headers: dict[str, str] = {}
        for name, value in self.headers.items():  # a header sent twice: both, joined
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        headers[METHOD_SEEN] = self.command
        Echo.seen.append((self.path, headers))
        time.sleep(Echo.delayed.get(self.path, 0))
        if self.path in Echo.scripted:
            self._scripted(*Echo.scripted[self.path])
            return
        body = f"{self.path} {self.headers.get('Authorization', '-')}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Frame-Options", "SAMEORIGIN")  # for headers the edge replaces
        self.send_header("X-Upstream", "echo")  # for headers the edge removes
        self.send_header(ECHO_PORT_HEADER, str(self.request.getsockname()[1]))
        self.send_header(ECHO_ADDRESS_HEADER, str(self.request.getsockname()[0]))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _scripted(self, status: int, headers: list[tuple[str, str]], body: str) -> None:
        data = body.encode()
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _answer

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1") -> Iterator[int]:
    """An HTTP server of `handler` on a random loopback port (its port), for the block."""
    server = ThreadingHTTPServer((host, 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def echo_servers(count: int) -> Iterator[list[int]]:
    """`count` echo upstreams on random loopback ports (their ports)."""
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), Echo) for _ in range(count)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield [int(server.server_address[1]) for server in servers]
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


@contextmanager
def echo_task(address: str, port: int) -> Iterator[None]:
    """An echo server on `address` (another loopback address) at `port`: another task of the
    service whose first task listens on 127.0.0.1 at that port."""
    server = ThreadingHTTPServer((address, port), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def echo_upstream() -> Iterator[int]:
    """One echo upstream (its port)."""
    with echo_servers(1) as ports:
        yield ports[0]


def serve_routes(
    routes: Sequence[Route],
    tmp_path: Path,
    extra: Mapping[str, str] = NO_HEADERS,
    certs: Mapping[str, StoredCert] = MappingProxyType({}),
    resolver: str = "",
    front_subnets: Sequence[str] = (),
    binary: NginxBinary = LOCAL_NGINX,
    ticket_keys: int = 0,
) -> tuple[subprocess.Popen[bytes], int, int]:
    """nginx serving `routes` (the rendered configuration, and `extra` files: target → text,
    as the edge would mount them): (the process, its plain HTTP port, its HTTPS port).
    `resolver` (address:port) replaces Docker's DNS. With `front_subnets`, every connection
    must start with a PROXY protocol header. `binary`: which nginx (this machine's, else one in
    a root filesystem, whose scratch tree goes under that root's /tmp)."""
    files = render_nginx_conf(routes, certs, RESPONDER, CERTS_DIR, front_subnets=front_subnets,
                              nginx_version=binary.version, ticket_keys=ticket_keys)  # fmt: skip
    files.update(extra)
    tmp_path.mkdir(parents=True)
    for attempt in range(3):  # another test may take a port between its pick and nginx's bind
        port, tls_port = unused_ports(2)
        nginx = _start({
            target: text.replace("listen 80", f"listen 127.0.0.1:{port}")
            .replace("listen 443", f"listen 127.0.0.1:{tls_port}")
            # Quiet, not off: a location's own log (a circuit breaker's) must still run.
            .replace("access_log /dev/stdout certbotless;", "access_log /dev/null certbotless;")
            .replace("resolver 127.0.0.11", f"resolver {resolver or '127.0.0.11'}")
            for target, text in files.items()
        }, tmp_path / f"attempt-{attempt}", binary)  # fmt: skip
        if nginx is not None:
            return nginx, port, tls_port
    raise AssertionError((tmp_path / f"attempt-{attempt}" / "stderr").read_text())


def _start(
    files: Mapping[str, str], scratch: Path, binary: NginxBinary
) -> subprocess.Popen[bytes] | None:
    """nginx running `files`, once it has bound its ports (it writes its pid file after that,
    so a port another nginx holds is not mistaken for its own); None when a port was taken."""
    scratch.mkdir()
    seen = PurePosixPath(scratch)
    if binary.root != Path("/"):
        inside = Path(tempfile.mkdtemp(prefix="certbotless-serve-", dir=binary.root / "tmp"))
        seen = PurePosixPath("/") / inside.relative_to(binary.root)
    _write_scratch_tree(files, binary.root, seen)
    nginx = subprocess.Popen(
        [*binary.command, "-p", f"{seen}/", "-c", f"{seen}/nginx.conf", "-g",
         f"daemon off; pid {seen}/nginx.pid; user root;"],  # workers read pytest's 0700 dirs
        stderr=(scratch / "stderr").open("wb"),
    )  # fmt: skip
    tree = binary.root / str(seen).lstrip("/")
    if binary.root != Path("/"):
        _SCRATCH_IN_ROOT[nginx.pid] = tree
    for _ in range(200):
        if nginx.poll() is not None:
            if "Address already in use" in (scratch / "stderr").read_text():
                shutil.rmtree(_SCRATCH_IN_ROOT.pop(nginx.pid, scratch), ignore_errors=True)
                return None
            raise AssertionError((scratch / "stderr").read_text())
        if (tree / "nginx.pid").exists():
            return nginx
        time.sleep(0.025)
    nginx.kill()
    raise AssertionError("nginx did not listen within 10 s")


FRONT_PROTOCOL_HEADER = "X-Front-Protocol"
_H2C_FRONT = """worker_processes 1;
error_log stderr warn;
events {{}}
http {{
    access_log off;
    server {{
        listen 80{listen_http2};{http2_on}
        location / {{
            if ($server_protocol != "HTTP/2.0") {{ return 505; }}
            proxy_pass http://127.0.0.1:{echo};
            proxy_set_header Host $http_host;
            proxy_set_header {header} $server_protocol;
        }}
    }}
}}
"""


@contextmanager
def h2c_front(echo: int, scratch: Path, binary: NginxBinary = LOCAL_NGINX) -> Iterator[int]:
    """An h2c server on loopback (its port) before the echo upstream on port `echo`: it answers
    505 to a request not made over HTTP/2, passes the others on with their headers (Host
    included) and tells the echo server the protocol in X-Front-Protocol."""
    newer = binary.version >= (1, 25, 1)  # `http2 on`; before it, `listen … http2`
    text = _H2C_FRONT.format(listen_http2="" if newer else " http2", echo=echo,
                             http2_on="\n        http2 on;" if newer else "",
                             header=FRONT_PROTOCOL_HEADER)  # fmt: skip
    scratch.mkdir(parents=True)
    for attempt in range(3):  # another test may take a port between its pick and nginx's bind
        port = unused_ports(1)[0]
        files = {NGINX_CONF_TARGET: text.replace("listen 80", f"listen 127.0.0.1:{port}")}
        nginx = _start(files, scratch / f"attempt-{attempt}", binary)
        if nginx is not None:
            try:
                yield port
            finally:
                stop(nginx)
            return
    raise AssertionError((scratch / f"attempt-{attempt}" / "stderr").read_text())


def stop(nginx: subprocess.Popen[bytes]) -> None:
    scratch = _SCRATCH_IN_ROOT.pop(nginx.pid, None)
    if scratch is None:
        nginx.terminate()
    else:  # unshare ignores SIGTERM while it waits: stop its nginx by the pid nginx wrote
        os.kill(int((scratch / "nginx.pid").read_text()), signal.SIGTERM)
    nginx.wait(timeout=10)
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)


def get(
    port: int,
    path: str = "/",
    auth: str | None = None,
    method: str = "GET",
    headers: Mapping[str, str] = NO_HEADERS,
) -> tuple[int, str]:
    """(status, body) of a plain HTTP request for HOST; `auth`: user:password, basic."""
    sent = dict(headers)
    if auth is not None:
        sent["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    status, body, _ = answer(port, method, path, sent)
    return status, body


def answer(
    port: int, method: str = "GET", path: str = "/", headers: Mapping[str, str] = NO_HEADERS
) -> tuple[int, str, dict[str, str]]:
    """(status, body, headers) of a plain HTTP request for HOST."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    return _exchange(connection, method, path, headers)


def request(
    port: int,
    path: str = "/",
    method: str = "GET",
    headers: Sequence[tuple[str, str]] = (),
    host: str = HOST,
    body: bytes | None = None,
) -> tuple[int, str, dict[str, str]]:
    """(status, body, answer headers); `headers` in order, a name may come twice; `body`
    sent after them (its Content-Length is the caller's)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    connection.putheader("Host", host)
    for name, value in headers:
        connection.putheader(name, value)
    connection.endheaders(body)
    response = connection.getresponse()
    answered = response.read().decode()
    connection.close()
    return response.status, answered, dict(response.getheaders())


def answer_tls(
    port: int, method: str = "GET", path: str = "/", headers: Mapping[str, str] = NO_HEADERS
) -> tuple[int, str, dict[str, str]]:
    """(status, body, headers) of an HTTPS request for HOST (its name in SNI; the stand-in
    certificate is not verified)."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    connection = _LoopbackHttps(HOST, port, timeout=5, context=context)
    return _exchange(connection, method, path, headers)


class _LoopbackHttps(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1 with the host's name in SNI."""

    def connect(self) -> None:
        raw = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]


def _exchange(
    connection: http.client.HTTPConnection, method: str, path: str, headers: Mapping[str, str]
) -> tuple[int, str, dict[str, str]]:
    connection.request(method, path, headers={"Host": HOST, **headers})
    response = connection.getresponse()
    body = response.read().decode()
    connection.close()
    received: dict[str, str] = {}
    for name, value in response.getheaders():  # a header sent twice: its values joined
        received[name] = f"{received[name]}, {value}" if name in received else value
    return response.status, body, received


class StubDns:
    """A DNS server on 127.0.0.1 (UDP) answering A queries for any name with `addresses`."""

    def __init__(self, addresses: Sequence[str]) -> None:
        self.addresses = tuple(addresses)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, client = self.sock.recvfrom(4096)
            except OSError:
                continue
            query = dns.message.from_wire(data)
            reply = dns.message.make_response(query)
            question = query.question[0]
            if question.rdtype == dns.rdatatype.A:
                reply.answer.append(
                    dns.rrset.from_text_list(question.name, 1, "IN", "A", list(self.addresses))
                )
            self.sock.sendto(reply.to_wire(), client)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


def one_router(
    upstream: int, middlewares: Mapping[str, str], path: str = "/", entrypoints: str = "web"
) -> dict[str, str]:
    """Traefik labels of one service: router `r` for HOST (and `path`) with every middleware
    `middlewares` defines (their labels), to service `s` on `upstream`."""
    rule = f"Host(`{HOST}`)" + (f" && PathPrefix(`{path}`)" if path != "/" else "")
    names = dict.fromkeys(key.split(".")[3] for key in middlewares)
    labels = {
        "traefik.enable": "true",
        "traefik.http.routers.r.rule": rule,
        "traefik.http.routers.r.entrypoints": entrypoints,
        "traefik.http.services.s.loadbalancer.server.port": str(upstream),
        **middlewares,
    }
    if names:
        labels["traefik.http.routers.r.middlewares"] = ",".join(names)
    return labels


@dataclass(frozen=True)
class Served:
    port: int  # plain HTTP
    tls_port: int  # HTTPS (HOST has a stand-in certificate)


# labels (of a service named "127.0.0.1": an address, no DNS, unless `service` is given, with
# `resolver` answering for it) → where nginx serves them
ServeEdge = Callable[..., Served]
