"""What a route does in nginx's rewrite phase, before its access checks, for Traefik's
middlewares that answer or rewrite by the request's host or URL: `headers.allowedHosts`
(with `hostsProxyHeaders`), `redirectScheme` over HTTPS, `redirectRegex` and
`stripPrefixRegex`. Imports nothing of certbotless (a foundation: `model.Route` holds one
`RewritePhase`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AllowedHosts:
    """Requests whose host is none of `hosts` (lower case, `host[:port]` as the Host header
    writes it) are answered 500 "Bad Host", as Traefik's secure headers answer them; the host
    is the first non-empty of `headers` (hostsProxyHeaders), else the Host header."""

    hosts: tuple[str, ...]
    headers: tuple[str, ...] = ()


@dataclass(frozen=True)
class SchemeRedirect:
    """Traefik's redirectScheme (to https) on a route served over HTTPS: a request whose Host
    names another port than `port` (a Host without one, or with :443, names 443) is redirected
    to `https://host[:port]` and its request target, `statuses` for GET and for other methods,
    as Traefik redirects when the URL it would make differs from the request's. To another
    `scheme` (than https), on every route of the router, plain HTTP too: to
    `scheme://host[:port]` (`port` 0: none), when it differs from the request's URL (the
    default ports of http and https dropped from both)."""

    port: int
    statuses: tuple[int, int]
    scheme: str = "https"


@dataclass(frozen=True)
class RedirectRegex:
    """The URL `scheme://host[:port]/path?query`, when `regex` (PCRE, anchored at its start,
    with `groups` capturing groups) matches it and `replacement` (nginx's value, `$1`…`$9`,
    the URL's rest after it) makes another URL, is redirected there: `statuses` for GET and
    for other methods. `unparsable`: the replacement is a URL Go cannot parse, so a URL the
    regex matches is answered 502, as Traefik answers it. `by_njs`: any other regex, replacing
    every match as Go's ReplaceAllString (edge/njs.py), `replacement` the njs function's
    template (go_template.py)."""

    regex: str
    groups: int
    replacement: str
    statuses: tuple[int, int]
    unparsable: bool = False
    by_njs: bool = False


@dataclass(frozen=True)
class StripPrefixRegex:
    """The first of `regexes` (PCRE, each with its count of capturing groups) that matches a
    non-empty start of the path removes it; X-Forwarded-Prefix tells the service what. The
    rest then gets `add_prefix` before it (an addPrefix after the strip). Traefik's
    stripPrefix is the same with its prefixes as literal regexes."""

    regexes: tuple[tuple[str, int], ...]
    add_prefix: str = ""


@dataclass(frozen=True)
class RewritePhase:
    allowed_hosts: AllowedHosts | None = None
    scheme_redirect: SchemeRedirect | None = None
    redirect_regex: RedirectRegex | None = None
    strip_prefix_regex: StripPrefixRegex | None = None


NOTHING = RewritePhase()
