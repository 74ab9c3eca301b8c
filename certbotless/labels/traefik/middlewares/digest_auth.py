"""digestAuth: HTTP digest authentication (RFC 2617, MD5, qop=auth) as Traefik's (abbot's
go-http-auth), checked by njs at the edge (edge/njs.py). `users` are htdigest lines
(`name:realm:md5(name:realm:password)`) and/or `usersFile`, the Swarm secret Traefik's service
mounted at /run/secrets/<name> (both merged, `users` winning, as Traefik); `headerField` tells
the service who logged in, `removeHeader` keeps the Authorization header from it.

nginx checks the digest in its rewrite phase, before its access checks (allow lists, rate and
connection limits, basic and forward auth): a middleware of those listed before digestAuth is
refused by name, one after it keeps Traefik's order."""

from __future__ import annotations

import re
from dataclasses import replace

from certbotless.labels.traefik.middlewares.basic_auth import mounted_secret
from certbotless.labels.traefik.middlewares.options import (
    Context,
    Middleware,
    Unsupported,
    access_checks_applied,
    flag,
    known_fields,
)
from certbotless.labels.values import HEADER_NAME_RE
from certbotless.model import BasicAuth, Route

_HTDIGEST_RE = re.compile(r"^[^:\s,]{1,64}:[A-Za-z0-9 ._-]{1,64}:[0-9A-Fa-f]{32}$", re.ASCII)
_REALM_RE = re.compile(r"[A-Za-z0-9 ._-]{1,64}", re.ASCII)


def apply(route: Route, mw: Middleware, context: Context) -> Route:
    known_fields(mw, {"users", "usersfile", "realm", "removeheader", "headerfield"})
    _checked_first(route, mw)
    header = mw.value("headerfield").strip()
    if header and not HEADER_NAME_RE.match(header):
        raise Unsupported(mw.label("headerfield"), header, "must be a header name")
    realm = mw.value("realm") or "traefik"  # go-http-auth's default, as Traefik's
    if not _REALM_RE.fullmatch(realm):
        raise Unsupported(mw.label("realm"), realm, "must be letters, digits, spaces, . _ -")
    remove_header = flag(mw, "removeheader")
    secret = ""
    if mw.value("usersfile"):  # Traefik merges both: `users` win (edge/njs.py)
        secret = mounted_secret(mw, context, "usersfile", "a digest users file",
                                "put the users in digestAuth.users")  # fmt: skip
    users = _htdigest_users(mw) if mw.value("users") or not secret else ()
    found = BasicAuth(users, realm, remove_header, secret, header, digest=True)
    return replace(route, basic_auth=found)


def _htdigest_users(mw: Middleware) -> tuple[str, ...]:
    value = mw.value("users")
    users = tuple(u.strip() for u in value.split(",") if u.strip())
    if not users or not all(_HTDIGEST_RE.match(user) for user in users):
        raise Unsupported(mw.label("users"), value, "users must be htdigest lines, "
                          "name:realm:md5(name:realm:password) (`htdigest` writes them), "
                          "comma-separated")  # fmt: skip
    return users


def _checked_first(route: Route, mw: Middleware) -> None:
    """nginx checks the digest before its access phase: a guard listed earlier would be asked
    after it, unlike Traefik."""
    earlier = access_checks_applied(route)
    if earlier:
        raise Unsupported(mw.label(), mw.name, f"nginx checks digestAuth before the route's "
                          f"{', '.join(earlier)} (listed before it here): list digestAuth "
                          "first among the router's access middlewares")  # fmt: skip
