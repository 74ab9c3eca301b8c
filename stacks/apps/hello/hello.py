"""Answers every GET with a line naming this task and the request, like the seeds' demo APIs."""

import json
import os
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps(
            {
                "app": os.environ.get("HELLO_NAME", "hello"),
                "task": socket.gethostname(),
                "host": self.headers.get("Host"),
                "path": self.path,
                "forwarded_proto": self.headers.get("X-Forwarded-Proto"),
            }
        ).encode() + b"\n"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8000"))), Hello).serve_forever()
