"""How the middlewares that change the request's path combine: stripPrefix and addPrefix add
up; a replacePath(Regex) must be the only change; on an h2c service, none that must send the
request target as the client escaped it."""

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


_SPELLED = {"addprefix": "addPrefix", "stripprefix": "stripPrefix",
            "stripprefixregex": "stripPrefixRegex", "replacepath": "replacePath"}  # fmt: skip


def sends_raw_target(route: Route) -> bool:
    """Whether the edge sends the route's service a path built from the client's escaped
    request target (Traefik's RawPath): addPrefix alone, stripPrefix(Regex), replacePath."""
    replaced = route.replace_path is not None and route.replace_path[0] == "^.*$"
    added_alone = bool(route.add_prefix) and not route.strip_prefixes
    return added_alone or replaced or route.rewrite_phase.strip_prefix_regex is not None


def h2c_check(before: Route, after: Route, mw: Middleware) -> None:
    """On an h2c service, refuses a middleware after which the path must be sent as escaped:
    grpc_pass, nginx's h2c, takes no request target in its address, and nginx would send the
    path unescaped (`%2F` as `/`), where Traefik keeps the escapes."""
    if after.upstream_scheme == "h2c" and sends_raw_target(after) and not sends_raw_target(before):
        kind = _SPELLED.get(mw.kind, mw.kind)
        raise Unsupported(mw.label(), mw.name, f"{kind} is not applied to an h2c service "
                          "(scheme h2c): nginx speaks h2c with grpc_pass, which cannot send the "
                          "changed path with the client's escapes kept as Traefik does; use "
                          "replacePathRegex, or scheme http")  # fmt: skip
