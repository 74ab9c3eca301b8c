"""Shaping of what passes through a location: the headers set on the request and the answer
(forwarded headers, HSTS, CORS), size and time limits, compression, and error pages."""

from __future__ import annotations

import re
from collections.abc import Iterable

from certbotless.edge.compression import vary_directives
from certbotless.edge.conditions import quoted
from certbotless.edge.rewrite_phase import entry_point_value
from certbotless.edge.upstreams import sticky_cookie_variable
from certbotless.model import Cors, Route

HSTS_VALUE = "max-age=63072000"

# The edge is the first hop: X-Forwarded-For is the client's address, never what it sent.
# `Proxy` is cleared against httpoxy.
FORWARDED_HEADERS = """
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header Proxy "";"""

PROXY_HEADERS = (
    """
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;"""
    + FORWARDED_HEADERS
    + """
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;"""
)


def proxy_headers(route: Route) -> str:
    """PROXY_HEADERS, but for the headers the route's customRequestHeaders set themselves: those
    are sent once, with the route's value (Traefik's middleware replaces the entry point's; two
    Host lines would make a bad request)."""
    own = {name.lower() for name, _ in request_headers(route)}
    if not route.pass_host_header:  # the service's own name: _upstream_directives sends it
        own.add("host")
    lines = [line for line in PROXY_HEADERS.split("\n")
             if not line.strip().startswith("proxy_set_header ") or line.split()[1].lower()
             not in own]  # fmt: skip
    return "\n".join(lines)


def request_headers(route: Route) -> list[tuple[str, str]]:
    """The route's customRequestHeaders as Traefik's proxy sends them: the last middleware's
    value of a name wins; an empty Host changes nothing (Go's Host is no header to delete); an
    X-Forwarded-For value is followed by the client's address, which Traefik's proxy appends,
    and an empty one sends none only when spelled `X-Forwarded-For` (Traefik marks exactly that
    name; another spelling is deleted, and the proxy adds the client's address again)."""
    sent: dict[str, tuple[str, str]] = {}
    for name, value in route.request_headers:
        key = name.lower()
        if key == "host" and (not value or not route.pass_host_header):
            continue  # without passHostHeader, Traefik's proxy sends the service's name
        if key == "x-forwarded-for":
            if not value and name != "X-Forwarded-For":
                sent.pop(key, None)
                continue
            value = f"{value}, $remote_addr" if value else ""
        sent[key] = (name, value)
    return list(sent.values())


def limit_directives(route: Route) -> str:
    """How long the upstream may take, how large a request body may be, and how much of it is
    kept in memory (the rest in a temporary file)."""
    lines = []
    if route.timeout is not None:
        lines += [f"proxy_read_timeout {route.timeout};", f"proxy_send_timeout {route.timeout};"]
    if route.max_body_size is not None:
        lines.append(f"client_max_body_size {route.max_body_size};")
    if route.body_buffer_size is not None:
        lines.append(f"client_body_buffer_size {route.body_buffer_size};")
    if route.upstream.flush_at_once:  # never later than Traefik's flushInterval
        lines.append("proxy_buffering off;")
    if route.upstream.answer_memory is not None:
        lines.append(f"proxy_buffers {answer_pages(route.upstream.answer_memory)} {_PAGE};")
    return "".join(f"\n            {line}" for line in lines)


_PAGE = 4096
# nginx's floor: proxy_busy_buffers_size (two pages) must stay below all pages but one.
_LEAST_PAGES = 4


def answer_pages(memory: int) -> int:
    """proxy_buffers' count of pages for `memory` bytes of an answer in memory (the rest in a
    temporary file, as Traefik's buffering past memResponseBodyBytes): rounded up to whole
    pages, at least nginx's floor of four."""
    return max(-(-memory // _PAGE), _LEAST_PAGES)


def header_directives(route: Route, hsts: bool, plain_http: bool = False) -> str:
    """The route's request and answer headers. An answer header is set as Traefik sets it:
    the upstream's own of that name is dropped."""
    lines = [f'proxy_set_header {name} "{value}";' for name, value in request_headers(route)]
    for name, value in route.response_headers:
        lines.append(f"proxy_hide_header {name};")
        if value:
            lines.append(f'add_header {name} "{value}" always;')
    if route.cors is not None:
        lines += _cors_headers(route.cors)
    lines += vary_directives(route)
    if route.upstream.sticky is not None:  # empty (no header) when the request had the cookie
        cookie = sticky_cookie_variable(route.upstream.sticky)
        lines.append(f"add_header Set-Cookie {cookie} always;")
    if route.public_key and not plain_http:
        lines += ["proxy_hide_header Public-Key-Pins;",
                  f"add_header Public-Key-Pins '{route.public_key}' always;"]  # fmt: skip
    elif route.public_key and route.ssl_proxy_headers:
        lines.append(f"add_header Public-Key-Pins {_SSL_ANSWERS['Public-Key-Pins']} always;")
    if route.strict_transport and (not plain_http or route.strict_transport_on_plain_http):
        sts = route.strict_transport
        lines += ["proxy_hide_header Strict-Transport-Security;",
                  f'add_header Strict-Transport-Security "{sts}" always;']  # fmt: skip
    elif route.strict_transport and plain_http and route.ssl_proxy_headers:
        lines.append("add_header Strict-Transport-Security "
                     f"{_SSL_ANSWERS['Strict-Transport-Security']} always;")  # fmt: skip
    elif hsts and (route.cors is not None or route.upstream.sticky is not None
                   or bool(route.compress_encodings)
                   or any(value for _, value in route.response_headers)):  # fmt: skip
        # add_header here stops the server's from being inherited: repeat HSTS.
        lines.append(f'add_header Strict-Transport-Security "{HSTS_VALUE}" always;')
    return "".join(f"\n            {line}" for line in lines)


_STAR = '"*"'  # nginx reads a bare * as text too; quoted as the other values
_ASKS = '"${certbotless_cors_preflight}m"'  # "o" (OPTIONS) then "m" (a method asked): "om"


def cors_checks(cors: Cors) -> str:
    """Traefik's CORS, first part (nginx's rewrite phase, so before any rewrite's `break`): the
    request's Origin kept when it matches, as Traefik's matchOrigin reads the list in order (`*`
    sends `*`, or the Origin itself with credentials), and preflights (OPTIONS with an Origin
    and Access-Control-Request-Method) answered 200 here with the allowed methods, headers and
    max age. An empty variable sends no header."""
    origin, preflight = "$certbotless_cors_origin", "$certbotless_cors_preflight"
    lines = [f'set {origin} "";']
    star = "*" in cors.origins
    listed = cors.origins[: cors.origins.index("*")] if star else cors.origins
    if star:  # the regexes are read after the list: never reached
        lines.append(f"set {origin} {'$http_origin' if cors.credentials else _STAR};")
    else:
        lines += [f'if ($http_origin ~ "{quoted(regex)}") {{ set {origin} $http_origin; }}'
                  for regex in cors.origin_regexes]  # fmt: skip
    if listed:
        exact = "|".join(re.escape(o) for o in listed)
        lines.append(f'if ($http_origin ~ "^({exact})$") {{ set {origin} $http_origin; }}')
    lines += [f'set {variable} "";' for variable in _CORS_ANSWERS.values()]
    lines += [f'set {preflight} "";',
              f'if ($request_method = OPTIONS) {{ set {preflight} "o"; }}',
              f"if ($http_access_control_request_method) {{ set {preflight} {_ASKS}; }}",
              f'if ($http_origin = "") {{ set {preflight} ""; }}',
              f'if ({preflight} = "om") {{ '
              + "".join(f'set {_CORS_ANSWERS[n]} "{v}"; ' for n, v in _preflight(cors) if v)
              + "return 200; }"]  # fmt: skip
    return "".join(f"\n            {line}" for line in lines)


# http-level maps for the answer's CORS headers, which read the service's answer: its
# Access-Control-Allow-Origin stays when the Origin matched nothing (Traefik sets it only on a
# match), and addVaryHeader adds `Origin` to its Vary as Traefik writes it (`Testing,Origin`;
# `Origin` alone once), but not to a preflight's answer, which Traefik answers without Vary.
CORS_MAPS = """
    map $certbotless_cors_origin $certbotless_cors_answer_origin {
        "" $upstream_http_access_control_allow_origin;
        default $certbotless_cors_origin;
    }
    map "${certbotless_cors_preflight}|$upstream_http_vary" $certbotless_cors_vary {
        default "${upstream_http_vary},Origin";
        "om|" "";
        ~^[om]*\\|$ Origin;
        ~^[om]*\\|Origin$ Origin;
    }"""


def cors_maps(routes: Iterable[Route]) -> str:
    """CORS_MAPS when a route has CORS (they read its variables, which nginx must know)."""
    return CORS_MAPS if any(route.cors is not None for route in routes) else ""


_CORS_ANSWERS = {
    "Access-Control-Allow-Methods": "$certbotless_cors_methods",
    "Access-Control-Allow-Headers": "$certbotless_cors_headers",
    "Access-Control-Max-Age": "$certbotless_cors_max_age",
}


def _preflight(cors: Cors) -> list[tuple[str, str]]:
    """The preflight's answers, lists joined with `,` as Traefik's strings.Join writes them."""
    return [
        ("Access-Control-Allow-Methods", ",".join(cors.methods)),
        ("Access-Control-Allow-Headers", ",".join(cors.headers)),
        ("Access-Control-Max-Age", "" if cors.max_age is None else str(cors.max_age)),
    ]


def _cors_headers(cors: Cors) -> list[str]:
    """Traefik's CORS, second part: the answer's headers, each replacing the service's own of
    that name when Traefik sets it."""
    lines = [
        "proxy_hide_header Access-Control-Allow-Origin;",
        "add_header Access-Control-Allow-Origin $certbotless_cors_answer_origin always;",
    ]
    lines += [f"add_header {name} {variable} always;" for name, variable in _CORS_ANSWERS.items()]
    if cors.credentials:
        lines += ["proxy_hide_header Access-Control-Allow-Credentials;",
                  'add_header Access-Control-Allow-Credentials "true" always;']  # fmt: skip
    if cors.expose_headers and not ("*" in cors.expose_headers and cors.credentials):
        exposed = ",".join(cors.expose_headers)  # as Traefik joins them
        lines += ["proxy_hide_header Access-Control-Expose-Headers;",
                  f'add_header Access-Control-Expose-Headers "{exposed}" always;']  # fmt: skip
    if cors.vary:
        lines += ["proxy_hide_header Vary;", "add_header Vary $certbotless_cors_vary always;"]
    return lines


# Traefik's sslProxyHeaders: plain HTTP counted as HTTPS for these answer headers.
_SSL_ANSWERS = {
    "Strict-Transport-Security": "$certbotless_ssl_sts",
    "Public-Key-Pins": "$certbotless_ssl_pins",
}


def ssl_proxy_checks(route: Route, plain_http: bool) -> str:
    """Over plain HTTP (nginx's rewrite phase, before any rewrite's `break`): a request with
    one of the route's sslProxyHeaders at its value counts as HTTPS, as unrolled/secure's
    isSSL, and gets the HTTPS-only headers. Traefik's entry point has set some headers itself
    (X-Forwarded-Proto: the scheme), and removed the client's other X-Forwarded-*."""
    if not plain_http or not route.ssl_proxy_headers:
        return ""
    marked = "$certbotless_ssl"
    lines = [f'set {marked} "";', *(f'set {v} "";' for v in _SSL_ANSWERS.values())]
    for name, value in route.ssl_proxy_headers:
        seen = entry_point_value(name.lower(), "$http_host")
        if seen is not None:
            lines.append(f'if ({seen} = "{value}") {{ set {marked} "y"; }}')
        elif not value:  # Traefik removed the header: "" is its value
            lines.append(f'set {marked} "y";')
    answers = {"Strict-Transport-Security": route.strict_transport,
               "Public-Key-Pins": route.public_key}  # fmt: skip
    sets = "".join(f"set {_SSL_ANSWERS[name]} '{value}'; " for name, value in answers.items()
                   if value)  # fmt: skip
    lines.append(f'if ({marked} = "y") {{ {sets}}}')
    return "".join(f"\n            {line}" for line in lines)
