"""redirectRegex: the request's URL (`scheme://host[:port]/path?query`, as sent) rewritten by
`regex` and `replacement` and, when that makes another URL, redirected there as Traefik's
pkg/middlewares/redirect does: 302 for GET and 307 for other methods, 301 and 308 with
`permanent`. nginx answers it before the route's access checks, so it must come before any
access middleware (and before any path change, which Traefik's URL would see). A regex
anchored with `^` whose replacement nginx can write is nginx's own `if`; any other is done by
njs (edge/njs.py), which replaces every match as Go does."""

from __future__ import annotations

import re
from dataclasses import replace

from certbotless.labels.traefik.go_regex import NotPortable, Pcre, to_pcre
from certbotless.labels.traefik.go_template import njs_template
from certbotless.labels.traefik.middlewares.options import (
    Context,
    Middleware,
    Unsupported,
    flag,
    known_fields,
)
from certbotless.labels.traefik.middlewares.redirect_scheme import PERMANENT, TEMPORARY
from certbotless.model import Route
from certbotless.rewrite_phase import RedirectRegex

MAX_GROUPS = 8  # nginx names captures $1…$9: the URL's rest takes one
# Go's Expand: $name or ${name}, the longest name of letters, digits and _; $$ is a `$`.
_REFERENCE_RE = re.compile(r"\$(?:\{([A-Za-z0-9_]*)\}|([A-Za-z0-9_]*))")
_LITERAL_RE = re.compile(r"^[\x21\x23\x25-\x5b\x5d-\x7e]*$", re.ASCII)  # no ' " $ \ or space


def apply(route: Route, mw: Middleware, context: Context) -> Route:
    known_fields(mw, {"regex", "replacement", "permanent"})
    _not_after_access_or_path_change(route, mw)
    statuses = PERMANENT if flag(mw, "permanent") else TEMPORARY
    try:
        pcre = to_pcre(mw.value("regex"), flags_anywhere=True)
    except NotPortable as why:
        raise Unsupported(mw.label("regex"), mw.value("regex"), str(why)) from None
    redirect = _by_rewrite(mw, pcre, statuses)
    if redirect is None:  # every match, as Go's ReplaceAllString: njs (edge/njs.py)
        template = njs_template(mw.value("replacement"), pcre.groups, pcre.names)
        redirect = RedirectRegex(pcre.text, pcre.groups, template, statuses, by_njs=True)
    return replace(route, rewrite_phase=replace(route.rewrite_phase, redirect_regex=redirect))


def _by_rewrite(mw: Middleware, pcre: Pcre, statuses: tuple[int, int]) -> RedirectRegex | None:
    """The redirect nginx's own regex does (no njs): one match at the URL's start, at most
    MAX_GROUPS groups, a replacement nginx can write; None for any other."""
    try:
        to_pcre(mw.value("regex"))  # a bare flag group after the start: nginx's wrapping ends it
        replacement = _nginx_replacement(mw, pcre)
    except (NotPortable, Unsupported):
        return None
    one_at_start = pcre.text.startswith("^") and not pcre.alternates_at_top
    if not one_at_start or pcre.groups > MAX_GROUPS:
        return None
    unparsable = _go_cannot_parse(mw.value("replacement"))
    return RedirectRegex(pcre.text, pcre.groups, replacement, statuses, unparsable)


# Go's url.Parse: an escape is % and two hex digits; in the host, only for bytes above 0x7f
# (and %25); a host's characters (RFC 3986's, and Go's few more); a port of digits.
_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_HOST_ESCAPE_RE = re.compile(r"%(?!25)[0-7][0-9A-Fa-f]")
_HOST_RE = re.compile(r"(?:\[[^\]]*\]|[A-Za-z0-9\-._~!$&'()*+,;=<>\"%]*)(?::[0-9]*)?")


def _go_cannot_parse(replacement: str) -> bool:
    """Whether `replacement`, a URL without group references, is one Go's url.Parse refuses
    (Traefik then answers 502 to every URL the regex matches). One with references: the
    captures decide, not known here (a replacement nginx takes is assumed parsable)."""
    if _REFERENCE_RE.search(replacement):
        return False
    if _ESCAPE_RE.search(replacement):
        return True
    authority = replacement.partition("://")[2].split("/", 1)[0].split("?", 1)[0]
    host = authority.rpartition("@")[2]
    return bool(_HOST_ESCAPE_RE.search(host)) or not _HOST_RE.fullmatch(host)


def _not_after_access_or_path_change(route: Route, mw: Middleware) -> None:
    guarded = route.basic_auth or route.auth_url or route.allow_from
    changed = route.strip_prefixes or route.add_prefix or route.replace_path or (
        route.rewrite_phase.strip_prefix_regex
    )  # fmt: skip
    if guarded or changed:
        raise Unsupported(mw.label(), mw.name, "nginx answers a redirectRegex before the "
                          "route's access checks and path changes: list it before the router's "
                          "access and path middlewares")  # fmt: skip


def _nginx_replacement(mw: Middleware, pcre: Pcre) -> str:
    """Go's replacement (`$1`, `${1}`, `$name`) as nginx's value: `$N` for an existing group
    (a named one by its number), nothing for a name Go finds no group for (as Go), then the
    URL's rest."""
    groups, names = pcre.groups, dict(pcre.names)
    written = mw.value("replacement")
    parts, last = [], 0
    for reference in _REFERENCE_RE.finditer(written):
        parts.append(_literal(mw, written[last : reference.start()]))
        name = reference[1] if reference[1] is not None else reference[2]
        if name == "":  # Go's `$$` or a `$` before no name: a `$` as written
            raise Unsupported(mw.label("replacement"), written, "a literal $ cannot be written "
                              "in nginx's redirect")  # fmt: skip
        if name.isdigit() and 1 <= int(name) <= groups:
            parts.append(f"${int(name)}")
        elif name in names:
            parts.append(f"${names[name]}")
        elif name.isdigit() and int(name) == 0:
            raise Unsupported(mw.label("replacement"), written, "$0 (the whole match) is not "
                              "kept by nginx: capture it in a group")  # fmt: skip
        last = reference.end()
    parts.append(_literal(mw, written[last:]))
    value = "".join(parts)
    if not value.startswith(("http://", "https://")):
        raise Unsupported(mw.label("replacement"), written, "must be a whole URL starting "
                          "with http:// or https:// (nginx would make a relative one "
                          "absolute)")  # fmt: skip
    return value + f"${groups + 1}"


def _literal(mw: Middleware, text: str) -> str:
    if not _LITERAL_RE.match(text):
        raise Unsupported(mw.label("replacement"), mw.value("replacement"), "must be a URL of "
                          "printable ASCII without spaces, quotes or backslashes")  # fmt: skip
    return text
