"""Small builders for model values used across unit tests."""

from datetime import UTC, datetime, timedelta

from certbotless.model import KeyType, StoredCert


def stored_cert(
    name: str = "app.example.test",
    domains: tuple[str, ...] = ("app.example.test",),
    issued: datetime = datetime(2026, 1, 1, tzinfo=UTC),
    lifetime: timedelta = timedelta(days=90),
    version: str = "1",
    key_type: KeyType = KeyType.EC256,
) -> StoredCert:
    return StoredCert(
        name=name,
        domains=domains,
        serial="ab" + version,
        not_before=issued,
        not_after=issued + lifetime,
        key_type=key_type,
        config_name=f"cbl-{name}-{version}",
        config_id="cfg" + version,
        secret_name=f"cbl-{name}-{version}",
        secret_id="sec" + version,
    )
