"""basicAuth: `users` (htpasswd lines) and `usersFile`, read from the Swarm secret Traefik's
service mounted at /run/secrets/<name>; both given are merged, `users` winning, as Traefik's.
Traefik 1's `frontend.auth.basic.users` uses `htpasswd_users` too. `headerField` names the
request header that tells the service who logged in."""

from __future__ import annotations

import re
from dataclasses import replace

from certbotless.labels.traefik.middlewares.options import (
    Context,
    Middleware,
    Unsupported,
    flag,
    known_fields,
)
from certbotless.labels.values import (
    HEADER_NAME_RE,
    NOT_MOUNTABLE,
    SECRET_NAME_RE,
    refused_htpasswd_secret,
)
from certbotless.model import BasicAuth, Route

_HTPASSWD_RE = re.compile(r"^[^:\s]{1,64}:[A-Za-z0-9./$={}+-]{1,200}$", re.ASCII)
SECRETS_DIR = "/run/secrets/"  # where Swarm mounts a secret given with no target


def apply(route: Route, mw: Middleware, context: Context) -> Route:
    known_fields(mw, {"users", "usersfile", "realm", "removeheader", "headerfield"})
    if route.basic_auth is not None and route.basic_auth.digest:
        raise Unsupported(mw.label(), mw.name, "basicAuth after a digestAuth: both read the "
                          "Authorization header, which holds the digest; keep one of "
                          "them")  # fmt: skip
    header = mw.value("headerfield").strip()
    if header and not HEADER_NAME_RE.match(header):
        raise Unsupported(mw.label("headerfield"), header, "must be a header name")
    realm = mw.value("realm", "traefik")
    if not re.fullmatch(r"[A-Za-z0-9 ._-]{1,64}", realm):
        raise Unsupported(mw.label("realm"), realm, "must be letters, digits, spaces, . _ -")
    remove_header = flag(mw, "removeheader")
    secret = _users_file_secret(mw, context) if mw.value("usersfile") else ""
    users: tuple[str, ...] = ()
    if mw.value("users") or not secret:
        users = htpasswd_users(mw.value("users"), mw.label("users"), mw.name)
    return replace(route, basic_auth=BasicAuth(users, realm, remove_header, secret, header))


def htpasswd_users(value: str, label: str, name: str) -> tuple[str, ...]:
    users = tuple(u.strip() for u in value.split(",") if u.strip())
    if not users or not all(_HTPASSWD_RE.match(user) for user in users):
        raise Unsupported(label, value, "users must be user:hash pairs (htpasswd -nB), "
                          "comma-separated")  # fmt: skip
    return users


def _users_file_secret(mw: Middleware, context: Context) -> str:
    return mounted_secret(mw, context, "usersfile", "a users file", "put the users in "
                          "basicauth.users or use certbotless.basic_auth_secret")  # fmt: skip


def mounted_secret(mw: Middleware, context: Context, key: str, what: str, instead: str) -> str:
    """The Swarm secret behind a file option `key=/run/secrets/<target>`: the one the defining
    service mounts at that target (as the Traefik service had it), else a secret named
    <target>, else, where the operator trusts stack labels (CERTBOTLESS_TRUST_STACK_NAMESPACE),
    the stack's (`docker stack deploy` names it <stack>_<target>): any service may claim any
    stack in its labels, and so another stack's secret."""
    path = mw.value(key)
    target = path[len(SECRETS_DIR) :] if path.startswith(SECRETS_DIR) else ""
    if not SECRET_NAME_RE.match(target):
        raise Unsupported(mw.label(key), path, f"certbotless reads {what} only from a Swarm "
                          "secret mounted at /run/secrets/<name> (the file the Traefik "
                          f"service mounted); {instead}")  # fmt: skip
    if (refused := refused_htpasswd_secret(target)) is not None:
        raise Unsupported(mw.label(key), path, refused)
    mounted = dict(mw.secret_mounts).get(target)
    candidates = [mounted] if mounted else [target, *([f"{mw.stack}_{target}"] * bool(mw.stack))]
    if context.secrets is None:
        return target
    found = next((name for name in candidates if name in context.secrets), None)
    if found is None:
        raise Unsupported(mw.label(key), path, f"no Swarm secret is named "
                          f"{' or '.join(candidates)} {NOT_MOUNTABLE}; create it from the file "
                          f"(`docker secret create {target} FILE`: one Traefik's own stack "
                          "made, <its stack>_<name>, is another stack's and not "
                          "used; mount a secret of your stack into the service that defines "
                          "the middleware, at that path)")  # fmt: skip
    return found
