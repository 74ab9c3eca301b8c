"""A real HTTP receiver for alert webhooks: it keeps every JSON body POSTed to it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class WebhookReceiver(ThreadingHTTPServer):
    bodies: list[dict[str, Any]]

    @property
    def url(self) -> str:
        return "http://{}:{}/alerts".format(*self.server_address[:2])

    def wait_for(self, check: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = next((body for body in list(self.bodies) if check(body)), None)
            if found is not None:
                return found
            time.sleep(0.5)
        raise AssertionError(f"no such alert within {timeout:.0f} s; got {self.bodies}")


class _Handler(BaseHTTPRequestHandler):
    server: WebhookReceiver

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.server.bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def webhook_receiver(host: str = "127.0.0.1") -> Iterator[WebhookReceiver]:
    server = WebhookReceiver((host, 0), _Handler)
    server.bodies = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
