"""A tiny HTTP app standing in for the seeds' services. HELLO_ROLE picks what it does:

- `api` (default): answers every request with JSON naming this task and the request; a POST body
  is read and its size reported (the upload route);
- `static`: a static site: `/` is a page, anything else is 404 (so error pages can replace it);
- `errors`: the error-page site: `/<status>.html` is a page for that status;
- `auth`: forward auth: 200 when `Authorization: Bearer $AUTH_TOKEN`, 403 for
  `Bearer forbidden`, else 401;
- `websocket`: answers a WebSocket upgrade with 101, then echoes every byte it receives.
"""

import base64
import hashlib
import json
import os
import re
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROLE = os.environ.get("HELLO_ROLE", "api")
NAME = os.environ.get("HELLO_NAME", "hello")
TOKEN = os.environ.get("AUTH_TOKEN", "let-me-in")


class Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if ROLE == "static":
            if self.path in ("/", "/index.html"):
                self._reply(200, "text/html", f"<h1>{NAME}</h1>\n")
            else:
                self._reply(404, "text/html", "plain 404 from the static site\n")
        elif ROLE == "errors":
            match = re.fullmatch(r"/(\d{3})\.html", self.path)
            if match:
                self._reply(200, "text/html", f"<h1>custom error page {match.group(1)}</h1>\n")
            else:
                self._reply(404, "text/html", "no such error page\n")
        elif ROLE == "auth":
            given = self.headers.get("Authorization")
            status = {f"Bearer {TOKEN}": 200, "Bearer forbidden": 403}.get(given or "", 401)
            self._reply(status, "text/plain", f"{status}\n")
        elif ROLE == "websocket" and self.headers.get("Upgrade", "").lower() == "websocket":
            self._echo_websocket()
        else:
            self._reply(200, "application/json", self._describe(received=0))

    def do_POST(self) -> None:
        remaining = int(self.headers.get("Content-Length", "0"))
        received = 0
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                break
            received += len(chunk)
            remaining -= len(chunk)
        self._reply(200, "application/json", self._describe(received))

    def _describe(self, received: int) -> str:
        return (
            json.dumps(
                {
                    "app": NAME,
                    "task": socket.gethostname(),
                    "host": self.headers.get("Host"),
                    "path": self.path,
                    "forwarded_proto": self.headers.get("X-Forwarded-Proto"),
                    "forwarded_for": self.headers.get("X-Forwarded-For"),
                    "received_bytes": received,
                }
            )
            + "\n"
        )

    def _echo_websocket(self) -> None:
        key = self.headers.get("Sec-WebSocket-Key", "")
        accept = hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", base64.b64encode(accept).decode())
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        while chunk := self.connection.recv(4096):
            self.connection.sendall(chunk)

    def _reply(self, status: int, content_type: str, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8000"))), Hello).serve_forever()
