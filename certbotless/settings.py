"""One immutable Settings object, built from CERTBOTLESS_* variables and validated once.

Every variable is checked when the process starts; a bad one is one `SettingsError` naming the
variable, its value (secrets shown redacted) and the form expected.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from apscheduler.triggers.cron import CronTrigger

from certbotless.issuer_settings import DEFAULT_NAME, IssuerSetting, parse_issuers
from certbotless.redaction import redacted_url, url_secrets
from certbotless.setting_values import (
    ADDRESS,
    Dns01Grant,
    OrderShare,
    RuleTemplate,
    ServerUrlPrefix,
    ca_bundle,
    caa_identities,
    certs_dir,
    choice,
    dns01_grants,
    email_address,
    flag,
    invalid,
    is_base64url,
    listen_address,
    name_pattern,
    number,
    one_line,
    order_share,
    path,
    paths,
    resolvers,
    rule_template,
    server_url_prefixes,
    service_name,
    subnets,
    upstream,
    url_parts,
)

# PREFIX and SettingsError are part of settings' interface too (`as`: re-exported).
from certbotless.setting_values import PREFIX as PREFIX
from certbotless.setting_values import SettingsError as SettingsError

LETSENCRYPT_PRODUCTION = "https://acme-v02.api.letsencrypt.org/directory"
LETSENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
DIRECTORY_SHORTCUTS = {"production": LETSENCRYPT_PRODUCTION, "staging": LETSENCRYPT_STAGING}

# Every variable `Settings.from_env` reads, without the prefix (docs/environment.md lists them).
VARIABLES = (
    "ACME_DIRECTORY", "EMAIL", "CA_BUNDLE", "ACCOUNT_KEY_FILE", "SERVICE", "NGINX_SERVICE",
    "NGINX_CONF", "SCHEDULE", "CONCURRENCY", "EAB_KID", "EAB_HMAC_KEY", "PREFERRED_CHAIN",
    "CAA_IDENTITIES", "TLS_ALPN_LISTEN",
    "RESPONDER_LISTEN", "RESPONDER_UPSTREAM", "CHALLENGE_DIR", "LOCK_FILE", "CERTS_DIR",
    "SELF_CHECK", "FRONT_SUBNET", "ROLLOUT_TIMEOUT", "GC_KEEP_VERSIONS", "GC_KEEP_EXPIRED_DAYS",
    "LOG_LEVEL", "LOG_FORMAT", "METRICS_LISTEN", "ALERT_WEBHOOK", "ALERT_WEBHOOK_FORMAT",
    "SMTP_URL", "ALERT_EMAIL", "LABEL_DIALECTS", "TRAEFIK_EXPOSED_BY_DEFAULT",
    "TRAEFIK_DYNAMIC_CONFIG", "TRAEFIK_DEFAULT_RULE", "TRAEFIK_RULE_SYNTAX",
    "TRAEFIK_SERVER_URLS", "USER_SECRETS", "TRUST_STACK_NAMESPACE",
    "DNS01_PROVIDER", "DNS01_RESOLVERS", "DNS01_PROPAGATION_TIMEOUT",
    "DNS01_PROPAGATION_INTERVAL", "DNS01_NAMESERVER_PORT", "SECRETS_DIR",
    "STATUS_LISTEN", "STATUS_HTPASSWD", "STATUS_ALLOW_FROM", "STATUS_FORWARD_AUTH",
    "STATUS_ACTIONS", "STATUS_DIRECT_FROM", "ORDERS_PER_CLAIMANT", "FAILED_ORDER_WEIGHT",
    "DNS01_ALLOWED", "ACME_ISSUERS",
)  # fmt: skip
# Label dialects certbotless reads: its own certbotless.* labels, and Traefik's.
LABEL_DIALECTS = ("certbotless", "traefik")
# Read by `docker stack deploy` from the operator's shell (stacks/edge.yml), not by certbotless.
STACK_VARIABLES = ("IMAGE", "EDGE_IMAGE", "FRONT_IMAGE", "VERSION")
# The subnet of the `front` network in stacks/edge.yml.
DEFAULT_FRONT_SUBNET = "10.222.0.0/24"
DEFAULT_METRICS_LISTEN = ("0.0.0.0", 9402)
# The TLS-ALPN-01 responder; haproxy/haproxy.cfg's acme_tls_alpn backend names this port.
DEFAULT_TLS_ALPN_LISTEN = ("0.0.0.0", 8404)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# Bounds past which a number is a typo (and time or date arithmetic would overflow).
MAX_CONCURRENCY = 256
MAX_ROLLOUT_TIMEOUT = 86_400
MAX_KEEP_VERSIONS = 1_000
MAX_KEEP_EXPIRED_DAYS = 3_650
MAX_PROPAGATION_TIMEOUT = 3_600
MAX_PROPAGATION_INTERVAL = 60
MAX_FAILED_ORDER_WEIGHT = 100
DEFAULT_ORDER_SHARE = OrderShare()  # 30 new orders per claimant per 3 h, a failure counting 3

# rfc2136, or a dns-lexicon provider's module name (cloudflare, route53, powerdns, …).
DNS_PROVIDER_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}", re.ASCII)


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


class RuleSyntax(StrEnum):
    """Traefik's core.defaultRuleSyntax: how routers without a `ruleSyntax` label are read."""

    V2 = "v2"
    V3 = "v3"


# The sidecar's own loopback (`docker exec … curl`): the page is reached directly from nowhere
# else unless CERTBOTLESS_STATUS_DIRECT_FROM says so.
STATUS_DIRECT_FROM = ("127.0.0.0/8", "::1/128")


@dataclass(frozen=True)
class StatusPage:
    """The status page's listener and protections (at least one; several must all pass)."""

    listen: tuple[str, int]
    htpasswd: Path | None = None  # htpasswd lines (bcrypt), e.g. a Swarm secret
    allow_from: tuple[str, ...] = ()  # client networks let in (the TCP peer's address)
    forward_auth: str | None = None  # an auth service asked about every request
    actions: bool = False  # renew, retry and revoke buttons (else read-only)
    # Who may reach the page other than through the edge's nginx tasks (the TCP peer's
    # network); their X-Forwarded-* are ignored. Not the networks tenants share with the page.
    direct_from: tuple[str, ...] = STATUS_DIRECT_FROM

    @property
    def port(self) -> int:
        return self.listen[1]


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
    tls_alpn_listen: tuple[str, int] | None = DEFAULT_TLS_ALPN_LISTEN  # None: off
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
    caa_identities: str | None = None  # None: the known CA's; "off": not checked
    # CERTBOTLESS_ACME_ISSUERS, in order (empty: the one issuer of the settings above).
    acme_issuers: tuple[IssuerSetting, ...] = ()
    gc_keep_versions: int = 3
    nginx_conf: NginxConfMode = NginxConfMode.RENDERED
    # Webhook URLs carry their token in the path or query: never in a repr.
    alert_webhook: str | None = field(default=None, repr=False)
    alert_webhook_format: WebhookFormat = WebhookFormat.AUTO
    smtp_url: str | None = field(default=None, repr=False)
    alert_email: tuple[str, ...] = ()
    gc_keep_expired_days: int = 0
    # The L4 front's network: nginx listens with PROXY protocol and takes the client's address
    # from headers sent from there only. Empty: nginx publishes its own ports.
    front_subnets: tuple[str, ...] = (DEFAULT_FRONT_SUBNET,)
    label_dialects: frozenset[str] = frozenset(LABEL_DIALECTS)
    # Traefik's exposedByDefault: whether services without traefik.enable=true are routed.
    traefik_exposed_by_default: bool = False
    # Traefik dynamic-configuration files (YAML or TOML) whose http.middlewares `name@file`
    # means; mounted into the sidecar as Swarm configs.
    traefik_dynamic_config: tuple[Path, ...] = ()
    # Traefik's providers.swarm.defaultRule: the rule of routers that have none (None: such
    # routers are reported, not routed).
    traefik_default_rule: RuleTemplate | None = None
    # Traefik's core.defaultRuleSyntax: v3 as in Traefik v3; v2 for stacks written for v2.
    traefik_rule_syntax: RuleSyntax = RuleSyntax.V3
    # Where services' server.url labels may send the edge's traffic (empty: refused, as any
    # service could otherwise reach the edge's networks through it).
    traefik_server_urls: tuple[ServerUrlPrefix, ...] = ()
    # Your secrets that routes may have the edge mount (htpasswd files, forward auth's TLS
    # files): their whole names match this. The Docker API proxy refuses any other (None: none
    # but certbotless's, cbl-… and certbotless-…).
    user_secrets: re.Pattern[str] | None = None
    # Services' own com.docker.stack.namespace taken as their stack, so that one stack's services
    # share hosts, certificates and middlewares as in Traefik: only where every service comes
    # from `docker stack deploy` (which sets it), never where a team can create services itself.
    trust_stack_namespace: bool = False
    # DNS-01: the provider of certificates whose labels name none (None: DNS-01 needs the
    # label); the resolvers that find zones, CNAMEs and name servers (empty: the system's);
    # how long every authoritative server has to serve a record, and how often they are asked.
    dns01_provider: str | None = None
    dns01_resolvers: tuple[tuple[str, int], ...] = ()
    dns01_propagation_timeout: int = 60
    dns01_propagation_interval: int = 2
    dns01_nameserver_port: int = 53  # where the authoritative servers are asked
    # Which services may prove which zones by DNS-01, with the operator's credentials (none:
    # DNS-01 is refused, each certificate that needs it a label problem naming the setting).
    dns01_allowed: tuple[Dns01Grant, ...] = ()
    secrets_dir: Path = Path("/run/secrets")  # the DNS providers' credentials, as Swarm secrets
    status_page: StatusPage | None = None  # not served unless configured
    # Each claimant's (a certificate name's recorded owner) share of the CA's orders.
    order_share: OrderShare = DEFAULT_ORDER_SHARE

    @property
    def proxy_protocol(self) -> bool:
        return bool(self.front_subnets)

    @property
    def issuers(self) -> tuple[IssuerSetting, ...]:
        """The CAs certificates are ordered from, in order: CERTBOTLESS_ACME_ISSUERS, or the one
        of CERTBOTLESS_ACME_DIRECTORY and CERTBOTLESS_EAB_* (named `default`)."""
        if self.acme_issuers:
            return self.acme_issuers
        legacy = IssuerSetting(DEFAULT_NAME, self.acme_directory, self.eab_kid,
                               eab_hmac_key=self.eab_hmac_key,
                               preferred_chain=self.preferred_chain,
                               caa=self.caa_identities)  # fmt: skip
        return (legacy,)

    @property
    def secrets(self) -> frozenset[str]:
        """Texts that must never be logged or shown (redaction.Redactor replaces them)."""
        found = {self.eab_hmac_key or ""}
        for issuer in self.acme_issuers:  # their EAB keys, where the secrets are mounted
            with contextlib.suppress(SettingsError):
                found.add((issuer.external_account_binding(self.secrets_dir) or ("", ""))[1])
        for url in (self.alert_webhook, self.smtp_url):
            found |= url_secrets(url) if url else set()
        found |= dns_provider_secrets(self.secrets_dir)
        return frozenset(found - {""})

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        get = _reader(os.environ if env is None else env)
        defaults = cls()
        # Checked in this order, so that the first error named stays the same.
        directory, issuers = _issuers(get, defaults.acme_directory)
        schedule = _schedule(get("SCHEDULE") or defaults.schedule)
        eab_kid, eab_hmac_key = _external_account_binding(get("EAB_KID"), get("EAB_HMAC_KEY"))
        nginx_conf = choice(
            get("NGINX_CONF"), "NGINX_CONF", defaults.nginx_conf,
            "'rendered' (nginx.conf from labels) or 'own' (your nginx.conf includes "
            "certbotless's snippets)",
        )  # fmt: skip
        webhook, webhook_format = _webhook(get, defaults.alert_webhook_format)
        smtp_url, recipients = _email_alerts(get)
        return _own_ports(cls(
            acme_directory=directory, acme_issuers=issuers,
            alert_webhook=webhook,
            alert_webhook_format=webhook_format,
            smtp_url=smtp_url,
            alert_email=recipients,
            nginx_conf=nginx_conf,
            email=email_address(get("EMAIL"), "EMAIL"),
            ca_bundle=ca_bundle(get("CA_BUNDLE"), "CA_BUNDLE"),
            account_key_file=path(get("ACCOUNT_KEY_FILE"), "ACCOUNT_KEY_FILE")
            or defaults.account_key_file,
            own_service=service_name(get("SERVICE"), "SERVICE"),
            nginx_service=service_name(get("NGINX_SERVICE"), "NGINX_SERVICE"),
            schedule=schedule,
            concurrency=number(
                get("CONCURRENCY"), "CONCURRENCY", 1, MAX_CONCURRENCY, defaults.concurrency
            ),
            responder_listen=_listen(get, "RESPONDER_LISTEN", defaults.responder_listen),
            responder_upstream=upstream(get("RESPONDER_UPSTREAM"), "RESPONDER_UPSTREAM")
            or defaults.responder_upstream,
            tls_alpn_listen=_optional_listen(get, "TLS_ALPN_LISTEN", DEFAULT_TLS_ALPN_LISTEN),
            challenge_dir=path(get("CHALLENGE_DIR"), "CHALLENGE_DIR") or defaults.challenge_dir,
            lock_file=path(get("LOCK_FILE"), "LOCK_FILE") or defaults.lock_file,
            certs_dir=certs_dir(get("CERTS_DIR"), "CERTS_DIR") or defaults.certs_dir,
            rollout_timeout=number(
                get("ROLLOUT_TIMEOUT"), "ROLLOUT_TIMEOUT", 1, MAX_ROLLOUT_TIMEOUT,
                int(defaults.rollout_timeout),
            ),
            self_check=flag(get("SELF_CHECK"), "SELF_CHECK", defaults.self_check),
            log_level=_log_level(get("LOG_LEVEL"), "LOG_LEVEL") or defaults.log_level,
            log_format=choice(get("LOG_FORMAT"), "LOG_FORMAT", defaults.log_format),
            metrics_listen=_optional_listen(get, "METRICS_LISTEN", DEFAULT_METRICS_LISTEN),
            eab_kid=eab_kid,
            eab_hmac_key=eab_hmac_key,
            preferred_chain=one_line(get("PREFERRED_CHAIN"), "PREFERRED_CHAIN"),
            caa_identities=caa_identities(get("CAA_IDENTITIES"), "CAA_IDENTITIES"),
            gc_keep_versions=number(get("GC_KEEP_VERSIONS"), "GC_KEEP_VERSIONS", 1,
                                    MAX_KEEP_VERSIONS, defaults.gc_keep_versions),
            gc_keep_expired_days=number(get("GC_KEEP_EXPIRED_DAYS"), "GC_KEEP_EXPIRED_DAYS", 0,
                                        MAX_KEEP_EXPIRED_DAYS, defaults.gc_keep_expired_days),
            front_subnets=subnets(get("FRONT_SUBNET"), "FRONT_SUBNET", defaults.front_subnets),
            **_dialects_settings(get, defaults),
            **_dns01(get, defaults),
            status_page=_status_page(get),
            order_share=_order_share(get, defaults.order_share),
        ))  # fmt: skip


def _own_ports(settings: Settings) -> Settings:
    """The sidecar's listeners on ports of their own: two on one would stop it at start."""
    page = settings.status_page
    seen: dict[int, str] = {}
    for name, listen in (("RESPONDER_LISTEN", settings.responder_listen),
                         ("TLS_ALPN_LISTEN", settings.tls_alpn_listen),
                         ("METRICS_LISTEN", settings.metrics_listen),
                         ("STATUS_LISTEN", page.listen if page else None)):  # fmt: skip
        if listen is not None and listen[1] and seen.setdefault(listen[1], name) != name:
            raise SettingsError(f"{PREFIX}{name} and {PREFIX}{seen[listen[1]]} both listen on "
                                f"port {listen[1]}: give each its own port")  # fmt: skip
    return settings


# DNS providers' options that are credentials (a TSIG key's secret, API tokens and passwords);
# their names and servers are not, and replacing them in every log line would hide too much.
_SECRET_OPTION = re.compile(r"secret|token|password|passwd|(?<!access.)key$")
DNS_SECRET_PREFIX = "certbotless-dns-"


def dns_provider_secrets(secrets_dir: Path) -> set[str]:
    """The credentials among the DNS providers' secret files (`certbotless-dns-<provider>-…`),
    as they are read: never to be logged."""
    try:
        files = [f for f in secrets_dir.glob(DNS_SECRET_PREFIX + "*") if f.is_file()]
        return {
            f.read_text().strip()
            for f in files
            if _SECRET_OPTION.search(f.name[len(DNS_SECRET_PREFIX) :].replace("_", "-").lower())
        }
    except OSError:
        return set()


def unknown_variables(env: Mapping[str, str] | None = None) -> list[str]:
    """CERTBOTLESS_* variables that certbotless does not read: typos, most likely."""
    known = {PREFIX + name for name in (*VARIABLES, *STACK_VARIABLES)}
    names = os.environ if env is None else env
    return sorted(n for n in names if n.startswith(PREFIX) and n not in known)


Variable = Callable[[str], str | None]


def _reader(env: Mapping[str, str]) -> Variable:
    """CERTBOTLESS_<name>, stripped; None when unset or blank."""

    def get(name: str) -> str | None:
        if name not in VARIABLES:
            raise KeyError(f"{PREFIX}{name} is read but not in settings.VARIABLES")
        value = env.get(PREFIX + name, "").strip()
        return value or None

    return get


def _acme_directory(value: str) -> str:
    directory = DIRECTORY_SHORTCUTS.get(value, value)
    if url_parts(directory, ("https",)) is None:
        raise invalid(
            "ACME_DIRECTORY", directory,
            "is not an https:// URL; use a directory URL or one of: "
            + ", ".join(DIRECTORY_SHORTCUTS),
        )  # fmt: skip
    return directory


def _issuers(get: Variable, default: str) -> tuple[str, tuple[IssuerSetting, ...]]:
    """The (first) ACME directory, and CERTBOTLESS_ACME_ISSUERS where it is set."""
    directory = _acme_directory(get("ACME_DIRECTORY") or default)
    value = get("ACME_ISSUERS")
    if value is None:
        return directory, ()
    single = [name for name in ("ACME_DIRECTORY", "EAB_KID", "EAB_HMAC_KEY", "PREFERRED_CHAIN")
              if get(name) is not None]  # fmt: skip
    try:
        if single:
            raise SettingsError(
                f"{PREFIX}ACME_ISSUERS lists the issuers with their settings; "
                f"remove {PREFIX}{single[0]} (or write it into the list)"
            )
        issuers = parse_issuers(value, DIRECTORY_SHORTCUTS)
    except SettingsError as error:  # the whole value too, as every setting's error shows it
        raise SettingsError(f"{error} (in {value.strip()!r})") from None
    return issuers[0].directory, issuers


def _schedule(value: str) -> str:
    try:
        trigger = CronTrigger.from_crontab(value, timezone=UTC)
    except ValueError as exc:
        raise invalid(
            "SCHEDULE", value, f"is not a cron expression ({exc}); "
            "write five fields, e.g. '17 */6 * * *'",
        ) from None  # fmt: skip
    if trigger.get_next_fire_time(None, datetime.now(UTC)) is None:
        raise invalid("SCHEDULE", value, "never fires; write a cron expression that does, "
                      "e.g. '17 */6 * * *'")  # fmt: skip
    return value


def _external_account_binding(
    kid: str | None, hmac_key: str | None
) -> tuple[str | None, str | None]:
    if bool(kid) != bool(hmac_key):
        raise SettingsError(
            f"set both {PREFIX}EAB_KID and {PREFIX}EAB_HMAC_KEY (External Account Binding "
            f"from the CA's account page), or neither; only {PREFIX}"
            f"{'EAB_KID' if kid else 'EAB_HMAC_KEY'} is set"
        )
    if kid is not None:
        one_line(kid, "EAB_KID", "must be the key id from the CA's account page, without spaces",
                 spaces=False)  # fmt: skip
    if hmac_key and not is_base64url(hmac_key):
        raise SettingsError(
            f"{PREFIX}EAB_HMAC_KEY=(hidden: a secret) is not base64url text "
            "(A-Z, a-z, 0-9, - and _); paste the key exactly as the CA shows it"
        )
    return kid, hmac_key


def _webhook(get: Variable, default_format: WebhookFormat) -> tuple[str | None, WebhookFormat]:
    webhook = get("ALERT_WEBHOOK")
    if webhook is not None and url_parts(webhook, ("http", "https")) is None:
        raise invalid("ALERT_WEBHOOK", redacted_url(webhook),
                      "(path and query hidden) must be an http(s):// URL with a host")  # fmt: skip
    return webhook, choice(get("ALERT_WEBHOOK_FORMAT"), "ALERT_WEBHOOK_FORMAT", default_format)


def _email_alerts(get: Variable) -> tuple[str | None, tuple[str, ...]]:
    smtp_url = get("SMTP_URL")
    recipients = tuple(a.strip() for a in (get("ALERT_EMAIL") or "").split(",") if a.strip())
    if bool(smtp_url) != bool(recipients):
        raise SettingsError(
            f"set both {PREFIX}SMTP_URL (e.g. smtp://user:password@mail.example.com:587) "
            f"and {PREFIX}ALERT_EMAIL (comma-separated addresses), or neither"
        )
    for recipient in recipients:
        if not ADDRESS.fullmatch(recipient):
            raise invalid(
                "ALERT_EMAIL",
                get("ALERT_EMAIL") or "",
                f"has {recipient!r}, not an e-mail address; write "
                "comma-separated addresses, e.g. ops@example.com,oncall@example.com",
            )
    if smtp_url:
        parts = url_parts(smtp_url, ("smtp", "smtps", "smtp+insecure"))
        sender = dict(parse_qsl(parts.query)).get("from") if parts else None
        if parts is None or (sender is not None and not ADDRESS.fullmatch(sender)):
            raise invalid(
                "SMTP_URL", redacted_url(smtp_url),
                "(password, path and query hidden) must be smtp://host:587 (STARTTLS), "
                "smtps://host:465 (TLS) or smtp+insecure://host:25 (no TLS), with "
                "user:password@ for a login and ?from=address for the sender",
            )  # fmt: skip
    return smtp_url, recipients


def _status_page(get: Variable) -> StatusPage | None:
    """The status page's settings; listening with no protection is refused."""
    listen = listen_address(get("STATUS_LISTEN"), "STATUS_LISTEN", "or unset (no status page)")
    htpasswd = path(get("STATUS_HTPASSWD"), "STATUS_HTPASSWD")
    allow_from = subnets(get("STATUS_ALLOW_FROM"), "STATUS_ALLOW_FROM", ())
    forward_auth = get("STATUS_FORWARD_AUTH")
    if forward_auth is not None and url_parts(forward_auth, ("http", "https")) is None:
        raise invalid("STATUS_FORWARD_AUTH", forward_auth,
                      "must be an http:// or https:// URL of a forward-auth service, e.g. "
                      "http://authelia:9091/api/verify")  # fmt: skip
    if listen is not None and htpasswd is None and not allow_from and forward_auth is None:
        raise invalid(
            "STATUS_LISTEN", get("STATUS_LISTEN") or "",
            "is set, but the status page would be open to anyone: protect it with "
            "CERTBOTLESS_STATUS_HTPASSWD (an htpasswd file of bcrypt lines, e.g. a Swarm "
            "secret), CERTBOTLESS_STATUS_ALLOW_FROM (client networks) or "
            "CERTBOTLESS_STATUS_FORWARD_AUTH (an auth service's URL)",
        )  # fmt: skip
    actions = flag(get("STATUS_ACTIONS"), "STATUS_ACTIONS", False)
    # An allowlist tells addresses apart, not people: through the edge every visitor's address
    # is an nginx task's, which any container on the edge network shares.
    if listen is not None and actions and htpasswd is None and forward_auth is None:
        raise invalid(
            "STATUS_ACTIONS", get("STATUS_ACTIONS") or "",
            "lets visitors renew and revoke certificates, which needs to know who they are: "
            "set CERTBOTLESS_STATUS_HTPASSWD or CERTBOTLESS_STATUS_FORWARD_AUTH as well, or "
            "leave the page read-only",
        )  # fmt: skip
    direct_from = subnets(get("STATUS_DIRECT_FROM"), "STATUS_DIRECT_FROM", STATUS_DIRECT_FROM)
    if listen is None:
        return None
    return StatusPage(listen, htpasswd, allow_from, forward_auth, actions, direct_from)


def _listen(get: Variable, name: str, default: tuple[str, int]) -> tuple[str, int]:
    return listen_address(get(name), name) or default


def _optional_listen(get: Variable, name: str, default: tuple[str, int]) -> tuple[str, int] | None:
    """A listener that is on unless `off`."""
    value = get(name)
    if (value or "").lower() == "off":
        return None
    return listen_address(value, name, "or 'off'") or default


def _dialects(value: str | None, name: str) -> frozenset[str]:
    if value is None:
        return frozenset(LABEL_DIALECTS)
    chosen = {part.strip().lower() for part in value.split(",") if part.strip()}
    if not chosen or not chosen <= set(LABEL_DIALECTS):
        raise invalid(name, value, "must be a comma-separated list of " + ", ".join(LABEL_DIALECTS))
    return frozenset(chosen)


def _log_level(value: str | None, name: str) -> str | None:
    if value is not None and value.upper() not in LOG_LEVELS:
        raise invalid(name, value, "must be one of: " + ", ".join(LOG_LEVELS))
    return value.upper() if value else None


def _dialects_settings(get: Variable, defaults: Settings) -> dict[str, Any]:
    """The label dialects and Traefik's settings, as Settings' fields."""
    return {
        "label_dialects": _dialects(get("LABEL_DIALECTS"), "LABEL_DIALECTS"),
        "traefik_exposed_by_default": flag(
            get("TRAEFIK_EXPOSED_BY_DEFAULT"), "TRAEFIK_EXPOSED_BY_DEFAULT",
            defaults.traefik_exposed_by_default,
        ),
        "traefik_dynamic_config": paths(get("TRAEFIK_DYNAMIC_CONFIG"), "TRAEFIK_DYNAMIC_CONFIG"),
        "traefik_default_rule": rule_template(get("TRAEFIK_DEFAULT_RULE"), "TRAEFIK_DEFAULT_RULE"),
        "traefik_rule_syntax": choice(
            get("TRAEFIK_RULE_SYNTAX"), "TRAEFIK_RULE_SYNTAX", defaults.traefik_rule_syntax,
        ),
        "traefik_server_urls": server_url_prefixes(
            get("TRAEFIK_SERVER_URLS"), "TRAEFIK_SERVER_URLS"
        ),
        "user_secrets": name_pattern(get("USER_SECRETS"), "USER_SECRETS"),
        "trust_stack_namespace": flag(
            get("TRUST_STACK_NAMESPACE"), "TRUST_STACK_NAMESPACE", defaults.trust_stack_namespace
        ),
    }  # fmt: skip


def _dns01(get: Variable, defaults: Settings) -> dict[str, Any]:
    """The DNS-01 settings, as Settings' fields."""
    return {
        "dns01_provider": _dns_provider(get("DNS01_PROVIDER"), "DNS01_PROVIDER"),
        "dns01_resolvers": resolvers(get("DNS01_RESOLVERS"), "DNS01_RESOLVERS"),
        "dns01_propagation_timeout": number(
            get("DNS01_PROPAGATION_TIMEOUT"), "DNS01_PROPAGATION_TIMEOUT", 1,
            MAX_PROPAGATION_TIMEOUT, defaults.dns01_propagation_timeout,
        ),
        "dns01_propagation_interval": number(
            get("DNS01_PROPAGATION_INTERVAL"), "DNS01_PROPAGATION_INTERVAL", 1,
            MAX_PROPAGATION_INTERVAL, defaults.dns01_propagation_interval,
        ),
        "dns01_nameserver_port": number(
            get("DNS01_NAMESERVER_PORT"), "DNS01_NAMESERVER_PORT", 1, 65535,
            defaults.dns01_nameserver_port,
        ),
        "secrets_dir": path(get("SECRETS_DIR"), "SECRETS_DIR") or defaults.secrets_dir,
        "dns01_allowed": dns01_grants(get("DNS01_ALLOWED"), "DNS01_ALLOWED"),
    }  # fmt: skip


def _order_share(get: Variable, default: OrderShare) -> OrderShare:
    weight = number(get("FAILED_ORDER_WEIGHT"), "FAILED_ORDER_WEIGHT", 1,
                    MAX_FAILED_ORDER_WEIGHT, default.failed_weight)  # fmt: skip
    return order_share(get("ORDERS_PER_CLAIMANT"), weight, "ORDERS_PER_CLAIMANT", default)


def _dns_provider(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    if not DNS_PROVIDER_RE.fullmatch(value.lower()):
        raise invalid(
            name, value, "must be rfc2136 or a dns-lexicon provider's name, e.g. cloudflare"
        )
    return value.lower()
