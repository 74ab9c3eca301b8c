"""A server's location blocks: each route proxied to its upstream (its prefix stripped or added
or its path replaced; over h2c by grpc_pass, edge/h2c.py), the HTTPS redirects of plain HTTP,
and the ACME challenge location; the routes chosen among as Traefik chooses (edge/dispatch.py)."""

from __future__ import annotations

import re

from certbotless.edge.breaker import breaker_checks, breaker_logs
from certbotless.edge.client_certs import pass_cert_directives
from certbotless.edge.compression import compression_directives, with_traefik_skips
from certbotless.edge.conditions import quoted
from certbotless.edge.dispatch import (
    body_size_check,
    content_length_check,
    dispatch,
    route_name,
    routing_order,
    takes_every_request,
)
from certbotless.edge.error_pages import error_page_directives, error_pages_location
from certbotless.edge.guards import (
    access_directives,
    auth_answer_locations,
    auth_answered_statuses,
    auth_location,
    forward_auth_directives,
)
from certbotless.edge.h2c import as_grpc
from certbotless.edge.health_checks import down_answer
from certbotless.edge.njs import body_reading_location, forwards_body, replace_everywhere_rewrites
from certbotless.edge.rewrite_phase import (
    RAW_PATH,
    early_answers,
    raw_path_check,
    raw_upstream,
    strip_prefix_regex_rewrites,
)
from certbotless.edge.shaping import (
    cors_checks,
    header_directives,
    limit_directives,
    proxy_headers,
    ssl_proxy_checks,
)
from certbotless.edge.upstream_tls import transport_directives
from certbotless.edge.upstreams import upstream_address, upstream_url
from certbotless.model import CHALLENGE_PREFIX, Route

# A redirect=true route asked for over plain HTTP before its host has a certificate.
NO_CERTIFICATE_YET_RETRY_AFTER = 60


def challenge_location(responder_upstream: str) -> str:
    return f"""
        location ^~ {CHALLENGE_PREFIX} {{
            set $certbotless_responder {responder_upstream};
            proxy_pass http://$certbotless_responder;
            proxy_set_header Host $host;
        }}"""


def to_https_location(
    match: str, statuses: tuple[int, int] = (308, 308), port: int = 443, comment: str = ""
) -> str:
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
        location {match} {{{comment}{other}
            return {get_status} {target};
        }}"""


def _not_yet_https_location(match: str, comment: str = "") -> str:
    return f"""
        location {match} {{{comment}
            add_header Retry-After {NO_CERTIFICATE_YET_RETRY_AFTER} always;
            default_type text/plain;
            return 503 "HTTPS for this site is being set up; retry in a minute\\n";
        }}"""


def route_locations(
    server_key: str,
    routes: list[Route],
    plain_http: bool,
    has_cert: bool,
    hsts: bool = False,
    pooled: bool = False,
) -> tuple[str, list[str]]:
    """The http-level maps that choose a route (none when the first takes every request) and
    the server's locations: each route's, and its auth and error-page helpers. On plain HTTP,
    routes that want HTTPS only redirect. `pooled`: services are reached through their
    upstream blocks (edge/upstreams.py)."""
    ordered = routing_order(routes)
    if takes_every_request(ordered[0]):
        return "", _route_blocks(0, ordered[0], "/", plain_http, has_cert, hsts, pooled)
    maps, location = dispatch(server_key, ordered)
    blocks = [location]
    for index, route in enumerate(ordered):
        name = route_name(index)
        blocks += _route_blocks(index, route, name, plain_http, has_cert, hsts, pooled)
    return maps, blocks


def _route_blocks(
    index: int,
    route: Route,
    match: str,
    plain_http: bool,
    has_cert: bool,
    hsts: bool,
    pooled: bool,
) -> list[str]:
    """The route's location (`match`: / or its name), then its helpers."""
    if plain_http and route.redirect_to_https:
        comment = _path_comment(route) if match.startswith("@") else ""
        if not has_cert:
            return [_not_yet_https_location(match, comment)]
        return [to_https_location(match, route.redirect_statuses, route.redirect_port, comment)]
    blocks = []
    if forwards_body(route):  # the body is read first, then the route's own location
        reading, match = _read_body_first(index, route, match)
        blocks.append(reading)
    # The rewrite phase's checks (CORS, allowedHosts…) come before the rewrites' `break`.
    named = match.startswith("@")
    extra = (
        (body_size_check(route) if named else "")
        + (cors_checks(route.cors) if route.cors is not None else "")
        + ssl_proxy_checks(route, plain_http)
        + early_answers(route)
        + breaker_checks(route)
        + limit_directives(route)
        + access_directives(route)
        + _upstream_directives(route)
        + compression_directives(route)
        + forward_auth_directives(index, route)
        + pass_cert_directives(route)
        + error_page_directives(index, route)
        + down_answer(route)
        + _rewrites(route)
        + header_directives(route, hsts, plain_http)
    )
    extra = with_traefik_skips(route, extra)  # no gzip where Traefik's compress steps aside
    # A named location is reached through error_page: its own error pages must still apply;
    # so must those of the auth server's answer (guards.auth_answer_locations) and of the
    # error page that keeps the page's status (error_pages.error_pages_location).
    paged = route.error_pages is not None and bool(route.error_pages.nginx_headers)
    recursive = "\n            recursive_error_pages on;" * (
        named or route.auth_url is not None or paged
    )
    proxied = f"""
            proxy_pass $upstream;{proxy_headers(route)}{extra}"""
    if route.upstream_scheme == "h2c":
        proxied = as_grpc(proxied)
    blocks.append(f"""
        location {match} {{{_path_comment(route) if named else ""}{recursive}
            set $upstream {upstream_url(route, pooled)};{proxied}
        }}""")
    if route.auth_url is not None:
        blocks += [auth_location(index, route), auth_answer_locations(index, route)]
    if route.error_pages is not None:
        blocks.append(error_pages_location(index, route.error_pages, breaker_logs(route)))
    return blocks


def _read_body_first(index: int, route: Route, match: str) -> tuple[str, str]:
    """forwardBody: the location `match` that reads the body (its size checked as the route's
    own location would, body_size_check, or against maxBodySize), and the name of the route's
    own location, which it passes the request on to (njs.body_reading_location)."""
    limit = route.auth_options.max_request_body
    named = match.startswith("@")
    if limit is not None:
        checks = content_length_check(limit) if named else ""
    else:
        checks = body_size_check(route) if named else ""
        if route.max_body_size is not None:
            checks += f"\n            client_max_body_size {route.max_body_size};"
    return body_reading_location(index, route, match, checks, auth_answered_statuses(route))


def _path_comment(route: Route) -> str:
    """After a named location's `{`: the path its route serves, for people and nginx's errors."""
    return f"  # {'= ' if route.exact_path else ''}{route.path}"


def _upstream_directives(route: Route) -> str:
    """Retries on another task of the service (`retries`: tries in all, as Traefik counts
    attempts), the upstream's name sent over TLS, and as Host when the client's is not
    passed."""
    lines = []
    if route.retries:
        lines += [f"proxy_next_upstream {route.retry_on};",
                  f"proxy_next_upstream_tries {route.retries};"]  # fmt: skip
        if route.retry_timeout:
            lines.append(f"proxy_next_upstream_timeout {route.retry_timeout};")
    # Traefik's Host without passHostHeader: the server URL's as written, else the task's.
    if not route.pass_host_header:
        host = route.server_authority or upstream_address(route)
        lines.append(f"proxy_set_header Host {host};")
    if route.upstream_scheme == "https":  # the service's name, not its upstream block's
        name = upstream_address(route).rpartition(":")[0].strip("[]")
        name = route.upstream.transport.server_name or name  # serversTransport's serverName
        lines += ["proxy_ssl_server_name on;", f"proxy_ssl_name {name};"]
    lines += transport_directives(route)
    return "".join(f"\n            {line}" for line in lines)


# A path Go's cleaning changes (JoinPath: `//`, a `.` or `..` segment), which Traefik answers
# 400 after replacing the path.
_UNCLEAN = "//|(?:^|/)\\.\\.?(?:/|$)"


def _rewrites(route: Route) -> str:
    """Traefik's stripPrefix then addPrefix, as one rewrite (the first that matches ends);
    or its replacePath(Regex), which tells the service the path asked for in X-Replaced-Path
    (Traefik's: the escaped path, without the query) when it replaces it; replacePathRegex
    answers 400 when the new path is one cleaning changes, replacePath sends its path as
    written."""
    if route.rewrite_phase.strip_prefix_regex is not None:
        return strip_prefix_regex_rewrites(route.rewrite_phase.strip_prefix_regex)
    if route.replace_path is not None and route.replace_path_everywhere:
        return replace_everywhere_rewrites(*route.replace_path)
    if route.replace_path is not None:
        regex, replacement = quoted(route.replace_path[0]), route.replace_path[1]
        asked, new = "$certbotless_replaced_path", "$certbotless_new_path"
        lines = [RAW_PATH, f'set {asked} "";', f'set {new} "";',
                 f'if ($uri ~ "{regex}") {{ set {asked} $certbotless_request_path; '
                 f'set {new} "{replacement}"; }}',
                 f'if ({new} ~ "{_UNCLEAN}") {{ return 400; }}',
                 f'rewrite "{regex}" "{replacement}" break;',
                 f"proxy_set_header X-Replaced-Path {asked};"]  # fmt: skip
        if route.replace_path[0] == "^.*$":  # replacePath: its path as written (RawPath)
            lines[4] = f'set $upstream "${{upstream}}{replacement}$is_args$args";'
        return "".join(f"\n            {line}" for line in lines)
    lines = [
        f"rewrite ^{re.escape(prefix.rstrip('/'))}/?(.*)$ {route.add_prefix}/$1 break;"
        for prefix in route.strip_prefixes
    ]
    if route.add_prefix and not route.strip_prefixes:
        # Traefik puts the prefix before the raw path: `%2F` stays escaped.
        lines = [*raw_path_check(), raw_upstream(f"{route.add_prefix}$certbotless_request_path")]
    if route.add_prefix:
        lines.append(f"rewrite ^(.*)$ {route.add_prefix}$1 break;")
    if len(route.strip_prefixes) == 1:
        lines.append(f"proxy_set_header X-Forwarded-Prefix {route.strip_prefixes[0]};")
    return "".join(f"\n            {line}" for line in lines)
