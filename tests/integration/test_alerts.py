"""Alerts through a real SMTP server (aiosmtpd) and a real HTTP receiver on loopback."""

import ssl
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from ipaddress import ip_address
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from certbotless.acme.keys import private_key_pem
from certbotless.daemon.alerts import (
    AlertDeliveryError,
    Alerter,
    EmailChannel,
    WebhookChannel,
    alerts_for,
    pass_failed_alert,
)
from certbotless.model import LabelProblem, PassReport
from tests.support.factories import stored_cert
from tests.support.ports import unused_port
from tests.support.webhook import WebhookReceiver, webhook_receiver

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.logins: list[str] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.messages.append(message_from_bytes(envelope.content))  # type: ignore[arg-type]
        return "250 OK"

    def authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                     data: Any) -> AuthResult:  # fmt: skip
        assert isinstance(data, LoginPassword)
        self.logins.append(data.login.decode())
        return AuthResult(success=data.password == b"s3cret")

    def subjects(self) -> list[str]:
        return sorted(str(m["Subject"]) for m in self.messages)


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = unused_port()
    controller = Controller(
        box, hostname="127.0.0.1", port=port, authenticator=box.authenticate,
        auth_require_tls=False,
    )  # fmt: skip
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as server:
        yield server


def broken_pass() -> PassReport:
    return PassReport(
        failed={"a.example.test": "a.example.test: validation failed: 404"},
        problems=(LabelProblem("shop", "certbotless.port", "http", "must be a port number"),),
        rollout_error="edge: update rollback_completed",
        ca_unreachable="POST /new-order failed 6 times",
    )


EXPIRING = stored_cert(name="old.example.test", domains=("old.example.test",),
                       issued=NOW - timedelta(days=80))  # fmt: skip


def test_each_alert_arrives_once_then_daily_then_resolved(
    mailbox: tuple[Mailbox, int], receiver: WebhookReceiver
) -> None:
    box, port = mailbox
    clock = [NOW]
    alerter = Alerter(
        [
            WebhookChannel(receiver.url),
            EmailChannel(f"smtp+insecure://ops:s3cret@127.0.0.1:{port}?from=cbl@example.test",
                         ["ops@example.test"]),
        ],
        clock=lambda: clock[0],
    )  # fmt: skip

    def run_pass(report: PassReport, certs: list[Any]) -> None:
        alerter.update(alerts_for(report, certs, clock[0], clock[0] + timedelta(minutes=15)))
        alerter.flush()

    run_pass(broken_pass(), [EXPIRING])
    fired = sorted(b["kind"] for b in receiver.bodies)
    # The CA has been unreachable for less than an hour: not worth waking anyone yet.
    assert fired == ["expiring", "label_problem", "renewal_failed", "rollout_failed"]
    assert box.subjects() == sorted(f"[certbotless] {b['title']}" for b in receiver.bodies)
    assert set(box.logins) == {"ops"}
    renewal = next(b for b in receiver.bodies if b["kind"] == "renewal_failed")
    assert "validation failed: 404" in renewal["text"] and "Next attempt around" in renewal["text"]

    for _ in range(4):  # more passes, same problems: nothing new
        clock[0] += timedelta(minutes=15)
        run_pass(broken_pass(), [EXPIRING])
    assert len(receiver.bodies) == 4 + 1, "only the CA alert, now an hour old, is new"
    assert receiver.bodies[-1]["kind"] == "ca_unreachable"

    clock[0] += timedelta(days=1)
    run_pass(broken_pass(), [EXPIRING])
    reminders = [b for b in receiver.bodies[5:] if b["title"].startswith("still: ")]
    assert len(reminders) == 5

    run_pass(PassReport(), [])
    resolved = [b for b in receiver.bodies if b["state"] == "resolved"]
    assert sorted(b["key"] for b in resolved) == [
        "ca_unreachable", "expiring:old.example.test", "label_problem:shop:certbotless.port",
        "renewal_failed:a.example.test", "rollout_failed",
    ]  # fmt: skip
    assert len(box.messages) == len(receiver.bodies)
    assert all(m["To"] == "ops@example.test" for m in box.messages)


def test_a_changed_problem_is_news(receiver: WebhookReceiver) -> None:
    alerter = Alerter([WebhookChannel(receiver.url)])
    first = PassReport(failed={"a.example.test": "a: validation failed"})
    second = PassReport(failed={"a.example.test": "a: rate limited"})
    for report in (first, first, second, second):
        alerter.update(alerts_for(report, [], NOW, NOW))
    alerter.flush()
    assert [b["text"].splitlines()[0] for b in receiver.bodies] == [
        "a: validation failed",
        "a: rate limited",
    ]


def test_slack_webhooks_get_a_text_body(receiver: WebhookReceiver) -> None:
    alerter = Alerter([WebhookChannel(receiver.url, slack=True)])
    alerter.update(alerts_for(PassReport(rollout_error="rolled back"), [], NOW, NOW))
    alerter.flush()
    assert receiver.bodies == [{"text": "*nginx rollout failed*\nrolled back"}]


def test_a_labels_words_reach_slack_as_text_not_markup(receiver: WebhookReceiver) -> None:
    """A label's value in an alert once reached Slack as markup: `<!channel>` pinged everyone,
    `<https://…|docs>` disguised a link."""
    error = "bad value <!channel> <https://evil.example|docs> & more"
    alerter = Alerter([WebhookChannel(receiver.url, slack=True)])
    alerter.update(alerts_for(PassReport(rollout_error=error), [], NOW, NOW))
    alerter.flush()
    (body,) = receiver.bodies
    assert "&lt;!channel&gt; &lt;https://evil.example|docs&gt; &amp; more" in str(body["text"])
    assert "<!channel>" not in str(body["text"])


def test_a_dead_channel_is_retried_and_never_blocks(
    mailbox: tuple[Mailbox, int], caplog: pytest.LogCaptureFixture
) -> None:
    box, port = mailbox
    alerter = Alerter(
        [
            WebhookChannel("http://127.0.0.1:9/nobody-listens", timeout=1),
            EmailChannel(f"smtp+insecure://127.0.0.1:{port}", ["ops@example.test"]),
        ],
        retry_delay=0.05,
    )
    started = time.monotonic()
    alerter.update(alerts_for(PassReport(rollout_error="rolled back"), [], NOW, NOW))
    assert time.monotonic() - started < 0.1, "update() hands delivery to a worker"
    alerter.flush()
    assert box.subjects() == ["[certbotless] nginx rollout failed"]
    failures = [r.message for r in caplog.records if "webhook 127.0.0.1 failed" in r.message]
    assert len(failures) == 4 and "trying again after the next pass" in failures[-1]


def test_a_channel_that_was_down_is_told_at_the_next_pass(
    mailbox: tuple[Mailbox, int], receiver: WebhookReceiver
) -> None:
    """Nothing is lost: what a dead channel never took is sent once it is back, and the channel
    that took it the first time is not told twice."""
    box, port = mailbox
    webhook = WebhookChannel(receiver.url)
    alive_url, webhook.url = webhook.url, "http://127.0.0.1:9/down"
    alerter = Alerter(
        [webhook, EmailChannel(f"smtp+insecure://127.0.0.1:{port}", ["ops@example.test"])],
        retry_delay=0.01,
    )
    report = PassReport(rollout_error="rolled back")
    alerter.update(alerts_for(report, [], NOW, NOW))
    alerter.flush()
    assert receiver.bodies == [] and len(box.messages) == 1
    webhook.url = alive_url
    alerter.update(alerts_for(report, [], NOW, NOW))
    alerter.flush()
    assert [b["title"] for b in receiver.bodies] == ["nginx rollout failed"]
    assert len(box.messages) == 1


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context for 127.0.0.1 and a client context that trusts only it."""
    folder = tmp_path_factory.mktemp("smtp-tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(datetime.now(UTC) + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    (folder / "cert.pem").write_bytes(cert.public_bytes(Encoding.PEM))
    (folder / "key.pem").write_bytes(private_key_pem(key))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    client = ssl.create_default_context(cafile=str(folder / "cert.pem"))
    return server, client


def test_passwords_only_go_over_tls_starttls_and_smtps(
    tls_files: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_tls, client_tls = tls_files
    alert = alerts_for(PassReport(rollout_error="rolled back"), [], NOW, NOW)
    for scheme in ("smtp", "smtps"):
        box = Mailbox()
        port = unused_port()
        # smtps: TLS from the first byte (aiosmtpd does not see that, hence auth_require_tls).
        tls: dict[str, Any] = (
            {"tls_context": server_tls, "require_starttls": True}
            if scheme == "smtp"
            else {"ssl_context": server_tls, "auth_require_tls": False}
        )
        controller = Controller(
            box, hostname="127.0.0.1", port=port, authenticator=box.authenticate, **tls
        )
        controller.start()
        try:
            channel = EmailChannel(f"{scheme}://ops:s3cret@127.0.0.1:{port}", ["ops@test"],
                                   tls=client_tls)  # fmt: skip
            channel.send("t", "x", alert[0], resolved=False)
        finally:
            controller.stop()
        assert (box.logins, len(box.messages)) == (["ops"], 1), scheme

    plain = Mailbox()
    port = unused_port()
    controller = Controller(plain, hostname="127.0.0.1", port=port,
                            authenticator=plain.authenticate, auth_require_tls=False)  # fmt: skip
    controller.start()
    try:
        # A channel raises words free of its secrets (SMTPNotSupportedError's, here).
        with pytest.raises(AlertDeliveryError, match=r"SMTPNotSupportedError.*no STARTTLS"):
            EmailChannel(f"smtp://ops:s3cret@127.0.0.1:{port}", ["ops@test"]).send(
                "t", "x", alert[0], resolved=False
            )
    finally:
        controller.stop()
    assert plain.logins == [], "the password never went out in clear"


def test_expiry_alerts_are_relative_to_the_lifetime() -> None:
    six_days = stored_cert(name="short.example.test", issued=NOW - timedelta(days=4, hours=12),
                           lifetime=timedelta(days=6))  # fmt: skip
    ninety = stored_cert(name="long.example.test", issued=NOW - timedelta(days=70))
    assert alerts_for(PassReport(), [six_days, ninety], NOW, NOW) == []
    later = NOW + timedelta(days=6)
    kinds = {a.key for a in alerts_for(PassReport(), [six_days, ninety], later, later)}
    assert kinds == {"expiring:short.example.test", "expiring:long.example.test"}


class NotedInMemory:
    """AlertMemory as the swarm keeps it (a dict of label suffix → text), minus the swarm."""

    def __init__(self) -> None:
        self.entries: dict[str, str] = {}

    def load_alert_memory(self) -> dict[str, str]:
        return dict(self.entries)

    def save_alert_memory(self, entries: Mapping[str, str]) -> None:
        self.entries = dict(entries)


def test_a_restarted_alerter_repeats_nothing_and_still_resolves(receiver: WebhookReceiver) -> None:
    memory = NotedInMemory()
    report = broken_pass()
    first = Alerter([WebhookChannel(receiver.url)], clock=lambda: NOW, memory=memory)
    first.update(alerts_for(report, [], NOW, NOW))
    first.flush()
    said = len(receiver.bodies)
    assert said == 3 and len(memory.entries) == 4, "3 said, and when the CA was first unreachable"
    # A new process (a restart, another manager): same problems, nothing new to say…
    later = NOW + timedelta(minutes=30)
    second = Alerter([WebhookChannel(receiver.url)], clock=lambda: later, memory=memory)
    second.update(alerts_for(report, [], later, later))
    second.flush()
    assert len(receiver.bodies) == said
    # …the CA's hour counts from the first sighting before the restart…
    hour_on = NOW + timedelta(hours=1, minutes=1)
    third = Alerter([WebhookChannel(receiver.url)], clock=lambda: hour_on, memory=memory)
    third.update(alerts_for(report, [], hour_on, hour_on))
    third.flush()
    assert [b["kind"] for b in receiver.bodies[said:]] == ["ca_unreachable"]
    # …and what was fixed meanwhile is resolved.
    fourth = Alerter([WebhookChannel(receiver.url)], clock=lambda: hour_on, memory=memory)
    fourth.update(alerts_for(PassReport(), [], hour_on, hour_on))
    fourth.flush()
    assert sorted(b["key"] for b in receiver.bodies if b["state"] == "resolved") == [
        "ca_unreachable", "label_problem:shop:certbotless.port",
        "renewal_failed:a.example.test", "rollout_failed",
    ]  # fmt: skip
    assert memory.entries == {}


def test_a_pass_that_broke_off_resolves_nothing(receiver: WebhookReceiver) -> None:
    alerter = Alerter([WebhookChannel(receiver.url)])
    alerter.update(alerts_for(PassReport(rollout_error="rolled back"), [], NOW, NOW))
    alerter.update([pass_failed_alert(ConnectionError("docker.sock refused"))], complete=False)
    alerter.flush()
    assert [(b["kind"], b["state"]) for b in receiver.bodies] == [
        ("rollout_failed", "firing"), ("pass_failed", "firing"),
    ]  # fmt: skip
    alerter.update(alerts_for(PassReport(), [], NOW, NOW))  # the next pass ran: all is well
    alerter.flush()
    assert sorted(b["key"] for b in receiver.bodies if b["state"] == "resolved") == [
        "pass_failed", "rollout_failed",
    ]  # fmt: skip
