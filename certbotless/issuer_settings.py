"""CERTBOTLESS_ACME_ISSUERS: the CAs certificates are ordered from, in order (docs/environment.md).

Inline, one issuer per `;` (or line), each its name, its directory and options as key=value
(shell quoting for values with spaces):

    letsencrypt production; zerossl https://acme.zerossl.com/v2/DV90 eab_kid=abc
    eab_hmac_secret=zerossl-eab-hmac

or the path of a YAML file (a Swarm config): a list of mappings with the same keys and `name`,
`directory`. The EAB HMAC key (and the key id, if wanted) comes from a Swarm secret, named here
and read from the secrets directory when the issuer is built. Without the variable, the single
CERTBOTLESS_ACME_DIRECTORY and CERTBOTLESS_EAB_* settings make a one-issuer list.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from certbotless.setting_values import PREFIX, SettingsError, is_base64url, url_parts

VARIABLE = "ACME_ISSUERS"
# The one issuer made from CERTBOTLESS_ACME_DIRECTORY (what `certbotless.issuer=` names then).
DEFAULT_NAME = "default"
# Docker secret names allow dots, so an issuer's account key secret can carry its name.
ISSUER_NAME_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?")
OPTIONS = ("eab_kid", "eab_kid_secret", "eab_hmac_secret", "profile", "preferred_chain", "caa")
SECRET_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class IssuerSetting:
    """One CA of the list: where it is, and how certbotless talks to it."""

    name: str
    directory: str
    eab_kid: str | None = None
    eab_kid_secret: str | None = None  # a Swarm secret holding the key id, if not given inline
    eab_hmac_secret: str | None = None  # a Swarm secret holding the base64url HMAC key
    eab_hmac_key: str | None = None  # only the legacy CERTBOTLESS_EAB_HMAC_KEY sets it inline
    profile: str | None = None  # for certificates whose labels ask for none
    preferred_chain: str | None = None
    caa: str | None = None  # CAA identities (comma-separated) or `off`; None: the known CA's

    def external_account_binding(self, secrets_dir: Path) -> tuple[str, str] | None:
        """(key id, HMAC key), read from the secrets where named; None without EAB. Raises
        SettingsError naming the secret that cannot be read or is not base64url."""
        kid = self.eab_kid or (_read(secrets_dir, self.eab_kid_secret, self.name)
                               if self.eab_kid_secret else None)  # fmt: skip
        key = self.eab_hmac_key or (_read(secrets_dir, self.eab_hmac_secret, self.name)
                                    if self.eab_hmac_secret else None)  # fmt: skip
        if not kid or not key:
            return None
        if not is_base64url(key):
            raise SettingsError(f"issuer {self.name}: the EAB HMAC key in secret "
                                f"{self.eab_hmac_secret} is not base64url text")  # fmt: skip
        return kid, key


def _read(secrets_dir: Path, secret: str, issuer: str) -> str:
    try:
        return (secrets_dir / secret).read_text().strip()
    except OSError as error:
        raise SettingsError(
            f"issuer {issuer}: cannot read secret {secret} at {secrets_dir / secret} "
            f"({error.strerror}); mount it into the certbotless service"
        ) from None


def parse_issuers(value: str, shortcuts: Mapping[str, str]) -> tuple[IssuerSetting, ...]:
    """CERTBOTLESS_ACME_ISSUERS: an inline list, or the path of a YAML file."""
    text = value.strip()
    if text.startswith("/"):
        entries = _yaml_entries(Path(text))
    else:
        entries = [_inline_entry(part) for part in re.split(r"[;\n]", text) if part.strip()]
    if not entries:
        raise SettingsError(f"{PREFIX}{VARIABLE} names no issuer; write `NAME DIRECTORY`, e.g. "
                            "`letsencrypt production`")  # fmt: skip
    issuers = tuple(_issuer(entry, shortcuts) for entry in entries)
    names = [issuer.name for issuer in issuers]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise SettingsError(f"{PREFIX}{VARIABLE} names issuer {twice[0]} twice; names are "
                            "what certbotless.issuer= and the account key secrets use")  # fmt: skip
    return issuers


def _inline_entry(part: str) -> dict[str, str]:
    try:
        words = shlex.split(part)
    except ValueError as error:
        problem = f"{PREFIX}{VARIABLE}: cannot read {part.strip()!r} ({error})"
        raise SettingsError(problem) from None
    if len(words) < 2:
        raise SettingsError(
            f"{PREFIX}{VARIABLE}: {part.strip()!r} must start with a name and "
            "a directory, e.g. `zerossl https://acme.zerossl.com/v2/DV90`"
        )
    entry = {"name": words[0], "directory": words[1]}
    for word in words[2:]:
        key, sep, option = word.partition("=")
        if not sep:
            raise SettingsError(f"{PREFIX}{VARIABLE}: issuer {words[0]}: {word!r} is not "
                                "key=value")  # fmt: skip
        entry[key] = option
    return entry


def _yaml_entries(file: Path) -> list[dict[str, str]]:
    try:
        document = yaml.safe_load(file.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise SettingsError(f"{PREFIX}{VARIABLE}={file}: cannot read it ({error})") from None
    if not isinstance(document, list) or not all(isinstance(e, dict) for e in document):
        raise SettingsError(f"{PREFIX}{VARIABLE}={file}: must be a YAML list of issuers, each a "
                            "mapping with name, directory and options")  # fmt: skip
    return [{str(k): str(v) for k, v in entry.items() if v is not None} for entry in document]


def _issuer(entry: Mapping[str, str], shortcuts: Mapping[str, str]) -> IssuerSetting:
    name = entry.get("name", "")
    where = f"{PREFIX}{VARIABLE}: issuer {name or '(no name)'}"
    if not ISSUER_NAME_RE.fullmatch(name):
        raise SettingsError(f"{where}: the name must be lowercase letters, digits and '-' "
                            "(at most 32), e.g. letsencrypt")  # fmt: skip
    directory = shortcuts.get(entry.get("directory", ""), entry.get("directory", ""))
    if url_parts(directory, ("https",)) is None:
        raise SettingsError(f"{where}: {directory!r} is not an https:// directory URL nor one of "
                            + ", ".join(shortcuts))  # fmt: skip
    unknown = sorted(set(entry) - {"name", "directory", *OPTIONS})
    if unknown:
        raise SettingsError(f"{where}: unknown option {unknown[0]}; the options are "
                            + ", ".join(OPTIONS))  # fmt: skip
    for option in ("eab_kid_secret", "eab_hmac_secret"):
        secret = entry.get(option)
        if secret is not None and not SECRET_NAME_RE.fullmatch(secret):
            raise SettingsError(f"{where}: {option} must be a Swarm secret's name")
    has_kid = bool(entry.get("eab_kid") or entry.get("eab_kid_secret"))
    if has_kid != bool(entry.get("eab_hmac_secret")):
        raise SettingsError(f"{where}: External Account Binding needs both eab_kid (or "
                            "eab_kid_secret) and eab_hmac_secret, or neither")  # fmt: skip
    return IssuerSetting(
        name, directory, entry.get("eab_kid") or None, entry.get("eab_kid_secret"),
        entry.get("eab_hmac_secret"), profile=entry.get("profile") or None,
        preferred_chain=entry.get("preferred_chain") or None, caa=entry.get("caa") or None,
    )  # fmt: skip
