"""No secret reaches any output: a failing alert run (webhook and SMTP, each to a closed port
and to a server that refuses), a traceback, `doctor` and the settings' repr and errors, with
every log record captured at DEBUG. Loopback only, on ports picked at random."""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from typing import Any, cast

import docker.errors
import pytest
import requests
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Session

from certbotless.daemon.alerts import Alerter, alerts_for, channels_for
from certbotless.model import PassReport
from certbotless.ops.doctor import Doctor
from certbotless.redaction import REDACTED, Redactor, redact_logs
from certbotless.settings import Settings, SettingsError
from certbotless.swarm.api import Swarm

HOOK_TOKEN = "hooktoken-7f3a9c2e"
QUERY_TOKEN = "querysecret-51d0b8"
PASSWORD = "smtp-pw-e41b%x"  # in the URL as smtp-pw-e41b%25x
SECRETS = (HOOK_TOKEN, QUERY_TOKEN, PASSWORD, "smtp-pw-e41b%25x")
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Refuses(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(403)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def refusing_webhook() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refuses)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


class _RefusesLogins:
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Any) -> str:
        return "250 OK"


@contextmanager
def refusing_mail_server() -> Iterator[int]:
    port = closed_port()
    controller = Controller(
        _RefusesLogins(), hostname="127.0.0.1", port=port, auth_require_tls=False,
        authenticator=lambda *_: AuthResult(success=False, handled=False),
    )  # fmt: skip
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def settings_for(webhook_port: int, smtp_port: int) -> Settings:
    return Settings.from_env({
        "CERTBOTLESS_ALERT_WEBHOOK":
            f"http://127.0.0.1:{webhook_port}/hooks/{HOOK_TOKEN}?token={QUERY_TOKEN}",
        "CERTBOTLESS_SMTP_URL": f"smtp+insecure://ops:smtp-pw-e41b%25x@127.0.0.1:{smtp_port}",
        "CERTBOTLESS_ALERT_EMAIL": "ops@example.test",
    })  # fmt: skip


def deliver_alerts(settings: Settings) -> None:
    alerter = Alerter(channels_for(settings), retry_delay=0.01)
    alerter.update(alerts_for(PassReport(rollout_error="rolled back"), [], NOW, NOW))
    alerter.flush()


class _NoDocker:
    def engine_info(self) -> dict[str, Any]:
        raise docker.errors.DockerException("no docker here")


def show_everything_else(settings: Settings) -> None:
    """What else shows settings or errors: a traceback (logged, and uncaught), doctor as the
    command prints it, the settings' repr, a settings error."""
    log = logging.getLogger("certbotless.test")
    try:
        requests.post(cast(str, settings.alert_webhook), json={}, timeout=2)
    except requests.RequestException:
        log.exception("something failed")
        sys.excepthook(*sys.exc_info())
    doctor = Doctor(settings, cast(Swarm, _NoDocker()), None, None)  # type: ignore[arg-type]
    for check in doctor.run():
        print(f"{'ok  ' if check.ok else 'FAIL'} {check.what}: {check.detail} {check.fix}")
    print(repr(settings), settings)
    log.info("settings: %r", settings)
    try:
        Settings.from_env({"CERTBOTLESS_ALERT_WEBHOOK": f"hooks.example.com/{HOOK_TOKEN}"})
    except SettingsError as error:
        print(f"certbotless: {error}", file=sys.stderr)


def test_no_secret_in_any_output_of_a_failing_alert_run(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    with refusing_webhook() as webhook_port, refusing_mail_server() as smtp_port:
        for ports in ((closed_port(), closed_port()), (webhook_port, smtp_port)):
            settings = settings_for(*ports)
            undo = redact_logs(Redactor(settings.secrets))  # as `certbotless` does at start
            try:
                deliver_alerts(settings)
                show_everything_else(settings)
            finally:
                undo()
    out, err = capfd.readouterr()
    records = "\n".join(f"{r.getMessage()}\n{r.exc_text or ''}" for r in caplog.records)
    everything = "\n".join([caplog.text, records, out, err])
    assert [s for s in SECRETS if s in everything] == []
    # It did fail, every way, and said so.
    failures = [r.getMessage() for r in caplog.records if "failed 4 times" in r.getMessage()]
    assert len(failures) == 4, "2 channels x 2 runs, each given up after 4 attempts"
    assert any("HTTP 403" in f for f in failures) and any("Authentication" in f for f in failures)
    assert "Connection refused" in everything and REDACTED in everything
    assert "alerts: webhook 127.0.0.1, e-mail via 127.0.0.1" in out


def test_the_redactor_replaces_the_longest_secret_first() -> None:
    redact = Redactor(["abcd", "abcdefgh", "xy"])
    assert redact("abcdefgh abcd xy") == f"{REDACTED} {REDACTED} xy"
