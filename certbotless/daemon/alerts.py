"""Alerts that reach a human: what is wrong after a pass, de-duplicated, delivered in the
background by webhook (Slack-compatible) and e-mail.

`alerts_for` is pure: a pass report and the clock in, the problems that hold now out. `Alerter`
remembers what it said: one message per problem per change, a reminder every day while it lasts,
and a "resolved" message when it is gone. Channels deliver from a worker thread with retries, so
a dead mail server never holds up a renewal.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import queue
import re
import smtplib
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import requests

from certbotless.model import CertificateStatus, PassReport, StoredCert
from certbotless.redaction import Redactor, redacted_url, url_secrets
from certbotless.settings import Settings, WebhookFormat

log = logging.getLogger(__name__)

# Alert when a certificate has less than this fraction of its lifetime left: renewal starts at
# 1/3, so this is reached only when renewals keep failing (15 days of 90; 1 day of 6).
EXPIRY_ALERT_FRACTION = 1 / 6
REMIND_EVERY = timedelta(days=1)
DELIVERY_ATTEMPTS = 4


@dataclass(frozen=True)
class Alert:
    key: str  # what the problem is about; stays the same while it lasts
    # renewal_failed, expiring, rollout_failed, label_problem, ca_unreachable, pass_failed,
    # issuer_fallback
    kind: str
    title: str
    detail: str  # a change here is news, and sent again (unless `fingerprint` says otherwise)
    wait: timedelta = timedelta(0)  # how long the problem must last before anyone is told
    note: str = ""  # sent along, but a change here is not news (e.g. the next attempt time)
    fingerprint: str = ""  # what counts as news, when `detail` holds times or tokens

    @property
    def text(self) -> str:
        return f"{self.detail}\n{self.note}" if self.note else self.detail

    @property
    def identity(self) -> str:
        return self.fingerprint or self.detail


# Parts of a CA's error that change on every attempt without the problem changing.
_CHANGING_WORDS = re.compile(
    r"acme-challenge/[A-Za-z0-9_-]+"
    r"|\d{4}-\d\d-\d\d"
    r"|\d\d:\d\d(?::\d\d(?:\.\d+)?)?"
    r"|\b(?:\d{1,3}\.){3}\d{1,3}:\d+\b"
)


def stable_words(error: str) -> str:
    """`error` without the challenge tokens, times and ports that differ on each attempt."""
    return _CHANGING_WORDS.sub("…", error)


def is_expiring(cert: StoredCert, now: datetime) -> bool:
    return cert.not_after - now < (cert.not_after - cert.not_before) * EXPIRY_ALERT_FRACTION


def alerts_for(
    report: PassReport,
    certificates: Iterable[StoredCert],
    now: datetime,
    next_attempt: datetime,
    ca_unreachable_after: timedelta = timedelta(hours=1),
) -> list[Alert]:
    """The problems that hold after a pass. `next_attempt`: when failures are retried, unless a
    certificate's status record says."""
    records = {record.name: record for record in report.statuses}
    alerts = [
        renewal_failed_alert(name, error, records.get(name), next_attempt)
        for name, error in sorted(report.failed.items())
    ]
    for cert in certificates:
        if is_expiring(cert, now):
            state = "has expired" if cert.not_after <= now else "expires soon"
            alerts.append(
                Alert(
                    f"expiring:{cert.name}",
                    "expiring",
                    f"certificate {cert.name} {state}",
                    f"{cert.name} ({', '.join(cert.domains)}) expires "
                    f"{cert.not_after:%Y-%m-%d %H:%M} UTC and has not been renewed.",
                )
            )
    if report.rollout_error:
        alerts.append(
            Alert("rollout_failed", "rollout_failed", "nginx rollout failed", report.rollout_error)
        )
    for problem in report.problems:
        alerts.append(
            Alert(
                f"label_problem:{problem.service}:{problem.label}",
                "label_problem",
                f"label problem on service {problem.service}",
                str(problem),
            )
        )
    alerts.extend(issuer_fallback_alert(record) for record in report.statuses
                  if record.issuer and record.skipped)  # fmt: skip
    if report.ca_unreachable:
        alerts.append(
            Alert(
                "ca_unreachable",
                "ca_unreachable",
                "the ACME CA is unreachable",
                report.ca_unreachable,
                wait=ca_unreachable_after,
            )
        )
    return alerts


def renewal_failed_alert(
    name: str, error: str, record: CertificateStatus | None, next_attempt: datetime
) -> Alert:
    retry = record.next_attempt if record and record.next_attempt else next_attempt
    note = f"Next attempt around {retry:%Y-%m-%d %H:%M} UTC."
    if record is not None and record.abandoned:
        note = (f"Failing since {record.failing_since:%Y-%m-%d}: abandoned, not ordered again "
                f"until its labels change or `certbotless renew --force {name}`.")  # fmt: skip
    return Alert(
        f"renewal_failed:{name}",
        "renewal_failed",
        f"certificate {name}: renewal failed",
        error,
        note=note,
        fingerprint=stable_words(error),
    )


def issuer_fallback_alert(record: CertificateStatus) -> Alert:
    """The version in use came from an issuer after the first: it holds until a renewal comes
    from the first issuer again (each pass starts from it)."""
    return Alert(
        f"issuer_fallback:{record.name}",
        "issuer_fallback",
        f"certificate {record.name} came from fallback issuer {record.issuer}",
        f"{record.name} ({', '.join(record.domains)}) is served from issuer {record.issuer}; "
        f"passed over: {'; '.join(record.skipped)}.",
        note="Its renewals go to the first issuer again once that one works.",
        fingerprint=stable_words(f"{record.issuer} {' '.join(record.skipped)}"),
    )


def pass_failed_alert(error: Exception) -> Alert:
    """A pass that broke off: what it was about to find out is unknown, not resolved."""
    return Alert(
        "pass_failed",
        "pass_failed",
        "a certbotless pass failed",
        f"{type(error).__name__}: {error}",
        fingerprint=stable_words(f"{type(error).__name__}: {error}"),
    )


class Channel(Protocol):
    name: str  # shown in logs and `doctor`: never a secret

    def send(self, title: str, text: str, alert: Alert, resolved: bool) -> None:
        """Deliver, or raise (AlertDeliveryError: words free of the channel's secrets)."""


class AlertDeliveryError(Exception):
    """A channel failed; the message names it and why, with its secrets redacted."""


# The webhook's `slack` argument per format (None: decided by the URL).
_SLACK_SHAPE = {WebhookFormat.AUTO: None, WebhookFormat.SLACK: True, WebhookFormat.JSON: False}


def channels_for(settings: Settings) -> list[Channel]:
    """The channels the settings ask for (none: no alerts)."""
    channels: list[Channel] = []
    if settings.alert_webhook:
        slack = _SLACK_SHAPE[settings.alert_webhook_format]
        channels.append(WebhookChannel(settings.alert_webhook, slack=slack))
    if settings.smtp_url:
        channels.append(EmailChannel(settings.smtp_url, settings.alert_email))
    return channels


def slack_escaped(text: str) -> str:
    """Text as Slack's message format shows it literally: `&`, `<` and `>` escaped, so that a
    label's value cannot mention `<!channel>` or disguise a link (`<https://…|click>`)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class WebhookChannel:
    """JSON POST. `slack` (default: when the URL is a hooks.slack.com webhook) sends Slack's
    `{"text": …}` body, which Mattermost and Rocket.Chat accept too. The URL's path and query
    (where webhooks carry their token) never appear in its name or errors."""

    def __init__(self, url: str, slack: bool | None = None, timeout: float = 10.0) -> None:
        self.url = url
        self.timeout = timeout
        self.name = f"webhook {urlsplit(url).hostname}"
        self.slack = urlsplit(url).hostname == "hooks.slack.com" if slack is None else slack

    @property
    def redact(self) -> Redactor:
        # As requests sends it, too: it may quote the path differently.
        try:
            prepared = requests.Request("POST", self.url).prepare()
            sent = {prepared.path_url, *url_secrets(prepared.url or "")}
        except requests.RequestException:  # then requests never sent it
            sent = set()
        return Redactor(url_secrets(self.url) | sent)

    def send(self, title: str, text: str, alert: Alert, resolved: bool) -> None:
        if self.slack:
            body: dict[str, object] = {"text": f"*{slack_escaped(title)}*\n{slack_escaped(text)}"}
        else:
            body = {
                "title": title,
                "text": text,
                "kind": alert.kind,
                "key": alert.key,
                "state": "resolved" if resolved else "firing",
            }
        try:
            response = requests.post(self.url, json=body, timeout=self.timeout)
        except requests.RequestException as error:
            # requests' words name the URL's path; `from None`: nor may its traceback.
            raise AlertDeliveryError(self.redact.error(error)) from None
        if not response.ok:
            raise AlertDeliveryError(f"answered HTTP {response.status_code} {response.reason}")


class EmailChannel:
    """`smtp://host:port` (STARTTLS when offered), `smtps://host:465` (TLS from the start),
    `smtp+insecure://` (no TLS, tests and local relays only); `user:password@` for auth;
    `?from=certbotless@example.com` for the sender."""

    def __init__(
        self,
        smtp_url: str,
        recipients: Sequence[str],
        timeout: float = 20.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(smtp_url)
        if parts.scheme not in ("smtp", "smtps", "smtp+insecure") or not parts.hostname:
            raise ValueError(
                f"CERTBOTLESS_SMTP_URL={redacted_url(smtp_url)!r}: use smtp://host:587, "
                "smtps://host:465 or smtp+insecure://host:25, with user:password@ if the server "
                "wants a login"
            )
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (465 if parts.scheme == "smtps" else 587)
        self.user = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.sender = parse_qs(parts.query).get("from", ["certbotless@localhost"])[0]
        self.recipients = list(recipients)
        self.timeout = timeout
        self.tls = tls or ssl.create_default_context()
        self.name = f"e-mail via {self.host}"
        # The password as AUTH PLAIN and LOGIN send it, should a server's reply echo it.
        login = f"\0{self.user}\0{self.password}".encode() if self.password else b""
        encoded = {base64.b64encode(v).decode() for v in (login, (self.password or "").encode())}
        self.redact = Redactor(url_secrets(smtp_url) | encoded)

    def send(self, title: str, text: str, alert: Alert, resolved: bool) -> None:
        try:
            self._send(self._message(title, text, alert, resolved))
        except (smtplib.SMTPException, OSError, ValueError) as error:
            raise AlertDeliveryError(self.redact.error(error)) from None

    def _message(self, title: str, text: str, alert: Alert, resolved: bool) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = f"[certbotless] {title}"
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message["X-Certbotless-Alert"] = f"{alert.key}; {'resolved' if resolved else 'firing'}"
        message.set_content(text)
        return message

    def _send(self, message: EmailMessage) -> None:
        if self.scheme == "smtps":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=self.tls
            )
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with smtp:
            if self.scheme == "smtp":
                smtp.ehlo()
                if smtp.has_extn("starttls"):
                    smtp.starttls(context=self.tls)
                elif self.user is not None:
                    raise smtplib.SMTPNotSupportedError(
                        f"{self.host} offers no STARTTLS, so the password would go in clear; "
                        "use smtps:// (or smtp+insecure:// on a trusted network)"
                    )
            if self.user is not None:
                smtp.login(self.user, self.password or "")
            smtp.send_message(message)


class AlertMemory(Protocol):
    """Where the alerter notes what it said (CertStore: labels in the swarm), so that a restart
    or a move to another manager re-sends nothing and still sends "resolved"."""

    def load_alert_memory(self) -> dict[str, str]: ...

    def save_alert_memory(self, entries: Mapping[str, str]) -> None: ...


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


@dataclass
class _Said:
    identity: str  # digest of the alert's identity
    sent_at: datetime


@dataclass
class _Delivery:
    channel: Channel
    title: str
    text: str
    alert: Alert
    resolved: bool
    attempt: int = 1


@dataclass
class Alerter:
    """What each channel was told is recorded when it took the message: a channel that is down
    is told again at the next update, and nothing is lost in between."""

    channels: Sequence[Channel]
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    remind_every: timedelta = REMIND_EVERY
    retry_delay: float = 5.0
    memory: AlertMemory | None = None

    def __post_init__(self) -> None:
        self._said: dict[tuple[str, str], _Said] = {}  # (channel, key) → what it took
        # (channel, key) → what is queued or retrying for it, so as not to queue it twice.
        self._sending: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        self._first_seen: dict[str, datetime] = {}
        self._queue: queue.Queue[_Delivery | None] = queue.Queue()
        self._retrying = 0
        self._remembered: dict[str, str] = {}
        self._recall()
        self._worker = threading.Thread(target=self._deliver, name="alerts", daemon=True)
        self._worker.start()

    def update(self, alerts: Iterable[Alert], complete: bool = True) -> None:
        """Tell people about what changed since the last call; never blocks. `alerts` are all
        the problems that hold now, or with `complete` off only some: what was said about the
        others stands (no "resolved")."""
        now = self.clock()
        current = {alert.key: alert for alert in alerts}
        channels = {channel.name: channel for channel in self.channels}
        with self._lock:
            # Only problems that must last a while before anyone is told need a first sighting.
            first_seen = {
                key: self._first_seen.get(key, now) for key, alert in current.items() if alert.wait
            }
            self._first_seen = first_seen if complete else {**self._first_seen, **first_seen}
            for alert in current.values():
                if alert.wait and now - self._first_seen[alert.key] < alert.wait:
                    continue
                for channel in self.channels:
                    said = self._said.get((channel.name, alert.key))
                    if said is None or said.identity != _digest(alert.identity):
                        self._announce(channel, alert, alert.title, resolved=False)
                    elif now - said.sent_at >= self.remind_every:
                        self._announce(channel, alert, f"still: {alert.title}", resolved=False)
            gone = [k for k in self._said if k[1] not in current] if complete else []
            for channel_name, key in gone:
                if channel_name not in channels:  # a channel no longer configured
                    del self._said[(channel_name, key)]
                    continue
                title = f"resolved: {key.replace('_', ' ')}"
                resolved = Alert(key, key.split(":", 1)[0], title, "The problem is gone.")
                self._announce(channels[channel_name], resolved, title, resolved=True)
            self._remember()

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until everything queued was delivered or given up (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while (self._queue.unfinished_tasks or self._retrying) and time.monotonic() < deadline:
            time.sleep(0.05)

    def _announce(self, channel: Channel, alert: Alert, title: str, resolved: bool) -> None:
        """Queue one message (called with the lock held)."""
        if self._sending.get((channel.name, alert.key)) == alert.identity:
            return  # the same message is still on its way
        log.warning("alert to %s: %s: %s", channel.name, title, alert.text.splitlines()[0])
        self._sending[(channel.name, alert.key)] = alert.identity
        self._queue.put(_Delivery(channel, title, alert.text, alert, resolved))

    def _delivered(self, delivery: _Delivery, ok: bool) -> None:
        key = (delivery.channel.name, delivery.alert.key)
        with self._lock:
            if self._sending.get(key) == delivery.alert.identity:
                del self._sending[key]
            if not ok:
                return  # not recorded as said: the next update tries again
            if delivery.resolved:
                self._said.pop(key, None)
            else:
                self._said[key] = _Said(_digest(delivery.alert.identity), self.clock())
            self._remember()

    def _recall(self) -> None:
        """Load what an earlier process said; entries it cannot read are forgotten."""
        if self.memory is None:
            return
        try:
            self._remembered = self.memory.load_alert_memory()
        except Exception as error:  # the alerts must work without their memory
            log.warning("could not read what was alerted before (%s); starting afresh", error)
            return
        for text in self._remembered.values():
            try:
                note = json.loads(text)
                at = datetime.fromisoformat(note["at"])
                if "channel" in note:
                    self._said[(note["channel"], note["key"])] = _Said(note["identity"], at)
                else:
                    self._first_seen[note["key"]] = at
            except (ValueError, KeyError, TypeError):
                continue

    def _remember(self) -> None:
        """Save what was said, when it changed (called with the lock held)."""
        if self.memory is None:
            return
        entries = {
            _digest("said", channel, key): json.dumps(
                {"channel": channel, "key": key, "identity": said.identity,
                 "at": said.sent_at.isoformat()}
            )
            for (channel, key), said in self._said.items()
        }  # fmt: skip
        entries.update(
            {
                _digest("seen", key): json.dumps({"key": key, "at": at.isoformat()})
                for key, at in self._first_seen.items()
            }
        )
        if entries == self._remembered:
            return
        try:
            self.memory.save_alert_memory(entries)
            self._remembered = entries
        except Exception as error:  # never let the memory stop an alert
            log.warning("could not note what was alerted (%s); a restart may repeat it", error)

    def _retry(self, delivery: _Delivery) -> None:
        self._queue.put(delivery)
        with self._lock:
            self._retrying -= 1

    def _deliver(self) -> None:
        while True:
            delivery = self._queue.get()
            if delivery is None:
                return
            try:
                delivery.channel.send(
                    delivery.title, delivery.text, delivery.alert, delivery.resolved
                )
            except Exception as error:  # any channel failure: log, retry later, go on
                if delivery.attempt < DELIVERY_ATTEMPTS:
                    log.warning(
                        "alert channel %s failed (%s); retrying in %.0f s",
                        delivery.channel.name,
                        error,
                        self.retry_delay * delivery.attempt,
                    )
                    delivery.attempt += 1
                    with self._lock:
                        self._retrying += 1
                    threading.Timer(
                        self.retry_delay * (delivery.attempt - 1), self._retry, [delivery]
                    ).start()
                else:
                    log.error(
                        "alert channel %s failed %d times, trying again after the next pass: "
                        "%r: %s",
                        delivery.channel.name,
                        DELIVERY_ATTEMPTS,
                        delivery.title,
                        error,
                    )
                    self._delivered(delivery, ok=False)
            else:
                self._delivered(delivery, ok=True)
            finally:
                self._queue.task_done()
