import re
from collections.abc import Iterator
from pathlib import Path

import certifi
import pytest

from certbotless.redaction import redacted_url
from certbotless.settings import (
    LETSENCRYPT_STAGING,
    VARIABLES,
    Settings,
    SettingsError,
    unknown_variables,
)
from tests.support.paths import REPO

ENVIRONMENT = REPO / "docs" / "environment.md"


def documented_variables() -> set[str]:
    """The variables of the documentation's sidecar environment table (docs/environment.md)."""
    page = ENVIRONMENT.read_text()
    section = page.split("# Environment (sidecar)\n", 1)[1].split("\n#", 1)[0]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"CERTBOTLESS_([A-Z0-9_]+)", row)}


def test_dns01_settings() -> None:
    settings = Settings.from_env({
        "CERTBOTLESS_DNS01_PROVIDER": "Cloudflare",
        "CERTBOTLESS_DNS01_RESOLVERS": "10.0.0.53, 10.0.0.54:5353,[2001:db8::53]:53,2001:db8::54",
        "CERTBOTLESS_DNS01_PROPAGATION_TIMEOUT": "30",
        "CERTBOTLESS_SECRETS_DIR": "/run/dns-secrets",
    })  # fmt: skip
    assert settings.dns01_provider == "cloudflare"
    assert settings.dns01_resolvers == (
        ("10.0.0.53", 53), ("10.0.0.54", 5353), ("2001:db8::53", 53), ("2001:db8::54", 53),
    )  # fmt: skip
    assert (settings.dns01_propagation_timeout, settings.dns01_propagation_interval) == (30, 2)
    assert settings.secrets_dir == Path("/run/dns-secrets")
    defaults = Settings.from_env({})
    assert (defaults.dns01_provider, defaults.dns01_resolvers) == (None, ())


def test_defaults_and_shortcuts() -> None:
    settings = Settings.from_env({"CERTBOTLESS_ACME_DIRECTORY": "staging"})
    assert settings.acme_directory == LETSENCRYPT_STAGING
    assert settings.concurrency == 8


def test_the_documentation_lists_every_variable_the_code_reads_and_no_other() -> None:
    assert documented_variables() == set(VARIABLES)


class Recording(dict[str, str]):
    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        self.asked.add(key)
        return super().get(key, default)


def test_every_declared_variable_is_read() -> None:
    env = Recording()
    Settings.from_env(env)
    assert env.asked == {f"CERTBOTLESS_{name}" for name in VARIABLES}


SECRET = "T0KEN-in-the-path"
PASSWORD = "pa55-w0rd-secret"
SMTP = {"CERTBOTLESS_ALERT_EMAIL": "ops@example.com"}
WEBHOOK = {"CERTBOTLESS_ALERT_WEBHOOK": "https://hooks.example.com/x"}

# Every documented variable, each with values that must be refused: (value, other variables).
BAD: dict[str, list[tuple[str, dict[str, str]]]] = {
    "ACME_DIRECTORY": [("http://insecure/dir", {}), ("https://", {}), ("stagin", {}),
                       ("https://ca.example/dir with space", {}), ("https://ca:port/dir", {})],
    "EMAIL": [("ops", {}), ("ops@", {}), ("mailto:ops@example.com", {}), ("a@b", {}),
              ("ops@exa mple.com", {})],
    "CA_BUNDLE": [("/nonexistent.pem", {}), (__file__, {})],
    "ACCOUNT_KEY_FILE": [("run/secrets/key", {})],
    "SERVICE": [("edge certbotless", {}), ("-edge", {}), ("e" * 64, {}), ("edge.sidecar", {})],
    "NGINX_SERVICE": [("nginx;rm", {}), ("\uff4eginx", {})],
    "NGINX_CONF": [("yours", {})],
    "SCHEDULE": [("every day", {}), ("0 0 31 2 *", {}), ("²", {}), ("*/0 * * * *", {})],
    "CONCURRENCY": [("0", {}), ("²", {}), ("١٢", {}), ("1_0", {}), ("-1", {}), ("8.5", {}),
                    ("257", {})],
    "ACME_ISSUERS": [("a http://x.test/dir", {}), ("a production; a staging", {}),
                     ("a production", {"CERTBOTLESS_ACME_DIRECTORY": "staging"})],
    "EAB_KID": [("kid-1", {}), ("kid 1", {"CERTBOTLESS_EAB_HMAC_KEY": "zWNDZM6eQGHW"})],
    "EAB_HMAC_KEY": [("zWNDZM6eQGHW", {}), ("not base64!", {"CERTBOTLESS_EAB_KID": "kid-1"})],
    "PREFERRED_CHAIN": [("ISRG\nRoot X1", {})],
    "CAA_IDENTITIES": [("letsencrypt.org; pki.goog", {}), ("letsencrypt.org,,pki.goog", {})],
    "RESPONDER_LISTEN": [("0.0.0.0:http", {}), ("0.0.0.0:²", {}), ("0.0.0.0:0", {}),
                         ("0.0.0.0:65536", {}), ("example.com:8402", {}), ("[::]:8402", {})],
    "RESPONDER_UPSTREAM": [("certbotless", {}), ("certbotless:port", {}),
                           ("cert botless:8402", {}), ("certbotless:8402;", {})],
    "CHALLENGE_DIR": [("challenges", {})],
    "LOCK_FILE": [("pass.lock", {})],
    "CERTS_DIR": [("certs", {}), ("/etc/nginx/my certs", {}), ("/", {}), ("/etc/certs;", {})],
    "SELF_CHECK": [("maybe", {}), ("\uff12", {})],
    "FRONT_SUBNET": [("front", {}), (",", {}), ("10.0.0.0/33", {}), ("10.0.0.0/24,", {})],
    "LABEL_DIALECTS": [("nginx-proxy", {}), (",", {}), ("traefik,caddy", {})],
    "TRAEFIK_EXPOSED_BY_DEFAULT": [("maybe", {})],
    "TRAEFIK_RULE_SYNTAX": [("v1", {}), ("3", {})],
    "TRAEFIK_DYNAMIC_CONFIG": [("dynamic.yml", {}), ("/etc/a.yml,relative.toml", {})],
    "TRAEFIK_SERVER_URLS": [("legacy.internal", {}), ("ftp://files.internal", {}),
                            ("http://a.internal?x=1", {}), ("http://user@a.internal", {}),
                            ("http://a.internal:99999", {})],
    "USER_SECRETS": [("shop_htpasswd_(", {}), ("[a-z", {})],
    "TRUST_STACK_NAMESPACE": [("yes please", {})],
    "ROLLOUT_TIMEOUT": [("0", {}), ("²", {}), ("1e30", {}), ("100000", {})],
    "GC_KEEP_VERSIONS": [("0", {}), ("²", {}), ("three", {})],
    "GC_KEEP_EXPIRED_DAYS": [("²", {}), ("-1", {}), ("99999999", {}), ("1.5", {})],
    "LOG_LEVEL": [("verbose", {}), ("TRACE", {})],
    "LOG_FORMAT": [("yaml", {})],
    "METRICS_LISTEN": [("on", {}), ("0.0.0.0:99999", {}), ("9402x", {})],
    "TLS_ALPN_LISTEN": [("on", {}), ("0.0.0.0:0", {}), ("[::]:8403", {})],
    # A status page with no protection is refused as much as a malformed address.
    "STATUS_LISTEN": [("0.0.0.0:8403", {}),
                      ("localhost:8403", {"CERTBOTLESS_STATUS_ALLOW_FROM": "10.0.0.0/8"})],
    "STATUS_HTPASSWD": [("run/secrets/htpasswd", {"CERTBOTLESS_STATUS_LISTEN": ":8403"})],
    "STATUS_ALLOW_FROM": [("10.0.0.0/33", {"CERTBOTLESS_STATUS_LISTEN": ":8403"}),
                          ("everyone", {"CERTBOTLESS_STATUS_LISTEN": ":8403"})],
    "STATUS_FORWARD_AUTH": [("authelia:9091/api/verify", {"CERTBOTLESS_STATUS_LISTEN": ":8403"})],
    "STATUS_DIRECT_FROM": [("edge", {"CERTBOTLESS_STATUS_LISTEN": ":8403",
                                     "CERTBOTLESS_STATUS_ALLOW_FROM": "10.0.0.0/8"})],
    "STATUS_ACTIONS": [("sure", {"CERTBOTLESS_STATUS_LISTEN": ":8403",
                                 "CERTBOTLESS_STATUS_ALLOW_FROM": "10.0.0.0/8"}),
                       # an allowlist alone does not say who renews or revokes
                       ("true", {"CERTBOTLESS_STATUS_LISTEN": ":8403",
                                 "CERTBOTLESS_STATUS_ALLOW_FROM": "10.0.0.0/8"})],
    "ALERT_WEBHOOK": [(f"hooks.example.com/services/{SECRET}", {}),
                      (f"ftp://hooks.example.com/{SECRET}", {}),
                      (f"https:///{SECRET}", {})],
    "ALERT_WEBHOOK_FORMAT": [("teams", WEBHOOK)],
    "SMTP_URL": [("mail.example.com", SMTP), (f"http://ops:{PASSWORD}@mail.example.com", SMTP),
                 (f"smtp://ops:{PASSWORD}@mail.example.com:port", SMTP),
                 (f"smtp://ops:{PASSWORD}@:587", SMTP),
                 (f"smtp://ops:{PASSWORD}@mail.example.com?from=nobody", SMTP),
                 (f"smtp://ops:{PASSWORD}@mail.example.com", {})],
    "ALERT_EMAIL": [("ops@example.com", {}),
                    ("ops@example.com,ops", {"CERTBOTLESS_SMTP_URL": "smtp://mail.example.com"})],
    "DNS01_PROVIDER": [("cloud flare", {}), ("-bind", {}), ("route53;rm", {})],
    "DNS01_ALLOWED": [("shop_*", {}), ("=example.com", {}), ("shop_*=exa mple.com", {}),
                      ("shop_*=", {})],
    "ORDERS_PER_CLAIMANT": [("30", {}), ("0/3h", {}), ("30/8d", {}), ("x/1h", {}), ("30/3w", {})],
    "FAILED_ORDER_WEIGHT": [("0", {}), ("101", {}), ("three", {})],
    "DNS01_RESOLVERS": [("ns1.example.com", {}), ("10.0.0.53:0", {}), ("10.0.0.53,", {}),
                        ("2001:db8::g", {}), ("10.0.0.53:dns", {})],
    "DNS01_PROPAGATION_TIMEOUT": [("0", {}), ("3601", {}), ("1m", {})],
    "DNS01_PROPAGATION_INTERVAL": [("0", {}), ("61", {}), ("0.5", {})],
    "DNS01_NAMESERVER_PORT": [("0", {}), ("65536", {}), ("domain", {})],
    "SECRETS_DIR": [("run/secrets", {})],
    "TRAEFIK_DEFAULT_RULE": [("Host(`{{ .Foo }}.example.com`)", {}),
                             ('Host(`{{ printf "%s" .Name }}`)', {}),
                             ("Host(`{{ normalize .Name`)", {}),
                             ('Host(`{{ index .Name "x" }}`)', {})],
}  # fmt: skip
# Shown redacted in errors (their value is a secret, or holds one).
SECRET_VARIABLES = {"EAB_HMAC_KEY", "ALERT_WEBHOOK", "SMTP_URL"}


def test_every_documented_variable_has_bad_values_below() -> None:
    assert set(BAD) == documented_variables()


def bad_cases() -> Iterator[tuple[str, str, dict[str, str]]]:
    for name, cases in BAD.items():
        for value, others in cases:
            yield name, value, others


@pytest.mark.parametrize(("name", "value", "others"), list(bad_cases()))
def test_a_bad_value_is_one_error_naming_the_variable_and_the_value(
    name: str, value: str, others: dict[str, str]
) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({f"CERTBOTLESS_{name}": value, **others})
    message = str(caught.value)
    assert f"CERTBOTLESS_{name}" in message
    if name in SECRET_VARIABLES:
        assert SECRET not in message and PASSWORD not in message
        assert "not base64!" not in message and "zWND" not in message
    elif "set both" not in message:  # a missing partner: the value is not what is wrong
        assert repr(value) in message or repr(value.strip()) in message


def test_good_values_are_taken() -> None:
    settings = Settings.from_env({
        "CERTBOTLESS_EMAIL": "ops+certs@example.com",
        "CERTBOTLESS_CA_BUNDLE": certifi.where(),
        "CERTBOTLESS_SERVICE": "edge_certbotless",
        "CERTBOTLESS_CONCURRENCY": "16",
        "CERTBOTLESS_RESPONDER_LISTEN": ":8402",
        "CERTBOTLESS_RESPONDER_UPSTREAM": "edge_certbotless:8402",
        "CERTBOTLESS_CERTS_DIR": "/etc/nginx/certs/",
        "CERTBOTLESS_ROLLOUT_TIMEOUT": "300",
        "CERTBOTLESS_GC_KEEP_EXPIRED_DAYS": "0",
        "CERTBOTLESS_LOG_LEVEL": "debug",
        "CERTBOTLESS_METRICS_LISTEN": "OFF",
        "CERTBOTLESS_TLS_ALPN_LISTEN": "127.0.0.1:9443",
        "CERTBOTLESS_SMTP_URL": "smtps://ops:p%40ss@mail.example.com:465?from=cbl@example.com",
        "CERTBOTLESS_ALERT_EMAIL": "ops@example.com, oncall@example.com",
    })  # fmt: skip
    assert settings.responder_listen == ("0.0.0.0", 8402)
    assert (settings.certs_dir, settings.rollout_timeout) == ("/etc/nginx/certs", 300)
    assert (settings.log_level, settings.metrics_listen) == ("DEBUG", None)
    assert settings.tls_alpn_listen == ("127.0.0.1", 9443)
    assert Settings().tls_alpn_listen == ("0.0.0.0", 8404)
    assert Settings.from_env({"CERTBOTLESS_TLS_ALPN_LISTEN": "off"}).tls_alpn_listen is None
    assert settings.alert_email == ("ops@example.com", "oncall@example.com")


def test_the_default_rule_is_traefiks_template_language() -> None:
    template = Settings.from_env({
        "CERTBOTLESS_TRAEFIK_DEFAULT_RULE":
            'Host(`{{ normalize .Name }}.{{ index .Labels "zone" | lower }}.example.com`)',
    }).traefik_default_rule  # fmt: skip
    assert template is not None
    # .Name as Traefik's Swarm provider makes it: the service's name, normalized.
    assert template.render("shop_web.1", {"zone": "EU"}) == "Host(`shop-web-1.eu.example.com`)"
    assert template.render("_a__b_", {}) == "Host(`a-b..example.com`)"  # a missing label: ""
    assert Settings.from_env({}).traefik_default_rule is None


def test_unknown_variables_are_named() -> None:
    env = {"CERTBOTLESS_CONCURENCY": "4", "CERTBOTLESS_IMAGE": "x", "CERTBOTLESS_EMAIL": "a"}
    assert unknown_variables(env) == ["CERTBOTLESS_CONCURENCY"]


def test_redacted_urls_keep_the_host_only() -> None:
    assert redacted_url("https://hooks.slack.com/services/T0/B0/XyZ") == "https://hooks.slack.com/…"
    assert redacted_url("smtp://ops:pw@mail.example.com:587?from=a@b.c") == (
        "smtp://ops:…@mail.example.com:587/…"
    )
    assert redacted_url("https://example.com") == "https://example.com"


def test_eab_needs_both_parts_and_a_base64url_key() -> None:
    with pytest.raises(SettingsError, match="base64url"):
        Settings.from_env({"CERTBOTLESS_EAB_KID": "k", "CERTBOTLESS_EAB_HMAC_KEY": "not base64!"})
    settings = Settings.from_env(
        {"CERTBOTLESS_EAB_KID": "kid-1", "CERTBOTLESS_EAB_HMAC_KEY": "zWNDZM6eQGHWpSRTPal5eIUYFTu7"}
    )
    assert (settings.eab_kid, settings.eab_hmac_key) == ("kid-1", "zWNDZM6eQGHWpSRTPal5eIUYFTu7")
    assert "zWND" not in repr(settings)


def test_the_front_subnet_decides_proxy_protocol() -> None:
    default = Settings.from_env({})
    assert default.front_subnets == ("10.222.0.0/24",) and default.proxy_protocol
    several = Settings.from_env({"CERTBOTLESS_FRONT_SUBNET": "10.9.0.7/16, fd00::/64"})
    assert several.front_subnets == ("10.9.0.0/16", "fd00::/64")
    direct = Settings.from_env({"CERTBOTLESS_FRONT_SUBNET": "none"})
    assert direct.front_subnets == () and not direct.proxy_protocol
    with pytest.raises(SettingsError, match=r"CERTBOTLESS_FRONT_SUBNET.*not a network"):
        Settings.from_env({"CERTBOTLESS_FRONT_SUBNET": "front"})


def test_the_dns_providers_credentials_are_secrets_and_their_names_are_not(tmp_path: Path) -> None:
    for option, value in {
        "rfc2136-server": "ns1.example.com",
        "rfc2136-key-name": "certbotless",
        "rfc2136-key-secret": "c2VjcmV0IHRzaWcga2V5",
        "powerdns-auth_token": "pdns-api-key",
        "ovh-auth-application-secret": "ovh-secret",
        "route53-auth-access-key": "AKIDEXAMPLE",
    }.items():
        (tmp_path / f"certbotless-dns-{option}").write_text(value + "\n")
    secrets = Settings(secrets_dir=tmp_path).secrets
    assert {"c2VjcmV0IHRzaWcga2V5", "pdns-api-key", "ovh-secret"} <= secrets
    assert not {"ns1.example.com", "certbotless", "AKIDEXAMPLE"} & secrets


def test_two_listeners_on_one_port_are_refused_by_name() -> None:
    env = {"CERTBOTLESS_STATUS_LISTEN": ":8404", "CERTBOTLESS_STATUS_ALLOW_FROM": "10.0.0.0/8"}
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(env)
    assert str(refused.value) == (
        "CERTBOTLESS_STATUS_LISTEN and CERTBOTLESS_TLS_ALPN_LISTEN both listen on port 8404: "
        "give each its own port"
    )
    assert Settings.from_env({**env, "CERTBOTLESS_TLS_ALPN_LISTEN": "off"}).status_page
