"""replacePathRegex: the path matching `regex` is rewritten to `replacement` (nginx's rewrite,
the regex read as go_regex.py reads Go's). Traefik replaces every match in the path and keeps
the rest; nginx's rewrite replaces the whole path, so the regex must be anchored with `^` (one
match at most) and the rest after its match is kept as a group of its own."""

from __future__ import annotations

import re

from certbotless.labels.traefik.go_regex import NotPortable, to_pcre
from certbotless.labels.traefik.middlewares.options import (
    Context,
    Middleware,
    Unsupported,
    known_fields,
)
from certbotless.labels.traefik.middlewares.path_changes import with_replacement
from certbotless.model import Route

_REPLACEMENT_RE = re.compile(r"^/(?:[A-Za-z0-9._~!&()*+,=:@/-]|\$[1-9])*$", re.ASCII)
MAX_GROUPS = 8  # nginx names captures $1…$9: the rest takes one


def apply(route: Route, mw: Middleware, context: Context) -> Route:
    known_fields(mw, {"regex", "replacement"})
    regex = mw.value("regex")
    replacement = re.sub(r"\$\{([1-9])\}", r"$\1", mw.value("replacement"))
    try:
        pcre = to_pcre(regex)
    except NotPortable as why:
        raise Unsupported(mw.label("regex"), regex, str(why)) from None
    if not pcre.text.startswith("^") or pcre.alternates_at_top:
        raise Unsupported(mw.label("regex"), regex, "must start with ^ and have no | outside a "
                          "group: Traefik replaces every match in the path, nginx's rewrite "
                          "one match at its start (write ^…(.*) to keep the rest)")  # fmt: skip
    if pcre.groups > MAX_GROUPS:
        raise Unsupported(mw.label("regex"), regex, f"has more than {MAX_GROUPS} groups (nginx "
                          "counts captures to 9): use (?:…) for the others")  # fmt: skip
    if not _REPLACEMENT_RE.match(replacement):
        raise Unsupported(mw.label("replacement"), mw.value("replacement"), "must be a path "
                          "with $1…$9 (or ${1}…${9}) for the groups, e.g. /api/$1, and no %: "
                          "nginx would escape it again (write the character itself)")  # fmt: skip
    whole = f"^(?>{pcre.text})([\\s\\S]*)$"  # the match, then the rest Traefik keeps
    return with_replacement(route, mw, (whole, f"{replacement}${pcre.groups + 1}"))
