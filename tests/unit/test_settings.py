import pytest

from certbotless.settings import LETSENCRYPT_STAGING, Settings, SettingsError


def test_defaults_and_shortcuts() -> None:
    settings = Settings.from_env({"CERTBOTLESS_ACME_DIRECTORY": "staging"})
    assert settings.acme_directory == LETSENCRYPT_STAGING
    assert settings.concurrency == 4


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("ACME_DIRECTORY", "http://insecure/dir", "https://"),
        ("SCHEDULE", "every day", "cron"),
        ("CONCURRENCY", "0", "at least 1"),
        ("CA_BUNDLE", "/nonexistent.pem", "no such file"),
        ("RESPONDER_LISTEN", "0.0.0.0:http", "HOST:PORT"),
    ],
)
def test_bad_settings_name_the_variable(name: str, value: str, fragment: str) -> None:
    with pytest.raises(SettingsError, match=fragment) as caught:
        Settings.from_env({f"CERTBOTLESS_{name}": value})
    assert f"CERTBOTLESS_{name}" in str(caught.value)
