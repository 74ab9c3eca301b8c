"""A host's location blocks: each route proxied to its upstream (Traefik's matchers, its
prefix stripped or added or its path replaced), the HTTPS redirects of plain HTTP, and the
ACME challenge location."""

from __future__ import annotations

import re

from certbotless.edge.conditions import condition_checks, quoted
from certbotless.edge.guards import access_directives, auth_location, forward_auth_directives
from certbotless.edge.rewrite_phase import early_answers, strip_prefix_regex_rewrites
from certbotless.edge.shaping import (
    PROXY_HEADERS,
    compression_directives,
    cors_checks,
    error_page_directives,
    error_pages_location,
    header_directives,
    limit_directives,
)
from certbotless.model import CHALLENGE_PREFIX, Route

# A redirect=true route asked for over plain HTTP before its host has a certificate.
NO_CERTIFICATE_YET_RETRY_AFTER = 60

# Traefik routes on the path with reserved characters kept percent-encoded when written in
# upper case (`%2F` stays `%2F`: pkg/muxer/http/mux.go, withRoutingPath); nginx's locations see
# them decoded. Only such requests are checked again, on their path as sent.
_RESERVED = ":/?#[]@!$&'()*+,;="
_KEPT_ENCODED = "|".join(f"%{ord(c):02X}" for c in _RESERVED + "%")
RESERVED_PATH_MAP = f"""
    # The path as sent, when it has a percent-encoded reserved character that Traefik would
    # keep encoded to choose the route; empty otherwise.
    map $request_uri $certbotless_reserved_path {{
        "~^(?<path>[^?]*(?:{_KEPT_ENCODED})[^?]*)" $path;
        default "";
    }}"""


def challenge_location(responder_upstream: str) -> str:
    return f"""
        location ^~ {CHALLENGE_PREFIX} {{
            set $certbotless_responder {responder_upstream};
            proxy_pass http://$certbotless_responder;
            proxy_set_header Host $host;
        }}"""


def to_https_location(path: str, statuses: tuple[int, int] = (308, 308), port: int = 443) -> str:
    """Plain HTTP sent to HTTPS: `statuses` for GET and for other methods (Traefik's
    redirectScheme: 302/307, or 301/308 when permanent), to `port`."""
    target = "https://$host" + ("" if port == 443 else f":{port}") + "$request_uri"
    get_status, other_status = statuses
    other = (
        ""
        if get_status == other_status
        else f"\n            if ($request_method != GET) {{ return {other_status} {target}; }}"
    )
    return f"""
        location {path} {{{other}
            return {get_status} {target};
        }}"""


def _not_yet_https_location(path: str) -> str:
    return f"""
        location {path} {{
            add_header Retry-After {NO_CERTIFICATE_YET_RETRY_AFTER} always;
            default_type text/plain;
            return 503 "HTTPS for this site is being set up; retry in a minute\\n";
        }}"""


def route_locations(
    routes: list[Route], plain_http: bool, has_cert: bool, hsts: bool = False
) -> list[str]:
    """One location per route (longest path first), plus its auth and error-page locations.
    On plain HTTP, routes that want HTTPS only redirect. Without a route at `/`, other paths get
    a plain 404 rather than nginx's own files."""
    blocks = []
    # Indexes follow the host's route list, so both servers name a route's helpers alike.
    for index, route in enumerate(routes):
        if plain_http and route.redirect_to_https:
            match = _location_match(route)
            blocks.append(
                to_https_location(match, route.redirect_statuses, route.redirect_port)
                if has_cert
                else _not_yet_https_location(match)
            )
        else:
            blocks.extend(_proxy_locations(index, route, hsts, plain_http))
    if not any(route.path == "/" and not route.exact_path for route in routes):
        blocks.append("\n        location / {\n            return 404;\n        }")
    return blocks


def _location_match(route: Route) -> str:
    return f"= {route.path}" if route.exact_path else route.path


def _traefik_path_regex(path: str) -> str:
    """What Traefik's routing path must start with to match `path`, as a PCRE over the path as
    sent: each character as written or percent-encoded, except that upper-case encodings of
    reserved characters stay encoded (do not match the character)."""
    parts = []
    for char in path:
        encoded = f"%{ord(char):02X}"
        if char in _RESERVED + "%":  # decoded only when not written in upper case
            forms = {encoded.lower()} - {encoded}
        else:
            forms = {encoded, encoded.lower()}
        literal = re.escape(char) if not char.isalnum() else char
        parts.append(f"(?:{'|'.join([literal, *sorted(forms)])})" if forms else literal)
    return "".join(parts)


def _reserved_path_check(route: Route) -> str:
    """A request whose path matches this location only once its reserved characters are
    decoded is not Traefik's match for this router: 404, as Traefik without another router."""
    if route.path == "/" and not route.exact_path:
        return ""
    end = "$" if route.exact_path else ""
    return (f'\n            if ($certbotless_reserved_path ~ "^(?!{_traefik_path_regex(route.path)}'
            f'{end}).") {{ return 404; }}')  # fmt: skip


def _proxy_locations(
    index: int, route: Route, hsts: bool = False, plain_http: bool = False
) -> list[str]:
    # The rewrite phase's checks (matchers, CORS) come before the rewrites' `break`.
    extra = (
        condition_checks(route)
        + _reserved_path_check(route)
        + (cors_checks(route.cors) if route.cors is not None else "")
        + early_answers(route)
        + limit_directives(route)
        + access_directives(route)
        + _upstream_directives(route)
        + compression_directives(route)
        + forward_auth_directives(index, route)
        + error_page_directives(index, route)
        + _rewrites(route)
        + header_directives(route, hsts, plain_http)
    )
    blocks = [
        f"""
        location {_location_match(route)} {{
            set $upstream {route.upstream_scheme}://{route.service}:{route.port};
            proxy_pass $upstream;{PROXY_HEADERS}{extra}
        }}"""
    ]
    if route.auth_url is not None:
        blocks.append(auth_location(index, route.auth_url, route.auth_request_headers))
    if route.error_pages is not None:
        blocks.append(error_pages_location(index, route.error_pages.url))
    return blocks


def _upstream_directives(route: Route) -> str:
    """Retries on another task of the service (`retries`: tries in all, as Traefik counts
    attempts), the upstream's name sent over TLS, and as Host when the client's is not
    passed."""
    lines = []
    if route.retries:
        lines += ["proxy_next_upstream error timeout;",
                  f"proxy_next_upstream_tries {route.retries};"]  # fmt: skip
    if not route.pass_host_header:
        lines.append(f"proxy_set_header Host {route.service}:{route.port};")
    if route.upstream_scheme == "https":
        lines.append("proxy_ssl_server_name on;")
    return "".join(f"\n            {line}" for line in lines)


# The path as the client wrote it (escaped), before any rewrite.
_REQUEST_PATH = """
            set $certbotless_request_path $request_uri;
            if ($request_uri ~ "^([^?]*)") { set $certbotless_request_path $1; }"""


def _rewrites(route: Route) -> str:
    """Traefik's stripPrefix then addPrefix, as one rewrite (the first that matches ends);
    or its replacePath(Regex), which tells the service the path asked for in X-Replaced-Path
    (Traefik's: the escaped path, without the query) when it replaces it."""
    if route.rewrite_phase.strip_prefix_regex is not None:
        return strip_prefix_regex_rewrites(route.rewrite_phase.strip_prefix_regex)
    if route.replace_path is not None:
        regex, replacement = quoted(route.replace_path[0]), route.replace_path[1]
        asked = "$certbotless_replaced_path"
        lines = [f'set {asked} "";',
                 f'if ($uri ~ "{regex}") {{ set {asked} $certbotless_request_path; }}',
                 f'rewrite "{regex}" "{replacement}" break;',
                 f"proxy_set_header X-Replaced-Path {asked};"]  # fmt: skip
        return _REQUEST_PATH + "".join(f"\n            {line}" for line in lines)
    lines = [
        f"rewrite ^{re.escape(prefix.rstrip('/'))}/?(.*)$ {route.add_prefix}/$1 break;"
        for prefix in route.strip_prefixes
    ]
    if route.add_prefix:
        lines.append(f"rewrite ^(.*)$ {route.add_prefix}$1 break;")
    if len(route.strip_prefixes) == 1:
        lines.append(f"proxy_set_header X-Forwarded-Prefix {route.strip_prefixes[0]};")
    return "".join(f"\n            {line}" for line in lines)
