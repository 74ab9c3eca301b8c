"""replacePathRegex: the path matching `regex` is rewritten to `replacement` (nginx's rewrite,
with the regular expressions RE2 and PCRE read alike)."""

from __future__ import annotations

import re

from certbotless.labels.traefik.middlewares.options import (
    Context,
    Middleware,
    Unsupported,
    known_fields,
)
from certbotless.labels.traefik.middlewares.path_changes import with_replacement
from certbotless.model import Route

# RE2 (Traefik's) and PCRE (nginx's) agree on these; nothing nginx's quoted strings would unescape
# (a double backslash) and no named group (nginx makes each a variable, which could shadow its
# own, such as $upstream).
_REGEX_RE = re.compile(r"^[\x20\x21\x23-\x7e]{1,1024}$", re.ASCII)
_REPLACEMENT_RE = re.compile(r"^/(?:[A-Za-z0-9._~!&()*+,=:@%/-]|\$[1-9])*$", re.ASCII)


def apply(route: Route, mw: Middleware, context: Context) -> Route:
    known_fields(mw, {"regex", "replacement"})
    regex = mw.value("regex")
    replacement = re.sub(r"\$\{([1-9])\}", r"$\1", mw.value("replacement"))
    if not _REGEX_RE.match(regex) or "\\\\" in regex or re.search(r"\(\?P?<", regex):
        raise Unsupported(mw.label("regex"), regex, "must be a regular expression of printable "
                          "ASCII without '\"', a double backslash or named groups")  # fmt: skip
    try:
        re.compile(regex)
    except re.error as error:
        raise Unsupported(
            mw.label("regex"), regex, f"is not a regular expression: {error}"
        ) from None
    if not _REPLACEMENT_RE.match(replacement):
        raise Unsupported(mw.label("replacement"), mw.value("replacement"), "must be a path "
                          "with $1…$9 (or ${1}…${9}) for the groups, e.g. /api/$1")  # fmt: skip
    return with_replacement(route, mw, (regex, replacement))
