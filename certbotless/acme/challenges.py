"""HTTP-01: the pending key authorizations (the server that answers for them is `responder.py`;
the solver that publishes them, and checks the edge serves them, is `http01.py`).

Tokens live as files in one directory so that a `certbotless issue` run through `docker exec`
is answered by the daemon's responder in the same container.
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


class TokenStore:
    """Key authorizations as files named by the SHA-256 of their token: the file name never comes
    from a request, and another process in the container (`docker exec … issue`) shares them.

    Concurrent orders that share a name get the same authorization, so the same token, from the
    CA: each `put` counts a user, and the file goes only when the last of them calls `remove`.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._users: dict[str, int] = {}
        self._lock = threading.Lock()

    def _path(self, token: str) -> Path:
        return self.directory / hashlib.sha256(token.encode()).hexdigest()

    def put(self, token: str, key_authorization: str) -> None:
        if not is_valid_token(token):
            raise ValueError(f"refusing malformed ACME token {token!r}")
        path = self._path(token)
        temporary = path.with_suffix(".tmp")
        with self._lock:
            temporary.write_text(key_authorization)
            os.replace(temporary, path)
            self._users[token] = self._users.get(token, 0) + 1

    def get(self, token: str) -> str | None:
        if not is_valid_token(token):
            return None
        try:
            return self._path(token).read_text()
        except FileNotFoundError:
            return None

    def remove(self, token: str) -> None:
        if not is_valid_token(token):
            return
        with self._lock:
            users = self._users.pop(token, 0)
            if users > 1:
                self._users[token] = users - 1
                return
            self._path(token).unlink(missing_ok=True)
