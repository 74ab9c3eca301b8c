"""stripPrefixRegex: the first of `regex` (a list) whose match starts the path and is not empty
is taken off it, as Traefik's pkg/middlewares/stripprefixregex does (the rest gets a leading
`/`; X-Forwarded-Prefix says what was taken)."""

from __future__ import annotations

from dataclasses import replace

from certbotless.labels.traefik.go_regex import NotPortable, to_pcre
from certbotless.labels.traefik.middlewares.options import (
    Context,
    Middleware,
    Unsupported,
    known_fields,
)
from certbotless.model import Route
from certbotless.rewrite_phase import StripPrefixRegex

MAX_GROUPS = 7  # nginx names captures $1…$9: the prefix and the rest take two


def apply(route: Route, mw: Middleware, context: Context) -> Route:
    known_fields(mw, {"regex"})
    if route.strip_prefixes or route.add_prefix or route.replace_path is not None:
        raise Unsupported(mw.label(), mw.name, "another middleware already changes the path "
                          "(stripPrefix, addPrefix, replacePath): use one stripPrefixRegex "
                          "alone")  # fmt: skip
    regexes = []
    for written in (r.strip() for r in mw.value("regex").split(",")):
        try:
            pcre = to_pcre(written)
        except NotPortable as why:
            raise Unsupported(mw.label("regex"), written, str(why)) from None
        if pcre.groups > MAX_GROUPS:
            raise Unsupported(mw.label("regex"), written, f"has more than {MAX_GROUPS} groups "
                              "(nginx counts captures to 9): use (?:…) for the others")  # fmt: skip
        regexes.append((pcre.text, pcre.groups))
    phase = replace(route.rewrite_phase, strip_prefix_regex=StripPrefixRegex(tuple(regexes)))
    return replace(route, rewrite_phase=phase)
