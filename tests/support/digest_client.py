"""A digest-auth client for the Traefik cases (RFC 2617, as Traefik's digest_auth_test's
newDigestRequest answers): the request's `"digest": [user, password]` is sent once without
credentials, and again answering the 401's WWW-Authenticate challenge."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from certbotless.edge.mounts import DIGEST_KEY_TARGET

# The edge's nonce key, as the deployer mounts it (any bytes: the tests' own).
DIGEST_KEY_FILE = {DIGEST_KEY_TARGET: "the Traefik cases' digest nonce key\n"}
_PAIR_RE = re.compile(r'(\w+)=(?:"([^"]*)"|([^,\s]*))')

Exchange = Callable[[Mapping[str, Any]], dict[str, Any]]


def challenge_pairs(header: str) -> dict[str, str]:
    """A WWW-Authenticate `Digest k="v", …` header's pairs."""
    scheme, _, rest = header.partition(" ")
    if scheme != "Digest":
        return {}
    return {m.group(1): m.group(2) if m.group(2) is not None else m.group(3)
            for m in _PAIR_RE.finditer(rest)}  # fmt: skip


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def authorization(request: Mapping[str, Any], challenge: Mapping[str, str]) -> str:
    """The Authorization answering `challenge` for the request's `digest` [user, password]."""
    user, password = request["digest"]
    url = urlsplit(request["url"])
    uri = request.get("target") or (url.path or "/") + (f"?{url.query}" if url.query else "")
    nc, cnonce = "00000001", "0a4f113b"
    ha1 = _md5(f"{user}:{challenge.get('realm', '')}:{password}")
    ha2 = _md5(f"{request['method']}:{uri}")
    response = _md5(f"{ha1}:{challenge.get('nonce', '')}:{nc}:{cnonce}:auth:{ha2}")
    return (f'Digest username="{user}", realm="{challenge.get("realm", "")}", '
            f'nonce="{challenge.get("nonce", "")}", uri="{uri}", algorithm=MD5, qop=auth, '
            f'nc={nc}, cnonce="{cnonce}", response="{response}", '
            f'opaque="{challenge.get("opaque", "")}"')  # fmt: skip


def with_digest(request: Mapping[str, Any], exchange: Exchange) -> dict[str, Any]:
    """The answer to the request; with `digest`, to the request that answers the challenge of
    its first answer (that first answer when it is not a 401 with a digest challenge)."""
    plain = {k: v for k, v in request.items() if k != "digest"}
    first = exchange(plain)
    if "digest" not in request:
        return first
    challenge = challenge_pairs(first["headers"].get("www-authenticate", ""))
    if first["status"] != 401 or not challenge:
        return first
    headers = [*request.get("headers", []), ["Authorization", authorization(request, challenge)]]
    return exchange({**plain, "headers": headers})
