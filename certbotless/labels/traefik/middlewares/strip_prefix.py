"""stripPrefix: the first of `prefixes` that starts the path (as Go's strings.HasPrefix: `/stat`
starts `/status`) is taken off it, as Traefik's pkg/middlewares/stripprefix does: the rest
gets a leading `/`, X-Forwarded-Prefix says what was taken, and a rest that starts with a `.`
or `..` segment is answered 400. That is stripPrefixRegex with literal regexes, so it is
rendered as one (`forceSlash`, deprecated, changes nothing nginx's merged slashes let
through)."""

from __future__ import annotations

from dataclasses import replace

from certbotless.labels.traefik.middlewares.options import (
    Context,
    Middleware,
    Unsupported,
    invalid_label,
    known_fields,
)
from certbotless.labels.traefik.middlewares.path_changes import not_after_replace
from certbotless.labels.values import check_path
from certbotless.model import Route
from certbotless.rewrite_phase import StripPrefixRegex

_PCRE_SPECIAL = set("\\.+*?()|[]{}^$#")


def apply(route: Route, mw: Middleware, context: Context) -> Route:
    known_fields(mw, {"prefixes", "forceslash"})
    not_after_replace(route, mw)
    if route.strip_prefixes or route.add_prefix:
        raise Unsupported(mw.label(), mw.name, "another path change comes before it (a "
                          "stripPrefix of the rule, or addPrefix): list the stripPrefix "
                          "first, once")  # fmt: skip
    prefixes = tuple(p.strip() for p in mw.value("prefixes").split(",") if p.strip())
    for prefix in prefixes:
        check_path(prefix, mw.label("prefixes"), invalid_label(mw.label("prefixes"), prefix))
    if not prefixes:
        return route  # Traefik: nothing to strip
    literal = tuple(("".join("\\" + c if c in _PCRE_SPECIAL else c for c in p), 0)
                    for p in prefixes)  # fmt: skip
    phase = replace(route.rewrite_phase, strip_prefix_regex=StripPrefixRegex(literal))
    return replace(route, rewrite_phase=phase)
