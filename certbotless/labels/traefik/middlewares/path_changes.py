"""How the middlewares that change the request's path combine: stripPrefix and addPrefix add
up; a replacePath(Regex) must be the only change."""

from __future__ import annotations

from dataclasses import replace

from certbotless.labels.traefik.middlewares.options import Middleware, Unsupported
from certbotless.model import Route


def not_after_replace(route: Route, mw: Middleware) -> None:
    if route.replace_path is not None or route.rewrite_phase.strip_prefix_regex is not None:
        raise Unsupported(mw.label(), mw.name, "after a replacePath(Regex) or "
                          "stripPrefixRegex middleware, another path change is not supported: "
                          "use one replacePathRegex")  # fmt: skip


def with_replacement(route: Route, mw: Middleware, replacement: tuple[str, str]) -> Route:
    if (
        route.strip_prefixes
        or route.add_prefix
        or route.replace_path is not None
        or (route.rewrite_phase.strip_prefix_regex is not None)
    ):
        raise Unsupported(mw.label(), mw.name, "another middleware already changes the path "
                          "(stripPrefix(Regex), addPrefix, replacePath): use one "
                          "replacePathRegex")  # fmt: skip
    return replace(route, replace_path=replacement)
