"""errors (Traefik's customerrors): answers with a `status` in range are replaced by the page
`query` of the Traefik `service` (a service defined in labels, on any service)."""

from __future__ import annotations

from dataclasses import replace

from certbotless.labels.traefik.middlewares.options import (
    Context,
    Middleware,
    Unsupported,
    invalid_label,
    known_fields,
)
from certbotless.labels.values import (
    STATUS_PLACEHOLDER,
    InvalidLabel,
    check_url,
    parse_statuses,
)
from certbotless.model import ErrorPages, Route


def apply(route: Route, mw: Middleware, context: Context) -> Route:
    known_fields(mw, {"status", "service", "query"})
    target = _error_service(mw, context)
    query = mw.value("query", "/")
    if not query.startswith("/") or "{url}" in query:
        raise Unsupported(mw.label("query"), query, "must be a path, with {status} at most")
    url = f"http://{target}{query}"
    invalid = invalid_label(mw.label("query"), query)
    try:
        check_url(url, "", invalid, "/{status}.html", STATUS_PLACEHOLDER)
        statuses = parse_statuses(mw.value("status", "400-599"), invalid)
    except InvalidLabel as error:
        raise Unsupported(error.problem.label, error.problem.value, error.problem.message) from None
    # The page is asked for at `query` as it is (Traefik adds no status of its own).
    return replace(route, error_pages=ErrorPages(url, statuses, _passes_host(mw, context)))


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
