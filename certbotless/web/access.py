"""Who may see the status page: every protection configured must let the request in (an
allowlist of client networks, basic auth from htpasswd lines, a forward-auth service), and
there is always at least one (settings refuse a page without)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import logging
import secrets
import threading
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import requests

from certbotless.settings import StatusPage
from certbotless.web.peers import in_networks

log = logging.getLogger(__name__)

REALM = "certbotless status"
_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
# Headers a forward-auth service decides on (Traefik's and nginx's names).
_FORWARDED_TO_AUTH = ("Cookie", "Authorization", "User-Agent", "Accept")
# What a proxy says about the client: believed from the edge's nginx only, which sets them.
_PROXY_HEADERS = ("X-Forwarded-", "Forwarded", "X-Real-Ip", "X-Original-")
FORWARD_AUTH_TIMEOUT = 5.0
_REMEMBERED_LOGINS = 256


class StatusPageError(Exception):
    """The status page cannot start as configured; the message says what to fix."""


class Refused(Exception):
    def __init__(self, status: int, message: str, basic_challenge: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.basic_challenge = basic_challenge


@dataclass(frozen=True)
class Visitor:
    """Who is asking, in the words the action log uses."""

    name: str


def _unknown_user_hash(users: Mapping[str, bytes]) -> bytes:
    """A hash no password matches, at the highest cost of the users' (`$2b$NN$…`)."""
    costs = [int(hashed[4:6]) for hashed in users.values() if hashed[4:6].isdigit()]
    return bcrypt.hashpw(b"no such user", bcrypt.gensalt(rounds=max(costs, default=10)))


def read_htpasswd(path: Path) -> dict[str, bytes]:
    """user → bcrypt hash, from htpasswd lines (`htpasswd -B`); other hashes are refused."""
    try:
        text = path.read_text()
    except OSError as error:
        raise StatusPageError(
            f"CERTBOTLESS_STATUS_HTPASSWD={path}: cannot read it ({error.strerror}); mount "
            "the Swarm secret there (docker secret create … with `htpasswd -nB USER` lines)"
        ) from None
    users: dict[str, bytes] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        user, _, hashed = line.strip().partition(":")
        if not user or not hashed.startswith(_BCRYPT_PREFIXES):
            raise StatusPageError(
                f"CERTBOTLESS_STATUS_HTPASSWD={path}: line {number} is not USER:BCRYPT-HASH; "
                "only bcrypt is accepted: make the lines with `htpasswd -nB USER`"
            )
        # $2y$ (Apache's name) is the same algorithm as $2b$.
        users[user] = ("$2b$" + hashed[4:]).encode()
    if not users:
        raise StatusPageError(f"CERTBOTLESS_STATUS_HTPASSWD={path} holds no user")
    return users


class Gate:
    """Admits a request or refuses it with the status and words to answer."""

    def __init__(
        self,
        page: StatusPage,
        ask: Callable[..., requests.Response] = requests.get,
        edge: Container[str] = frozenset(),
    ) -> None:
        self.networks = [ipaddress.ip_network(n) for n in page.allow_from]
        # The edge's nginx tasks (web.peers.EdgePeers), and who may reach the page without it.
        self.edge = edge
        self.direct_from = page.direct_from
        self.users = read_htpasswd(page.htpasswd) if page.htpasswd else None
        # An unknown user costs a bcrypt check as long as a known one's: the time taken tells
        # no user names (htpasswd -nB uses cost 5, others more).
        self._unknown_user = _unknown_user_hash(self.users or {})
        self.forward_auth = page.forward_auth
        self._ask = ask
        self._verified: dict[str, str] = {}
        self._lock = threading.Lock()
        # For cookie-free tokens: binds a CSRF token to a visitor and this process.
        self.secret = secrets.token_bytes(32)

    def trusted_headers(self, peer: str, headers: Mapping[str, str]) -> dict[str, str]:
        """The request's headers as far as they are believed: an nginx task of the edge's as
        they are (nginx replaced the client's X-Forwarded-*); a peer of
        CERTBOTLESS_STATUS_DIRECT_FROM's without what a proxy would say about the client;
        anyone else (a tenant's container on the edge network) is refused before anything."""
        if peer in self.edge:
            return dict(headers)
        if not in_networks(peer, self.direct_from):
            raise Refused(403, f"{peer} is not an nginx task of the edge: the page answers "
                          "through the edge (or from CERTBOTLESS_STATUS_DIRECT_FROM)")  # fmt: skip
        return {name: value for name, value in headers.items()
                if not name.startswith(_PROXY_HEADERS)}  # fmt: skip

    def admit(
        self,
        peer: str,
        headers: Mapping[str, str],
        target: str,
        method: str = "GET",
        listener: str = "",
    ) -> Visitor:
        """`headers` with title-cased names (X-Forwarded-Host); `listener`: the address the
        peer reached (what forward auth is told the host is, for a peer not through the edge)."""
        headers = self.trusted_headers(peer, headers)
        who = peer
        if self.networks and not any(
            ipaddress.ip_address(peer) in network for network in self.networks
        ):
            raise Refused(403, f"{peer} is not in CERTBOTLESS_STATUS_ALLOW_FROM")
        if self.users is not None:
            who = self._basic(headers.get("Authorization", ""))
        if self.forward_auth is not None:
            who = self._forwarded(peer, headers, target, method, listener) or who
        return Visitor(who)

    def csrf_token(self, visitor: Visitor) -> str:
        return hmac.new(self.secret, visitor.name.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, visitor: Visitor, token: str) -> bool:
        return hmac.compare_digest(self.csrf_token(visitor), token)

    def _basic(self, authorization: str) -> str:
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            raise Refused(401, "log in", basic_challenge=True)
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise Refused(401, "unreadable credentials", basic_challenge=True) from None
        assert self.users is not None
        digest = hashlib.sha256(f"{user}\0{password}".encode()).hexdigest()
        with self._lock:
            if self._verified.get(digest) == user:
                return user
        hashed = self.users.get(user, self._unknown_user)
        try:
            matches = bcrypt.checkpw(password.encode(), hashed)
        except ValueError:  # bcrypt 5 refuses passwords over 72 bytes: none can match
            matches = False
        if not matches or user not in self.users:
            raise Refused(401, "wrong user or password", basic_challenge=True)
        with self._lock:
            if len(self._verified) >= _REMEMBERED_LOGINS:
                self._verified.clear()
            self._verified[digest] = user
        return user

    def _forwarded(
        self, peer: str, headers: Mapping[str, str], target: str, method: str, listener: str
    ) -> str | None:
        """Asks the forward-auth service as the edge would: 2xx lets in (its Remote-User
        names the visitor). The host is the edge's word, else the listener's address: never a
        name a client picked, which an auth service's rules could let through."""
        assert self.forward_auth is not None
        sent = {name: headers[name] for name in _FORWARDED_TO_AUTH if name in headers}
        host = headers.get("X-Forwarded-Host") or listener or headers.get("Host", "")
        sent |= {
            "X-Forwarded-Method": method,
            "X-Forwarded-Proto": headers.get("X-Forwarded-Proto", "http"),
            "X-Forwarded-Host": host,
            "X-Forwarded-Uri": target,
            "X-Forwarded-For": headers.get("X-Forwarded-For", peer),
        }
        try:
            answer = self._ask(self.forward_auth, headers=sent, timeout=FORWARD_AUTH_TIMEOUT,
                               allow_redirects=False)  # fmt: skip
        except requests.RequestException as error:
            # Logged, not shown: the visitor is not let in yet, and the URL may hold a token.
            log.warning("status page: the forward-auth service did not answer: %s", error)
            raise Refused(503, "the forward-auth service did not answer") from None
        if not 200 <= answer.status_code < 300:
            status = answer.status_code if answer.status_code in (401, 403) else 403
            raise Refused(status, "the forward-auth service refused the request")
        return answer.headers.get("Remote-User") or answer.headers.get("X-Forwarded-User")
