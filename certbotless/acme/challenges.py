"""HTTP-01: the pending key authorizations and the HTTP server that answers for them.

Tokens live as files in one directory so that a `certbotless issue` run through `docker exec`
is answered by the daemon's responder in the same container.
"""

from __future__ import annotations

import logging
import os
import re
import threading
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
