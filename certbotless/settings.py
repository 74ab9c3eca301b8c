"""One immutable Settings object, built from CERTBOTLESS_* variables and validated once."""

from __future__ import annotations

import base64
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

from apscheduler.triggers.cron import CronTrigger

LETSENCRYPT_PRODUCTION = "https://acme-v02.api.letsencrypt.org/directory"
LETSENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
DIRECTORY_SHORTCUTS = {"production": LETSENCRYPT_PRODUCTION, "staging": LETSENCRYPT_STAGING}

PREFIX = "CERTBOTLESS_"
# The subnet of the `front` network in stacks/edge.yml.
DEFAULT_FRONT_SUBNET = "10.222.0.0/24"
DEFAULT_METRICS_LISTEN = ("0.0.0.0", 9402)


class SettingsError(ValueError):
    """A setting is wrong; the message names the variable and the fix."""


class NginxConfMode(StrEnum):
    """Who writes nginx.conf."""

    RENDERED = "rendered"  # certbotless, from labels
    OWN = "own"  # the operator, including certbotless's snippets; certbotless manages certificates


class WebhookFormat(StrEnum):
    AUTO = "auto"  # Slack's shape for hooks.slack.com, plain JSON elsewhere
    JSON = "json"
    SLACK = "slack"


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


@dataclass(frozen=True)
class Settings:
    acme_directory: str = LETSENCRYPT_PRODUCTION
    email: str | None = None
    ca_bundle: Path | None = None
    account_key_file: Path = Path("/run/secrets/certbotless-account-key")
    own_service: str | None = None
    nginx_service: str | None = None
    schedule: str = "17 */6 * * *"
    concurrency: int = 8
    responder_listen: tuple[str, int] = ("0.0.0.0", 8402)
    responder_upstream: str = "certbotless:8402"
    challenge_dir: Path = Path("/run/certbotless/challenges")
    lock_file: Path = Path("/run/certbotless/pass.lock")
    certs_dir: str = "/etc/nginx/certs"
    rollout_timeout: float = 120.0
    self_check: bool = True
    log_level: str = "INFO"
    log_format: LogFormat = LogFormat.TEXT
    metrics_listen: tuple[str, int] | None = DEFAULT_METRICS_LISTEN
    eab_kid: str | None = None
    eab_hmac_key: str | None = field(default=None, repr=False)
    preferred_chain: str | None = None
    gc_keep_versions: int = 3
    nginx_conf: NginxConfMode = NginxConfMode.RENDERED
    alert_webhook: str | None = None
    alert_webhook_format: WebhookFormat = WebhookFormat.AUTO
    smtp_url: str | None = field(default=None, repr=False)
    alert_email: tuple[str, ...] = ()
    gc_keep_expired_days: int = 0
    # The L4 front's network: nginx listens with PROXY protocol and takes the client's address
    # from headers sent from there only. Empty: nginx publishes its own ports.
    front_subnets: tuple[str, ...] = (DEFAULT_FRONT_SUBNET,)

    @property
    def proxy_protocol(self) -> bool:
        return bool(self.front_subnets)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        get = _reader(os.environ if env is None else env)
        defaults = cls()
        # Checked in this order, so that the first error named stays the same.
        directory = _acme_directory(get("ACME_DIRECTORY") or defaults.acme_directory)
        schedule = _schedule(get("SCHEDULE") or defaults.schedule)
        eab_kid, eab_hmac_key = _external_account_binding(get("EAB_KID"), get("EAB_HMAC_KEY"))
        nginx_conf = _choice(
            get("NGINX_CONF"), "NGINX_CONF", defaults.nginx_conf,
            "'rendered' (nginx.conf from labels) or 'own' (your nginx.conf includes "
            "certbotless's snippets)",
        )  # fmt: skip
        webhook, webhook_format = _webhook(get, defaults.alert_webhook_format)
        smtp_url, recipients = _email_alerts(get)
        return cls(
            acme_directory=directory,
            alert_webhook=webhook,
            alert_webhook_format=webhook_format,
            smtp_url=smtp_url,
            alert_email=recipients,
            nginx_conf=nginx_conf,
            email=get("EMAIL"),
            ca_bundle=_existing_file(get("CA_BUNDLE"), "CA_BUNDLE"),
            account_key_file=_path(get("ACCOUNT_KEY_FILE")) or defaults.account_key_file,
            own_service=get("SERVICE"),
            nginx_service=get("NGINX_SERVICE"),
            schedule=schedule,
            concurrency=_positive_int(get("CONCURRENCY"), "CONCURRENCY", defaults.concurrency),
            responder_listen=_host_port(
                get("RESPONDER_LISTEN"), "RESPONDER_LISTEN", defaults.responder_listen
            ),
            responder_upstream=get("RESPONDER_UPSTREAM") or defaults.responder_upstream,
            challenge_dir=_path(get("CHALLENGE_DIR")) or defaults.challenge_dir,
            lock_file=_path(get("LOCK_FILE")) or defaults.lock_file,
            certs_dir=get("CERTS_DIR") or defaults.certs_dir,
            rollout_timeout=float(
                _positive_int(
                    get("ROLLOUT_TIMEOUT"), "ROLLOUT_TIMEOUT", int(defaults.rollout_timeout)
                )
            ),
            self_check=_flag(get("SELF_CHECK"), "SELF_CHECK", defaults.self_check),
            log_level=(get("LOG_LEVEL") or defaults.log_level).upper(),
            log_format=_choice(get("LOG_FORMAT"), "LOG_FORMAT", defaults.log_format),
            metrics_listen=_metrics_listen(get("METRICS_LISTEN")),
            eab_kid=eab_kid,
            eab_hmac_key=eab_hmac_key,
            preferred_chain=get("PREFERRED_CHAIN"),
            gc_keep_versions=_positive_int(
                get("GC_KEEP_VERSIONS"), "GC_KEEP_VERSIONS", defaults.gc_keep_versions
            ),
            gc_keep_expired_days=_whole_number(
                get("GC_KEEP_EXPIRED_DAYS"), "GC_KEEP_EXPIRED_DAYS", defaults.gc_keep_expired_days
            ),
            front_subnets=_subnets(get("FRONT_SUBNET"), "FRONT_SUBNET", defaults.front_subnets),
        )


Variable = Callable[[str], str | None]


def _reader(env: Mapping[str, str]) -> Variable:
    """CERTBOTLESS_<name>, stripped; None when unset or blank."""
    values = dict(env)

    def get(name: str) -> str | None:
        value = values.get(PREFIX + name, "").strip()
        return value or None

    return get


def _acme_directory(value: str) -> str:
    directory = DIRECTORY_SHORTCUTS.get(value, value)
    if not directory.startswith("https://"):
        raise SettingsError(
            f"{PREFIX}ACME_DIRECTORY={directory!r} is not an https:// URL; "
            "use a directory URL or one of: " + ", ".join(DIRECTORY_SHORTCUTS)
        )
    return directory


def _schedule(value: str) -> str:
    try:
        CronTrigger.from_crontab(value)
    except ValueError as exc:
        raise SettingsError(
            f"{PREFIX}SCHEDULE={value!r} is not a cron expression ({exc}); "
            "write five fields, e.g. '17 */6 * * *'"
        ) from exc
    return value


def _external_account_binding(
    kid: str | None, hmac_key: str | None
) -> tuple[str | None, str | None]:
    if bool(kid) != bool(hmac_key):
        raise SettingsError(
            f"set both {PREFIX}EAB_KID and {PREFIX}EAB_HMAC_KEY (External Account Binding "
            "from the CA's account page), or neither"
        )
    if hmac_key and not _is_base64url(hmac_key):
        raise SettingsError(
            f"{PREFIX}EAB_HMAC_KEY is not base64url text; paste the key exactly as the CA shows it"
        )
    return kid, hmac_key


def _webhook(get: Variable, default_format: WebhookFormat) -> tuple[str | None, WebhookFormat]:
    webhook = get("ALERT_WEBHOOK")
    if webhook is not None and not webhook.startswith(("http://", "https://")):
        raise SettingsError(f"{PREFIX}ALERT_WEBHOOK={webhook!r} must be an http(s):// URL")
    return webhook, _choice(get("ALERT_WEBHOOK_FORMAT"), "ALERT_WEBHOOK_FORMAT", default_format)


def _email_alerts(get: Variable) -> tuple[str | None, tuple[str, ...]]:
    smtp_url = get("SMTP_URL")
    recipients = tuple(a.strip() for a in (get("ALERT_EMAIL") or "").split(",") if a.strip())
    if bool(smtp_url) != bool(recipients):
        raise SettingsError(
            f"set both {PREFIX}SMTP_URL (e.g. smtp://user:password@mail.example.com:587) "
            f"and {PREFIX}ALERT_EMAIL (comma-separated addresses), or neither"
        )
    if smtp_url and not smtp_url.startswith(("smtp://", "smtps://", "smtp+insecure://")):
        raise SettingsError(
            f"{PREFIX}SMTP_URL must start with smtp:// (STARTTLS), smtps:// (TLS) or "
            "smtp+insecure:// (no TLS)"
        )
    return smtp_url, recipients


def _metrics_listen(value: str | None) -> tuple[str, int] | None:
    if (value or "").lower() == "off":
        return None
    return _host_port(value, "METRICS_LISTEN", DEFAULT_METRICS_LISTEN)


def _is_base64url(value: str) -> bool:
    try:
        base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except ValueError:
        return False
    return bool(re.fullmatch(r"[A-Za-z0-9_-]+=*", value))


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _existing_file(value: str | None, name: str) -> Path | None:
    if value is None:
        return None
    path = Path(value)
    if not path.is_file():
        raise SettingsError(
            f"{PREFIX}{name}={value!r}: no such file; mount it or unset the variable"
        )
    return path


def _flag(value: str | None, name: str, default: bool) -> bool:
    if value is None:
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{PREFIX}{name}={value!r} must be true or false")


Mode = TypeVar("Mode", bound=StrEnum)


def _choice(value: str | None, name: str, default: Mode, meaning: str = "") -> Mode:
    """One of `default`'s enum, in any case. `meaning`: what each choice does, for the error."""
    modes = type(default)
    try:
        return modes((value or default).lower())
    except ValueError:
        choices = meaning or "one of: " + ", ".join(modes)
        raise SettingsError(f"{PREFIX}{name}={value!r} must be {choices}") from None


def _whole_number(value: str | None, name: str, default: int) -> int:
    if value is None:
        return default
    if not value.isdigit():
        raise SettingsError(f"{PREFIX}{name}={value!r} must be a whole number (0 or more)")
    return int(value)


def _positive_int(value: str | None, name: str, default: int) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise SettingsError(f"{PREFIX}{name}={value!r} must be a whole number of at least 1")
    return number


def _host_port(value: str | None, name: str, default: tuple[str, int]) -> tuple[str, int]:
    if value is None:
        return default
    host, _, port = value.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise SettingsError(f"{PREFIX}{name}={value!r} must look like HOST:PORT, e.g. 0.0.0.0:8402")
    return (host or "0.0.0.0", int(port))


def _subnets(value: str | None, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """Comma-separated networks, or `none`."""
    if value is None:
        return default
    if value.lower() == "none":
        return ()
    subnets = []
    for part in (p.strip() for p in value.split(",") if p.strip()):
        try:
            subnets.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise SettingsError(
                f"{PREFIX}{name}={value!r}: {part!r} is not a network; give the subnet of the "
                "L4 front's network (e.g. 10.222.0.0/24), or `none` when nginx publishes its "
                "own ports"
            ) from None
    return tuple(subnets)
