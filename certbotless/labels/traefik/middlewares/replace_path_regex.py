"""replacePathRegex: the path matching `regex` is rewritten to `replacement` (nginx's rewrite,
the regex read as go_regex.py reads Go's)."""

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

_REPLACEMENT_RE = re.compile(r"^/(?:[A-Za-z0-9._~!&()*+,=:@%/-]|\$[1-9])*$", re.ASCII)


def apply(route: Route, mw: Middleware, context: Context) -> Route:
    known_fields(mw, {"regex", "replacement"})
    regex = mw.value("regex")
    replacement = re.sub(r"\$\{([1-9])\}", r"$\1", mw.value("replacement"))
    try:
        pcre = to_pcre(regex)
    except NotPortable as why:
        raise Unsupported(mw.label("regex"), regex, str(why)) from None
    if not _REPLACEMENT_RE.match(replacement):
        raise Unsupported(mw.label("replacement"), mw.value("replacement"), "must be a path "
                          "with $1…$9 (or ${1}…${9}) for the groups, e.g. /api/$1")  # fmt: skip
    return with_replacement(route, mw, (pcre.text, replacement))
