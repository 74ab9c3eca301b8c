"""The pending challenges: HTTP-01's key authorizations (served by `responder.py`, published by
`http01.py`) and TLS-ALPN-01's challenge certificates (served by `alpn_responder.py`, published
by `tls_alpn01.py`).

They live as files in one directory so that a `certbotless issue` run through `docker exec`
is answered by the daemon's responders in the same container.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from pathlib import Path

log = logging.getLogger(__name__)

# RFC 8555 §8.3: base64url, at least 128 bits of entropy; 43 chars is typical.
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{22,128}$")


def is_valid_token(token: str) -> bool:
    return bool(_TOKEN_RE.match(token))


class _SharedFiles:
    """Small files in one directory, named by the SHA-256 of a key (the name never comes from a
    request), each counting its users: concurrent orders that share a name get the same
    authorization from the CA, and the file goes only when the last of them removes it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._users: dict[str, int] = {}
        self._lock = threading.Lock()

    def path(self, key: str) -> Path:
        return self.directory / hashlib.sha256(key.encode()).hexdigest()

    def put(self, key: str, content: str) -> None:
        path = self.path(key)
        temporary = path.with_suffix(".tmp")
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            # Owner-only: a TLS-ALPN-01 file holds its certificate's (throwaway) key.
            temporary.touch(mode=0o600)
            temporary.write_text(content)
            os.replace(temporary, path)
            self._users[key] = self._users.get(key, 0) + 1

    def get(self, key: str) -> str | None:
        try:
            return self.path(key).read_text()
        except FileNotFoundError:
            return None

    def remove(self, key: str) -> None:
        with self._lock:
            users = self._users.pop(key, 0)
            if users > 1:
                self._users[key] = users - 1
                return
            self.path(key).unlink(missing_ok=True)


class TokenStore:
    """HTTP-01's key authorizations by token, as files another process in the container
    (`docker exec … issue`) shares. `alpn` beside them: TLS-ALPN-01's, by name."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._files = _SharedFiles(directory)
        self.alpn = AlpnCertificates(directory / "tls-alpn-01")

    def put(self, token: str, key_authorization: str) -> None:
        if not is_valid_token(token):
            raise ValueError(f"refusing malformed ACME token {token!r}")
        self._files.put(token, key_authorization)

    def get(self, token: str) -> str | None:
        if not is_valid_token(token):
            return None
        return self._files.get(token)

    def remove(self, token: str) -> None:
        if is_valid_token(token):
            self._files.remove(token)


def a_label(name: str) -> str:
    """A hostname as an SNI carries it: lowercase ASCII (IDNA A-labels)."""
    return name.rstrip(".").encode("idna").decode("ascii").lower()


class AlpnCertificates:
    """TLS-ALPN-01's pending challenge certificates (certificate and key, PEM, one file per
    hostname), which `alpn_responder.AlpnResponder` loads for the SNI that names them."""

    def __init__(self, directory: Path) -> None:
        self._files = _SharedFiles(directory)

    def put(self, domain: str, pem: str) -> None:
        self._files.put(a_label(domain), pem)

    def file_for(self, server_name: str) -> Path | None:
        """The PEM file for a name the CA asks about, if one is pending."""
        try:
            path = self._files.path(a_label(server_name))
        except UnicodeError:
            return None
        return path if path.exists() else None

    def remove(self, domain: str) -> None:
        self._files.remove(a_label(domain))
