"""What a router's Traefik service says about its upstream (`traefik.http.services.<name>.
loadbalancer.server.*` and `passHostHeader`): the port and scheme of the Swarm service's own
tasks, or a `server.url` Traefik proxies to instead, only where the operator allows it
(CERTBOTLESS_TRAEFIK_SERVER_URLS: in a shared swarm any service's labels could otherwise send
the edge's requests anywhere the edge reaches). Problems raise InvalidLabel: the router is not
routed."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from certbotless.labels.values import InvalidLabel
from certbotless.model import LabelProblem, Route, ServiceInfo
from certbotless.setting_values import SERVER_URL_SCHEMES, ServerUrlPrefix, url_parts

SERVICES = "traefik.http.services."
V1_PORT = "traefik.port"
SERVER_URLS = "CERTBOTLESS_TRAEFIK_SERVER_URLS"
_PORT_RE = re.compile(r"^[0-9]{1,5}$", re.ASCII)
_HOST_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]", re.ASCII)
# A server URL's path kept with preservePath: segments of unreserved characters, which nginx's
# rewrites and strings take as they are.
_BASE_PATH_RE = re.compile(r"(?:/(?!\.\.?(?:/|$))[A-Za-z0-9._~-]+)*/?", re.ASCII)
_DEFAULT_PORTS = {"http": 80, "https": 443, "h2c": 80}


@dataclass(frozen=True)
class RouterService:
    """The router's words about its service: its name, its `service` label's value and
    label, and its rule's label (problems about a missing service are about the rule)."""

    router: str
    wanted: str
    service_label: str
    rule_label: str


@dataclass(frozen=True)
class Upstream:
    port: int
    scheme: str  # http, https or h2c
    server_authority: str = ""  # a server URL's host[:port] as written; "": the tasks
    base_path: str = ""  # with preservePath: the server URL's path, before the request's
    base_label: str = ""  # the label that asked for base_path


def _problem(service: ServiceInfo, label: str, message: str) -> InvalidLabel:
    return InvalidLabel(LabelProblem(service.name, label, service.labels.get(label, ""), message))


def upstream(
    service: ServiceInfo, router: RouterService, v1: bool, allowed: tuple[ServerUrlPrefix, ...]
) -> Upstream:
    """The port and scheme (or server URL) of the router's service, defined on this service."""
    defined = defined_services(service)
    wanted, _, provider = router.wanted.partition("@")
    if provider not in ("", "docker", "swarm"):
        raise _problem(service, router.service_label,
                       f"services of the {provider} provider are not read; define the "
                       "service in this service's labels")  # fmt: skip
    if v1 or (not wanted and not defined):
        port_text = service.labels.get(V1_PORT, "").strip()
        if port_text:
            return Upstream(_port(service, V1_PORT, port_text), "http")
    if not wanted:
        if len(defined) != 1:
            raise _problem(service, router.rule_label, _which_service(router, defined))
        wanted = next(iter(defined))
    if wanted not in defined:
        raise _problem(service, router.service_label,
                       f"service {wanted} is not defined on this service; set "
                       f"{SERVICES}{wanted}.loadbalancer.server.port on it (certbotless "
                       "routes a service's routers to that service)")  # fmt: skip
    port_label, scheme_label = defined[wanted]
    url_label = spelled(service, f"{SERVICES}{wanted}.loadbalancer.server.url")
    if url_label in service.labels:  # Traefik proxies to that address, not to the tasks
        return _server_url(service, wanted, url_label, allowed)
    scheme = service.labels.get(scheme_label, "http").strip().lower() or "http"
    if scheme not in SERVER_URL_SCHEMES:
        raise _problem(service, scheme_label,
                       f"scheme {scheme} is not proxied: nginx speaks http, https or h2c to "
                       "services; set one of them; this router is not routed")  # fmt: skip
    return Upstream(_port(service, port_label, service.labels.get(port_label, "")), scheme)


def _server_url(
    service: ServiceInfo, wanted: str, label: str, allowed: tuple[ServerUrlPrefix, ...]
) -> Upstream:
    """Traefik's server.url: proxied to when CERTBOTLESS_TRAEFIK_SERVER_URLS allows it."""
    text = service.labels[label].strip()
    for key in ("port", "scheme"):  # Traefik's provider refuses the service: no router
        beside = spelled(service, f"{SERVICES}{wanted}.loadbalancer.server.{key}")
        if beside in service.labels:
            raise _problem(service, beside, f"server.{key} beside server.url: Traefik refuses "
                           "the service (the URL says both); keep one; this router is not "
                           "routed")  # fmt: skip
    parts = url_parts(text, SERVER_URL_SCHEMES)
    host, _, port = (parts.netloc if parts else "").rpartition(":")
    if not port.isdigit() or host.endswith(":"):
        host = parts.netloc if parts else ""
    if parts is None or parts.query or parts.fragment or not _HOST_RE.fullmatch(host):
        raise _problem(service, label, "must be a URL SCHEME://HOST[:PORT][/PATH] (scheme "
                       "http, https or h2c; no user, query or fragment); this router is not "
                       "routed")  # fmt: skip
    if not any(prefix.allows(parts) for prefix in allowed):
        raise _problem(service, label,
                       f"the edge proxies to a server URL only where {SERVER_URLS} allows it "
                       f"({'none is allowed' if not allowed else 'this one is not'}: in a "
                       "shared swarm any service's labels could otherwise send the edge's "
                       "requests to any address it reaches); add its prefix there, or set "
                       f"{SERVICES}{wanted}.loadbalancer.server.port to route to this "
                       "service's own tasks; this router is not routed")  # fmt: skip
    preserve_label = spelled(service, f"{SERVICES}{wanted}.loadbalancer.server.preservepath")
    preserve = service.labels.get(preserve_label, "false").strip().lower()
    if preserve not in ("true", "false"):
        raise _problem(service, preserve_label, "preservePath must be true or false")
    base = parts.path if preserve == "true" else ""  # Traefik drops the path otherwise
    if not _BASE_PATH_RE.fullmatch(base):
        raise _problem(service, label, "with preservePath, the URL's path must be segments of "
                       "letters, digits and . _ ~ - (no escapes, no . or .. segment); this "
                       "router is not routed")  # fmt: skip
    port_number = parts.port or _DEFAULT_PORTS[parts.scheme]
    return Upstream(port_number, parts.scheme, parts.netloc, base, preserve_label)


def with_server_path(service: ServiceInfo, route: Route, upstream: Upstream) -> Route:
    """The route with its server URL's path before the request's (Traefik's preservePath,
    after every middleware: JoinURLPath, one `/` between them), as a prefix added last."""
    prefix = upstream.base_path.rstrip("/")
    if not prefix:
        return route
    if route.replace_path is not None or route.rewrite_phase.strip_prefix_regex is not None:
        raise _problem(service, upstream.base_label, "preservePath beside a replacePath, "
                       "replacePathRegex or stripPrefixRegex middleware is not supported: put "
                       "the URL's path in the middleware's path instead; this router is not "
                       "routed")  # fmt: skip
    if route.upstream_scheme == "h2c":
        raise _problem(service, upstream.base_label, "preservePath with an h2c URL is not "
                       "supported: nginx speaks h2c with grpc_pass, which cannot send the "
                       "request target with the client's escapes kept as Traefik does; drop "
                       "the URL's path, or use http; this router is not routed")  # fmt: skip
    return replace(route, add_prefix=prefix + route.add_prefix)


def _which_service(router: RouterService, defined: dict[str, tuple[str, str]]) -> str:
    if not defined:
        return (f"router {router.router} has no service with a port; Swarm tells no ports, so "
                "set traefik.http.services.<name>.loadbalancer.server.port")  # fmt: skip
    return (f"router {router.router} does not say which of {', '.join(sorted(defined))} it "
            f"serves; set traefik.http.routers.{router.router}.service")  # fmt: skip


def defined_services(service: ServiceInfo) -> dict[str, tuple[str, str]]:
    """Traefik services defined on this service: name → (its port label, its scheme label)."""
    defined: dict[str, tuple[str, str]] = {}
    for label in service.labels:
        if label.lower().startswith(SERVICES):
            name = label[len(SERVICES) :].partition(".")[0]
            defined[name] = (
                spelled(service, f"{SERVICES}{name}.loadbalancer.server.port"),
                spelled(service, f"{SERVICES}{name}.loadbalancer.server.scheme"),
            )
    return defined


def spelled(service: ServiceInfo, label: str) -> str:
    """The label as the service spells it (Traefik reads its labels case-insensitively)."""
    return next((lbl for lbl in service.labels if lbl.lower() == label.lower()), label)


def _port(service: ServiceInfo, label: str, text: str) -> int:
    text = text.strip()
    if not _PORT_RE.match(text) or not 1 <= int(text) <= 65535:
        raise _problem(service, label, "must be a port number from 1 to 65535")
    return int(text)
