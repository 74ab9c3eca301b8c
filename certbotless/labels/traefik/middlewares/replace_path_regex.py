"""replacePathRegex: the path matching `regex` is rewritten to `replacement`, as Traefik does
Go's ReplaceAllString on the path as written (the regex read as go_regex.py reads Go's). When
the regex is anchored with `^` (one match at most, at the start), has at most 8 groups and the
replacement is a plain path, nginx's rewrite does it (the rest after the match kept as a group
of its own); any other is done by njs (edge/njs.py), which replaces every match."""

from __future__ import annotations

import re
from dataclasses import replace

from certbotless.labels.traefik.go_regex import NotPortable, Pcre, to_pcre
from certbotless.labels.traefik.go_template import njs_template
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
    regex = mw.value("regex").strip()  # Traefik trims both
    written = mw.value("replacement").strip()
    replacement = re.sub(r"\$\{([1-9])\}", r"$\1", written)
    try:
        pcre = to_pcre(regex, flags_anywhere=True)
    except NotPortable as why:
        raise Unsupported(mw.label("regex"), regex, str(why)) from None
    if _rewrite_does_it(pcre, regex, replacement):
        whole = f"^(?>{pcre.text})([\\s\\S]*)$"  # the match, then the rest Traefik keeps
        return with_replacement(route, mw, (whole, f"{replacement}${pcre.groups + 1}"))
    template = njs_template(written, pcre.groups, pcre.names)
    changed = with_replacement(route, mw, (pcre.text, template))
    return replace(changed, replace_path_everywhere=True)


def _rewrite_does_it(pcre: Pcre, regex: str, replacement: str) -> bool:
    """Whether nginx's rewrite replaces as Traefik does: one match at the path's start."""
    try:
        to_pcre(regex)  # a bare flag group after the start: nginx's wrapping would end it
    except NotPortable:
        return False
    one_at_start = pcre.text.startswith("^") and not pcre.alternates_at_top
    return one_at_start and pcre.groups <= MAX_GROUPS and bool(_REPLACEMENT_RE.match(replacement))
