"""redirectScheme: plain HTTP → HTTPS, as Traefik's redirect answers: 302 for GET and 307 for
other methods, or 301 and 308 with `permanent`, 308 for all with `forcePermanentRedirect`; to
`port` (443 unless given). On the router's own HTTPS route too, as Traefik: a request whose
Host names another port is redirected to `port`."""

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
from certbotless.model import Route
from certbotless.rewrite_phase import SchemeRedirect

TEMPORARY = (302, 307)  # for GET, for other methods (HEAD included)
PERMANENT = (301, 308)


def apply(route: Route, mw: Middleware, context: Context) -> Route:
    """The router's own redirect: served over HTTPS (a router that only redirects plain HTTP
    makes no route), so its HTTPS requests are checked too. nginx checks them before the
    route's access checks and path changes (Traefik in the router's order): said when some
    come first. To another scheme than https, the router's requests are redirected on every
    entry point it has (other_scheme)."""
    if mw.value("scheme").lower() != "https":
        return _other_scheme(route, mw, context)
    route = with_redirect(replace(route, redirect_to_https=True), mw)
    earlier = route.basic_auth or route.auth_url or route.allow_from or route.rate_limit or (
        route.max_connections or route.strip_prefixes or route.add_prefix or route.replace_path
        or route.rewrite_phase.strip_prefix_regex or route.rewrite_phase.redirect_regex
    )  # fmt: skip
    if earlier:
        context.note(mw.label(), mw.name, "nginx redirects plain HTTP, and over HTTPS a "
                     "request whose Host names another port, before the access checks, path "
                     "changes and redirectRegex listed before it (Traefik in the router's "
                     "order: its Location has the changed path): list redirectScheme first",
                     )  # fmt: skip
    moved = SchemeRedirect(route.redirect_port, route.redirect_statuses)
    return replace(route, rewrite_phase=replace(route.rewrite_phase, scheme_redirect=moved))


def _other_scheme(route: Route, mw: Middleware, context: Context) -> Route:
    """Traefik's redirect to `scheme://host[:port]` and the request target when that URL
    differs from the request's (the default port of http and https dropped from both)."""
    known_fields(mw, {"scheme", "permanent", "port", "forcepermanentredirect"})
    scheme, port = mw.value("scheme"), mw.value("port", "")
    if not scheme:
        raise Unsupported(mw.label(), mw.name, "has no scheme: Traefik refuses a "
                          "redirectScheme without one")  # fmt: skip
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
        raise Unsupported(mw.label("scheme"), scheme, "must be a URL scheme (letters, digits, "
                          "+ - .)")  # fmt: skip
    if port and not re.fullmatch(r"[0-9]{1,5}", port):
        raise Unsupported(mw.label("port"), port, "must be a port number")
    if (scheme, port) in {("http", "80"), ("https", "443")}:
        port = ""  # as Traefik: the scheme's default port is not written
    statuses = PERMANENT if flag(mw, "permanent") else TEMPORARY
    if flag(mw, "forcepermanentredirect"):
        statuses = (308, 308)
    if route.rewrite_phase.redirect_regex is not None:
        context.note(mw.label(), mw.name, "nginx redirects to another scheme before the "
                     "redirectRegex listed before it (Traefik in the router's order): list "
                     "redirectScheme first")  # fmt: skip
    moved = SchemeRedirect(int(port) if port else 0, statuses, scheme)
    return replace(route, rewrite_phase=replace(route.rewrite_phase, scheme_redirect=moved))


def with_redirect(route: Route, mw: Middleware) -> Route:
    """`route`'s plain-HTTP redirect made the one `mw` (a redirectScheme) answers."""
    known_fields(mw, {"scheme", "permanent", "port", "forcepermanentredirect"})
    if mw.value("scheme").lower() != "https":
        raise Unsupported(mw.label("scheme"), mw.value("scheme"), "only redirects to https "
                          "are supported")  # fmt: skip
    port = mw.value("port", "443") or "443"
    if not re.fullmatch(r"[0-9]{1,5}", port) or not 1 <= int(port) <= 65535:
        raise Unsupported(mw.label("port"), port, "must be a port number from 1 to 65535")
    statuses = PERMANENT if flag(mw, "permanent") else TEMPORARY
    if flag(mw, "forcepermanentredirect"):
        statuses = (308, 308)
    return replace(route, redirect_statuses=statuses, redirect_port=int(port))
