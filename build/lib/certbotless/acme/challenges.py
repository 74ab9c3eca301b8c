"""HTTP-01: the pending key authorizations and the HTTP server that answers for them.

Tokens live as files in one directory so that a `certbotless issue` run through `docker exec`
is answered by the daemon's responder in the same container.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

log = logging.getLogger(__name__)

CHALLENGE_PREFIX = "/.well-known/acme-challenge/"
# RFC 8555 §8.3: base64url, at least 128 bits of entropy; 43 chars is typical.
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{22,128}$")


def is_valid_token(token: str) -> bool:
    return bool(_TOKEN_RE.match(token))


class TokenStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def put(self, token: str, key_authorization: str) -> None:
        if not is_valid_token(token):
            raise ValueError(f"refusing malformed ACME token {token!r}")
        temporary = self.directory / f".{token}.tmp"
        temporary.write_text(key_authorization)
        os.replace(temporary, self.directory / token)

    def get(self, token: str) -> str | None:
        if not is_valid_token(token):
            return None
        try:
            return (self.directory / token).read_text()
        except FileNotFoundError:
            return None

    def remove(self, token: str) -> None:
        if is_valid_token(token):
            (self.directory / token).unlink(missing_ok=True)


class ChallengeResponder:
    """Serves /.well-known/acme-challenge/<token> and /healthz; everything else is 404."""

    def __init__(self, tokens: TokenStore, host: str, port: int) -> None:
        handler = _make_handler(tokens)
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="challenge-responder", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _make_handler(tokens: TokenStore) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = 10
        server_version = "certbotless"
        sys_version = ""

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._reply(200, b"ok\n")
                return
            answer = None
            if self.path.startswith(CHALLENGE_PREFIX):
                answer = tokens.get(self.path[len(CHALLENGE_PREFIX) :])
            if answer is None:
                self._reply(404, b"not found\n")
            else:
                self._reply(200, answer.encode())

        def _reply(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("responder: " + format, *args)

    return Handler


class ChallengeNotServed(Exception):
    """The edge does not hand our token back; telling the CA now would only burn its limits."""


class EdgeSelfCheck:
    """Fetches each token through every edge task, as the CA will, before the CA is told to look.

    `edge_dns_name` is `tasks.<edge service>`: Docker's DNS answers it with every task's address
    on the shared overlay network.
    """

    def __init__(self, edge_dns_name: str, timeout: float = 60.0, port: int = 80) -> None:
        self.edge_dns_name = edge_dns_name
        self.timeout = timeout
        self.port = port

    def wait_until_served(self, domain: str, token: str, key_authorization: str) -> None:
        deadline = time.monotonic() + self.timeout
        problem = "no attempt"
        while time.monotonic() < deadline:
            problem = self._problem(domain, token, key_authorization)
            if not problem:
                return
            time.sleep(0.25)
        raise ChallengeNotServed(
            f"{domain}: the edge ({self.edge_dns_name}:{self.port}) does not serve the HTTP-01 "
            f"token after {self.timeout:.0f} s ({problem}); check that nginx forwards "
            f"{CHALLENGE_PREFIX} to certbotless"
        )

    def _problem(self, domain: str, token: str, key_authorization: str) -> str:
        try:
            addresses = sorted(
                {a[4][0] for a in socket.getaddrinfo(self.edge_dns_name, self.port, socket.AF_INET)}
            )
        except OSError as error:
            return f"cannot resolve: {error}"
        for address in addresses:
            connection = http.client.HTTPConnection(str(address), self.port, timeout=3)
            try:
                connection.request("GET", CHALLENGE_PREFIX + token, headers={"Host": domain})
                response = connection.getresponse()
                body = response.read(4096).decode(errors="replace")
            except (OSError, http.client.HTTPException) as error:
                return f"{address}: {error}"
            finally:
                connection.close()
            if response.status != 200 or body.strip() != key_authorization:
                return f"{address}: HTTP {response.status}"
        return ""
