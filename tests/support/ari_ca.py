"""An ACME CA that speaks ARI (RFC 9773) and profiles: a TLS proxy in front of a real Pebble.

Pebble 2.4 has neither, so this server adds them where they live in the protocol and forwards
everything else. It keeps the client's Host header, so Pebble writes every URL (and checks every
JWS `url`) against this proxy: the client only ever talks to the proxy.

- The directory gains `renewalInfo` and `meta.profiles`.
- `GET renewal-info/<id>` answers the window set in `windows` (or a default one), with
  `Retry-After` and an `explanationURL`; each request is recorded.
- newOrder payloads are recorded; a `replaces` naming an already replaced certificate gets the
  `alreadyReplaced` problem; an unknown `profile` gets `invalidProfile`; an order for a name in
  `rate_limited` gets `rateLimited` with a Retry-After of `RATE_LIMIT_RETRY_AFTER` seconds.
- `faults` misbehave once each, for the next request whose path starts with theirs: answer
  instead of Pebble (a 5xx, a bare 429, a problem), or let Pebble act and then lose or alter its
  answer (what a client sees when a reply times out, or a CA sends what it should not).
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

RENEWAL_INFO_PATH = "/renewal-info/"
PROFILES = {"classic": "the default 90-day certificate", "shortlived": "about six days"}
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}
# Not an hour: a client that ignored the header and waited its own default would go unnoticed.
RATE_LIMIT_RETRY_AFTER = 1234


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Fault:
    """One misbehaviour for the next request whose path starts with `path`. `answer` makes the
    reply from Pebble's (None unless `reaches_pebble`: then Pebble acts on the request first)."""

    path: str
    answer: Callable[[Reply | None], Reply]
    reaches_pebble: bool = False


def failure(
    path: str, status: int = 503, *, reaches_pebble: bool = False, retry_after: int | None = None
) -> Fault:
    """A bare error page (no problem document) instead of Pebble's answer; with
    `reaches_pebble`, the request took effect and only its answer was lost."""
    headers = {"Content-Type": "text/html"}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    page = Reply(status, headers, b"<html>upstream trouble</html>")
    return Fault(path, lambda _: page, reaches_pebble)


def problem(path: str, kind: str, detail: str, status: int = 400) -> Fault:
    """A problem document instead of Pebble's answer."""
    body = json.dumps({"type": f"urn:ietf:params:acme:error:{kind}", "detail": detail})
    reply = Reply(status, {"Content-Type": "application/problem+json"}, body.encode())
    return Fault(path, lambda _: reply)


def edited(path: str, edit: Callable[[dict[str, Any]], None]) -> Fault:
    """Pebble's JSON answer, changed in place by `edit`."""

    def answer(reply: Reply | None) -> Reply:
        assert reply is not None
        document = json.loads(reply.body)
        edit(document)
        return Reply(reply.status, reply.headers, json.dumps(document).encode())

    return Fault(path, answer, reaches_pebble=True)


def without_header(path: str, header: str) -> Fault:
    """Pebble's answer without `header`."""

    def answer(reply: Reply | None) -> Reply:
        assert reply is not None
        kept = {k: v for k, v in reply.headers.items() if k.lower() != header.lower()}
        return Reply(reply.status, kept, reply.body)

    return Fault(path, answer, reaches_pebble=True)


@dataclass
class AriCaState:
    windows: dict[str, tuple[datetime, datetime]] = field(default_factory=dict)
    retry_after_seconds: int = 120
    renewal_info_requests: list[str] = field(default_factory=list)
    new_orders: list[dict[str, Any]] = field(default_factory=list)
    replaced: set[str] = field(default_factory=set)
    rate_limited: set[str] = field(default_factory=set)
    faults: list[Fault] = field(default_factory=list)
    _faults_lock: threading.Lock = field(default_factory=threading.Lock)

    def put_back(self, fault: Fault) -> None:
        with self._faults_lock:
            self.faults.insert(0, fault)

    def take_fault(self, path: str) -> Fault | None:
        with self._faults_lock:
            for fault in self.faults:
                if path.startswith(fault.path):
                    self.faults.remove(fault)
                    return fault
        return None


class AriCa:
    def __init__(self, pebble_host: str, pebble_port: int, tls_dir: Path, port: int) -> None:
        self.state = AriCaState()
        self.pebble = (pebble_host, pebble_port)
        self.upstream_tls = ssl.create_default_context(cafile=str(tls_dir / "ca.pem"))
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.server.daemon_threads = True
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(tls_dir / "listener.pem", tls_dir / "listener.key")
        self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def directory_url(self) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}/dir"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        connection = http.client.HTTPSConnection(*self.pebble, context=self.upstream_tls)
        try:
            connection.request(method, path, body=body or None, headers=headers)
            response = connection.getresponse()
            return Reply(response.status, dict(response.getheaders()), response.read())
        finally:
            connection.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        ca = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                if self.path.startswith(RENEWAL_INFO_PATH):
                    self._renewal_info(self.path[len(RENEWAL_INFO_PATH) :])
                elif self.path == "/dir":
                    self._directory()
                else:
                    self._proxy(b"")

            def do_HEAD(self) -> None:
                self._proxy(b"")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path == "/order-plz" and self._refuse_order(body):
                    return
                status = self._proxy(body)
                replaces = (
                    ca.state.new_orders[-1].get("replaces") if self.path == "/order-plz" else None
                )
                if status == 201 and replaces:
                    # Only an order the CA accepted replaces anything (a badNonce retry must not
                    # find its own first attempt recorded).
                    ca.state.replaced.add(replaces)

            def _directory(self) -> None:
                upstream = ca.forward("GET", "/dir", dict(self.headers), b"")
                directory = json.loads(upstream.body)
                directory["renewalInfo"] = f"https://{self.headers['Host']}{RENEWAL_INFO_PATH}"
                directory.setdefault("meta", {})["profiles"] = PROFILES
                self._send(
                    upstream.status, {"Content-Type": "application/json"}, json.dumps(directory)
                )

            def _renewal_info(self, cert_id: str) -> None:
                ca.state.renewal_info_requests.append(cert_id)
                now = datetime.now(UTC)
                start, end = ca.state.windows.get(
                    cert_id, (now + timedelta(days=30), now + timedelta(days=32))
                )
                info = {
                    "suggestedWindow": {"start": _rfc3339(start), "end": _rfc3339(end)},
                    "explanationURL": "https://ca.example.test/why",
                }
                self._send(
                    200,
                    {
                        "Content-Type": "application/json",
                        "Retry-After": str(ca.state.retry_after_seconds),
                    },
                    json.dumps(info),
                )

            def _refuse_order(self, body: bytes) -> bool:
                payload = json.loads(_b64url_decode(json.loads(body)["payload"]))
                ca.state.new_orders.append(payload)
                replaces = payload.get("replaces")
                profile = payload.get("profile")
                names = {identifier["value"] for identifier in payload["identifiers"]}
                if names & ca.state.rate_limited:
                    self._problem("rateLimited", "too many certificates for this name")
                    return True
                if profile and profile not in PROFILES:
                    self._problem("invalidProfile", f"no profile {profile!r}")
                    return True
                if replaces and replaces in ca.state.replaced:
                    self._problem("alreadyReplaced", f"{replaces} was already replaced")
                    return True
                return False

            def _problem(self, kind: str, detail: str) -> None:
                problem = {"type": f"urn:ietf:params:acme:error:{kind}", "detail": detail}
                headers = {"Content-Type": "application/problem+json"}
                status = {"alreadyReplaced": 409, "rateLimited": 429}.get(kind, 400)
                if kind == "rateLimited":
                    headers["Retry-After"] = str(RATE_LIMIT_RETRY_AFTER)
                self._send(status, headers, json.dumps(problem))

            def _proxy(self, body: bytes) -> int:
                fault = ca.state.take_fault(self.path)
                reply = None
                if fault is None or fault.reaches_pebble:
                    reply = ca.forward(self.command, self.path, dict(self.headers), body)
                if fault is not None and reply is not None and b"badNonce" in reply.body:
                    # Pebble refused the nonce (5% of the time): the request did nothing, so the
                    # fault waits for the client's retry.
                    ca.state.put_back(fault)
                elif fault is not None:
                    reply = fault.answer(reply)
                assert reply is not None
                kept = {k: v for k, v in reply.headers.items() if k.lower() not in HOP_BY_HOP}
                self._send(reply.status, kept, reply.body)
                return reply.status

            def _send(self, status: int, headers: dict[str, str], body: bytes | str) -> None:
                data = body.encode() if isinstance(body, str) else body
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
