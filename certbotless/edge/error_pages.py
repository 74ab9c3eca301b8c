"""Traefik's errors middleware (model's `ErrorPages`): the upstream's answers of the listed
statuses replaced by a page another service gives, asked as Traefik's customerrors asks it
(pkg/middlewares/customerrors): a GET for the page's path and query, with the request's headers
(only the listed ones with errorRequestHeaders), with nginxHeaders ingress-nginx's too."""

from __future__ import annotations

from certbotless.edge.rewrite_phase import FORWARDED_PORT, entry_point_value
from certbotless.model import ErrorPages, Route

STATUS_PLACEHOLDER, URL_PLACEHOLDER = "{status}", "{url}"
# njs's errorPageUrl: the request's URL as Traefik's {url}, query-escaped (see the .js).
PAGE_URL = "$certbotless_error_page_url"
# Request headers a listed name (or nginxHeaders) never sends: the page is asked with the Host
# of its own (the client's, unless its service says passHostHeader=false), has no body, and
# Go's proxy drops the hop-by-hop ones; Proxy is never passed on (httpoxy), as without a list.
_NOT_COPIED = frozenset({
    "host", "content-length", "connection", "keep-alive", "proxy-connection",
    "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding",
    "upgrade", "proxy",
})  # fmt: skip
# What Traefik sets over the request's and nginxHeaders' own with nginxHeaders (lower-case
# name → name, value), beside X-Code (the status): the Accept header (Traefik sends an empty
# X-Format when
# there is none, nginx none at all), the request target, and the request's id when it has one.
_INGRESS_NGINX = {
    "x-format": ("X-Format", "$http_accept"),
    "x-original-uri": ("X-Original-Uri", "$request_uri"),
    "x-request-id": ("X-Request-ID", "$http_x_request_id"),
}
_HANDED_ON = 418  # an error_page that no upstream answers: the noting location's own
_HOST = "$certbotless_page_host"  # Go's r.Host: the Host header, else HTTP/2's :authority
_HOST_LINES = (f"set {_HOST} $http_host;", f'if ({_HOST} = "") {{ set {_HOST} $host; }}')


def needs_page_url(route: Route) -> bool:
    """Whether the route's error page is asked with its URL ({url}, which njs escapes)."""
    return route.error_pages is not None and URL_PLACEHOLDER in route.error_pages.url


def error_page_directives(index: int, route: Route) -> str:
    """The upstream's errors of the listed statuses answered by the route's error-page
    location instead."""
    if route.error_pages is None:
        return ""
    codes = " ".join(str(code) for code in route.error_pages.statuses)
    return (
        "\n            proxy_intercept_errors on;"
        f"\n            error_page {codes} @certbotless_errors_{index};"
    )


def error_pages_location(index: int, pages: ErrorPages, extra: str = "") -> str:
    """The route's error-page location, whose answer keeps the error's status; `extra`: more of
    its lines (the route's breaker counts the answers given here too). With nginxHeaders the
    page's own status is kept (Traefik serves the page as it comes): a first location notes
    the error's status, which error_page's `=` (the page's status) would lose, then asks."""
    name, status, noting = f"@certbotless_errors_{index}", "$status", ""
    if pages.nginx_headers:
        status = "$certbotless_page_status"
        noting = f"""
        location {name} {{
            set {status} $status;
            recursive_error_pages on;
            error_page {_HANDED_ON} = {name}_page;
            return {_HANDED_ON};
        }}
"""
        name += "_page"
    page = pages.url.replace(STATUS_PLACEHOLDER, "${" + status[1:] + "}")  # `${…}`: letters
    page = page.replace(URL_PLACEHOLDER, "${" + PAGE_URL[1:] + "}")  # after it stay letters
    if pages.client_host:
        extra += "\n            proxy_set_header Host $host;"
    extra += "".join(f"\n            {line}" for line in _page_headers(pages, status))
    return f"""{noting}
        location {name} {{{extra}
            set $error_page {page};
            proxy_pass $error_page;
            proxy_ssl_server_name on;
            proxy_method GET;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header Proxy "";
        }}"""


def _page_headers(pages: ErrorPages, status: str) -> list[str]:
    """The page request's headers beyond the client's own: with errorRequestHeaders only the
    listed ones (as Traefik's middlewares see them), then nginxHeaders' values added to any
    the request has, and ingress-nginx's set over both."""
    copied = {name.lower(): name for name in pages.request_headers or ()}
    copied = {key: name for key, name in copied.items() if key not in _NOT_COPIED}
    lines = ["proxy_pass_request_headers off;"] if pages.request_headers is not None else []
    values: dict[str, tuple[str, str]] = {}  # lower-case name → (name, value as nginx reads it)
    for key, name in copied.items():
        value = entry_point_value(key, _HOST)
        if key == "x-forwarded-server":
            value = "$hostname"
        elif key == "x-forwarded-port":
            value = "$certbotless_forwarded_port"
        if value is not None:
            values[key] = (name, value)
    for number, (name, given) in enumerate(pages.nginx_headers):
        key = name.lower()
        if key in _NOT_COPIED:  # Go's proxy drops them, or sends its own (Host)
            continue
        client = values.get(key, (name, "")) if pages.request_headers is not None else None
        lines += _added(number, key, given, client)
        values[key] = (name, f"$certbotless_page_header_{number}")
    if pages.nginx_headers:
        values.update(_INGRESS_NGINX, **{"x-code": ("X-Code", status)})
    used = " ".join([*lines, *(value for _, value in values.values())])
    lines = [*(_HOST_LINES if _HOST in used else ()),
             *(FORWARDED_PORT if "$certbotless_forwarded_port" in used else ()),
             *lines]  # fmt: skip
    return lines + [f"proxy_set_header {name} {value};" for name, value in values.values()]


def _added(number: int, key: str, given: str, client: tuple[str, str] | None) -> list[str]:
    """nginxHeaders' value after the request's own of that name, when it has one (Go's
    CopyHeaders adds it: the page gets both, here as one line, joined by ', '); `client`: the
    listed header's value (an empty one: not listed), None: the client's own (all passed)."""
    variable = f"$certbotless_page_header_{number}"
    own = client[1] if client is not None else "$http_" + key.replace("-", "_")
    lines = [f'set {variable} "{given}";']
    if own:
        lines.append(f'if ({own} != "") {{ set {variable} "{own}, {given}"; }}')
    return lines
