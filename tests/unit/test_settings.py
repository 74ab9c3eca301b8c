import pytest

from certbotless.settings import LETSENCRYPT_STAGING, Settings, SettingsError


def test_defaults_and_shortcuts() -> None:
    settings = Settings.from_env({"CERTBOTLESS_ACME_DIRECTORY": "staging"})
    assert settings.acme_directory == LETSENCRYPT_STAGING
    assert settings.concurrency == 8


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("ACME_DIRECTORY", "http://insecure/dir", "https://"),
        ("SCHEDULE", "every day", "cron"),
        ("CONCURRENCY", "0", "at least 1"),
        ("CA_BUNDLE", "/nonexistent.pem", "no such file"),
        ("RESPONDER_LISTEN", "0.0.0.0:http", "HOST:PORT"),
        ("EAB_KID", "kid-1", "EAB_HMAC_KEY"),
    ],
)
def test_bad_settings_name_the_variable(name: str, value: str, fragment: str) -> None:
    with pytest.raises(SettingsError, match=fragment) as caught:
        Settings.from_env({f"CERTBOTLESS_{name}": value})
    assert f"CERTBOTLESS_{name}" in str(caught.value)


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
