"""errors (Traefik's customerrors): answers with a `status` in range are replaced by the page
`query` of the Traefik `service` (a service defined in labels, on any service), asked with the
request's headers (only those of `errorRequestHeaders` when given) and, with `nginxHeaders`,
ingress-nginx's headers, the answer then keeping the page's status."""

from __future__ import annotations

import re
from dataclasses import replace

from certbotless.labels.traefik.middlewares.options import (
    Context,
    Middleware,
    Unsupported,
    invalid_label,
    known_fields,
)
from certbotless.labels.values import (
    HEADER_NAME_RE,
    HEADER_VALUE_RE,
    STATUS_PLACEHOLDER,
    InvalidLabel,
    check_url,
    parse_statuses,
)
from certbotless.model import ErrorPages, Route

URL_PLACEHOLDER = "{url}"
# A '%' that starts no escape: Go cannot parse such a page's URL (Traefik answers the status'
# text instead of any page).
_BAD_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def apply(route: Route, mw: Middleware, context: Context) -> Route:
    known_fields(mw, {"status", "service", "query", "errorrequestheaders", "nginxheaders"})
    target = _error_service(mw, context)
    query = _page_query(mw)
    nginx_headers = _nginx_headers(mw)
    if (URL_PLACEHOLDER in query or nginx_headers) and _path_changed(route):
        raise Unsupported(mw.label(), mw.name, "{url} and nginxHeaders' X-Original-Uri name "
                          "the path as the middlewares before errors changed it, which the "
                          "edge cannot give: list errors before stripPrefix, addPrefix and "
                          "replacePath(Regex)")  # fmt: skip
    url = f"http://{target}{query}"
    invalid = invalid_label(mw.label("query"), mw.value("query"))
    try:
        check_url(url.replace(URL_PLACEHOLDER, ""), "", invalid, "/{status}.html",
                  STATUS_PLACEHOLDER)  # fmt: skip
        statuses = parse_statuses(mw.value("status", "400-599"), invalid)
    except InvalidLabel as error:
        raise Unsupported(error.problem.label, error.problem.value, error.problem.message) from None
    pages = ErrorPages(url, statuses, _passes_host(mw, context), _request_headers(mw),
                       nginx_headers)  # fmt: skip
    return replace(route, error_pages=pages)


def _page_query(mw: Middleware) -> str:
    """The page's path and query as Traefik asks for it: one leading '/' (added when missing),
    {originalStatus} the status (no statusRewrites here), without a fragment."""
    given = mw.value("query")
    query = "/" + given.removeprefix("/") if given else "/"
    query = query.replace("{originalStatus}", STATUS_PLACEHOLDER).partition("#")[0]
    if _BAD_ESCAPE_RE.search(query.partition("?")[0]):
        raise Unsupported(mw.label("query"), given, "has a '%' that starts no %XX escape in "
                          "its path, which Traefik cannot ask for (it answers the status' "
                          "text instead): write '%25'")  # fmt: skip
    return query


def _request_headers(mw: Middleware) -> tuple[str, ...] | None:
    """errorRequestHeaders: the only request headers the page gets (None: all of them, as
    Traefik's label parser leaves the list nil for an empty value)."""
    given = mw.value("errorrequestheaders")
    if not given:
        return None
    names = tuple(name.strip() for name in given.split(",") if name.strip())
    bad = [name for name in names if not HEADER_NAME_RE.match(name)]
    if bad:
        raise Unsupported(mw.label("errorrequestheaders"), given, f"{bad[0]!r} is not a header "
                          "name the edge can forward (letters, digits and '-'; nginx drops a "
                          "client's headers with other characters): list header names, "
                          "comma-separated")  # fmt: skip
    return names


def _nginx_headers(mw: Middleware) -> tuple[tuple[str, str], ...]:
    """nginxHeaders: (name as written, value), sent to the page with ingress-nginx's own."""
    headers = []
    for key, (label, value) in sorted(mw.fields.items()):
        if key != "nginxheaders" and not key.startswith("nginxheaders."):
            continue
        name = label.rsplit(".", 1)[-1] if key != "nginxheaders" else ""
        if not HEADER_NAME_RE.match(name) or not HEADER_VALUE_RE.match(value) or not value:
            raise Unsupported(label, value, "nginxHeaders.<name> takes a header name (letters, "
                              "digits and '-') and a value of printable ASCII without '\"', "
                              "'$' and '\\', not empty (nginx sends no empty header)")  # fmt: skip
        headers.append((name, value))
    return tuple(headers)


def _path_changed(route: Route) -> bool:
    """Whether a middleware before this one changed the request's path."""
    return bool(
        route.strip_prefixes
        or route.add_prefix
        or route.replace_path is not None
        or route.rewrite_phase.strip_prefix_regex is not None
    )


def _passes_host(mw: Middleware, context: Context) -> bool:
    """Whether the error service gets the client's Host (its passHostHeader, true unless
    set false)."""
    wanted = mw.value("service").split("@")[0].lower()
    option = f"traefik.http.services.{wanted}.loadbalancer.passhostheader"
    return not any(
        label.lower() == option and value.strip().lower() == "false"
        for service in context.services
        for label, value in service.labels.items()
    )


def _error_service(mw: Middleware, context: Context) -> str:
    """host:port of the Traefik service that serves the error pages."""
    wanted = mw.value("service").split("@")[0]
    for service in context.services:
        for label, value in service.labels.items():
            if label.lower() == f"traefik.http.services.{wanted}.loadbalancer.server.port".lower():
                return f"{service.name}:{value.strip()}"
    raise Unsupported(mw.label("service"), wanted, "names no Traefik service with a port "
                      "(traefik.http.services.<name>.loadbalancer.server.port) on any "
                      "service")  # fmt: skip
