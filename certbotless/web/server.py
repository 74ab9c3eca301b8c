"""The status page's HTTP server: its own listener (never the challenge responder's), every
request admitted by the `Gate` first, actions only when enabled and only with the visitor's
CSRF token from a same-origin form."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Container
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Protocol
from urllib.parse import parse_qs, urlencode, urlsplit

from jinja2 import Environment, PackageLoader, select_autoescape

from certbotless import __version__
from certbotless.settings import StatusPage
from certbotless.web.access import Gate, Refused, Visitor
from certbotless.web.connections import BoundedHTTPServer, DeadlineHandler
from certbotless.web.overview import (
    STATES,
    Filter,
    StatusSource,
    overview,
    overview_json,
    pass_json,
)
from certbotless.web.routers import routers_json

log = logging.getLogger(__name__)

REFRESH_SECONDS = 30
MAX_FORM_BYTES = 4096
ACTIONS = ("renew", "retry", "revoke")
_HEADERS = {
    # No script at all; forms post to this origin only; never framed (clickjacking).
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # same-origin, not no-referrer: under no-referrer browsers send `Origin: null` on our own
    # forms, which the CSRF check must refuse.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class Actions(Protocol):
    """What the page's buttons ask of the daemon; each returns what to tell the visitor."""

    def renew(self, name: str, who: str) -> str: ...

    def retry(self, name: str, who: str) -> str: ...

    def revoke(self, name: str, who: str, serial: str) -> str:
        """Revoke `name` if `serial` (the one the visitor saw) is still the one in use."""


class StatusServer:
    """Serves the page on `page.listen` from a thread of its own."""

    def __init__(
        self,
        page: StatusPage,
        source: StatusSource,
        actions: Actions | None,
        gate: Gate | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        edge: Container[str] = frozenset(),
    ) -> None:
        """`edge`: the addresses of the edge's nginx tasks (web.peers.EdgePeers)."""
        self.page = page
        self.source = source
        self.actions = actions if page.actions else None
        self.gate = gate or Gate(page, edge=edge)
        self.clock = clock
        self.templates = Environment(
            loader=PackageLoader("certbotless.web", "templates"),
            autoescape=select_autoescape(default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["when"] = _when
        self.templates.filters["ago"] = lambda value: _ago(value, self.clock())
        handler = type("Handler", (_Handler,), {"server_app": self})
        self.http = BoundedHTTPServer(page.listen, handler)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.http.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(target=self.http.serve_forever, name="status-page",
                                        daemon=True)  # fmt: skip
        self._thread.start()

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()

    def html(self, visitor: Visitor, query: dict[str, list[str]]) -> str:
        started = time.perf_counter()
        view = overview(self.source, Filter.from_query(query), self.clock())
        text = self.templates.get_template("status.html").render(
            view=view,
            states=list(STATES),
            visitor=visitor,
            csrf=self.gate.csrf_token(visitor),
            actions=self.actions is not None,
            refresh=REFRESH_SECONDS,
            release=__version__,
            # Refreshing keeps the filter, not the message of an action.
            refresh_url="/?"
            + urlencode(
                {"q": view.filter.q, "state": view.filter.state, "router": view.filter.router}
            ),
            done=(query.get("done") or [""])[0][:300],
        )
        log.debug("status page rendered in %.1f ms", (time.perf_counter() - started) * 1000)
        return text

    def api(self, path: str, query: dict[str, list[str]]) -> object | None:
        """The JSON API (versioned in the path); None for an unknown path. The routers' answer
        takes the page's `router` filter."""
        view = overview(self.source, Filter(router=Filter.from_query(query).router), self.clock())
        if path == "/api/v1/routers":
            return routers_json(view.routers)
        if path == "/api/v1/certificates":
            return view.certificates_json()
        if path == "/api/v1/passes":
            return [pass_json(record) for record in view.passes]
        if path == "/api/v1/overview":
            return overview_json(view)
        return None

    def act(self, visitor: Visitor, form: dict[str, list[str]]) -> str:
        """One action from the page's form, after the CSRF check; what to tell the visitor."""
        if self.actions is None:
            raise Refused(403, "actions are disabled (CERTBOTLESS_STATUS_ACTIONS)")
        field = {key: (values or [""])[0] for key, values in form.items()}
        if not self.gate.csrf_ok(visitor, field.get("csrf", "")):
            raise Refused(403, "the form's token is missing or not yours: reload the page")
        action, name = field.get("action", ""), field.get("name", "")
        if action not in ACTIONS or name not in {r.name for r in self.source.listing()}:
            raise Refused(400, "unknown action or certificate")
        if action == "revoke" and field.get("confirm", "") != name:
            return f"not revoked: type the certificate's name ({name}) to confirm"
        log.warning("status page: %s asked to %s %s", visitor.name, action, name)
        if action == "revoke":
            return self.actions.revoke(name, visitor.name, field.get("serial", ""))
        return str(getattr(self.actions, action)(name, visitor.name))


class _Handler(DeadlineHandler):
    server_app: StatusServer
    _trusted_headers: dict[str, str]  # the request's, as the gate believes them
    server_version = "certbotless-status"
    sys_version = ""

    def log_message(self, format: str, *args: object) -> None:
        log.debug("status page: %s " + format, self.client_address[0], *args)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        visitor = self._admitted()
        if visitor is None:
            return
        app = self.server_app
        if url.path == "/":
            self._answer(200, app.html(visitor, parse_qs(url.query)).encode(),
                         "text/html; charset=utf-8")  # fmt: skip
            return
        found = app.api(url.path, parse_qs(url.query))
        if found is None:
            self._answer(404, b"not found\n", "text/plain; charset=utf-8")
            return
        body = json.dumps(found, indent=1).encode()
        self._answer(200, body, "application/json")

    def do_POST(self) -> None:
        visitor = self._admitted()
        if visitor is None:
            return
        if urlsplit(self.path).path != "/actions":
            self._answer(404, b"not found\n", "text/plain; charset=utf-8")
            return
        try:
            self._same_origin()
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_FORM_BYTES:
                raise Refused(400, "the form is empty or too large")
            form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
            said = self.server_app.act(visitor, form)
        except Refused as refused:
            self._refuse(refused)
            return
        self._answer(303, b"", "text/plain", {"Location": "/?" + urlencode({"done": said})})

    def _same_origin(self) -> None:
        """Browsers say where a form came from: a cross-site one is refused before its token
        is even looked at. The host is the edge's X-Forwarded-Host, else the request's own."""
        if self.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            raise Refused(403, "cross-site request refused")
        origin = self.headers.get("Origin")
        trusted = self._trusted_headers
        host = trusted.get("X-Forwarded-Host") or trusted.get("Host", "")
        if origin is not None and origin != "null" and urlsplit(origin).netloc != host:
            raise Refused(403, "cross-site request refused")
        if origin == "null":
            raise Refused(403, "cross-site request refused")

    def _admitted(self) -> Visitor | None:
        gate, peer = self.server_app.gate, self.client_address[0]
        try:
            headers = {name.title(): value for name, value in self.headers.items()}
            self._trusted_headers = gate.trusted_headers(peer, headers)
            host, port = self.connection.getsockname()[:2]
            listener = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            return gate.admit(peer, headers, self.path, self.command, listener)
        except Refused as refused:
            self._refuse(refused)
            return None

    def _refuse(self, refused: Refused) -> None:
        extra = {}
        if refused.basic_challenge:
            extra["WWW-Authenticate"] = 'Basic realm="certbotless status", charset="UTF-8"'
        phrase = HTTPStatus(refused.status).phrase
        self._answer(refused.status, f"{phrase}: {refused}\n".encode(),
                     "text/plain; charset=utf-8", extra)  # fmt: skip

    def _answer(
        self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        for name, value in {**_HEADERS, **(extra or {}), "Content-Type": content_type}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _when(value: datetime | None) -> str:
    return "—" if value is None else f"{value:%Y-%m-%d %H:%M} UTC"


def _ago(value: datetime | None, now: datetime) -> str:
    """'in 3 d', '5 min ago': how far from now."""
    if value is None:
        return ""
    seconds = (value - now).total_seconds()
    span = abs(seconds)
    text = (f"{span / 86400:.0f} d" if span >= 172800 else f"{span / 3600:.0f} h"
            if span >= 7200 else f"{span / 60:.0f} min")  # fmt: skip
    return f"in {text}" if seconds > 0 else f"{text} ago"
