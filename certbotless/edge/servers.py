"""A host's server blocks: port 80 (challenges, redirects to HTTPS or plain routes) and 443
with its certificate and HSTS, the default servers for unknown names, and the listen options
(HTTP/2, the L4 front's PROXY protocol) every server shares."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from certbotless.edge.certificates import certificate_directives
from certbotless.edge.client_certs import client_auth_directives, host_client_auth
from certbotless.edge.locations import challenge_location, route_locations, to_https_location
from certbotless.edge.mounts import CertFiles
from certbotless.edge.shaping import HSTS_VALUE
from certbotless.model import Route, StoredCert, host_form


@dataclass(frozen=True)
class Server:
    """One server block: its listen directive, its names, the directives before the locations,
    and the locations; `maps`: the http-level maps its routing reads, written before it."""

    port: int
    listen: str
    names: tuple[str, ...]
    directives: str = ""
    locations: list[str] = field(default_factory=list)
    maps: str = ""

    def text(self, body: str | None = None) -> str:
        """The block; `body` in place of the locations (includes of them elsewhere)."""
        inside = "\n".join(self.locations) if body is None else body
        names = "\n                    ".join(host_form(name) for name in self.names)
        return f"""{self.maps}
    server {{
        {self.listen};
        server_name {names};{self.directives}
{inside}
    }}"""


def certificate_per_host(certs: Mapping[str, StoredCert], hosts: Iterable[str]) -> dict[str, str]:
    """Each host's certificate name: the one naming it, else a wildcard one covering it (one
    label more), until the host has its own."""
    named = {host: cert.name for cert in certs.values() for host in cert.domains}
    for host in hosts:
        wildcard = "*." + host.partition(".")[2]
        if host not in named and wildcard in named and not host.startswith("*"):
            named[host] = named[wildcard]
    return named


def listen_directives(http2_directive: bool, front_subnets: Sequence[str]) -> tuple[str, str]:
    """The listen directives of port 80 and 443. One form on every 443 listen, the default
    server's included: listen options are per address, so servers sharing 443 must agree."""
    proxy_protocol = " proxy_protocol" if front_subnets else ""
    listen_80 = f"listen 80{proxy_protocol}"
    listen_443 = ("listen 443 ssl" if http2_directive else "listen 443 ssl http2") + proxy_protocol
    return listen_80, listen_443


def real_ip(front_subnets: Sequence[str]) -> str:
    """With an L4 front, the client's address read from the PROXY protocol header."""
    if not front_subnets:
        return ""
    trusted = "".join(f"\n    set_real_ip_from {subnet};" for subnet in front_subnets)
    return f"""
    # Behind the L4 front: the client's address is the one in its PROXY protocol header, and a
    # header from anywhere else changes nothing.{trusted}
    real_ip_header proxy_protocol;
"""


def default_servers(
    responder_upstream: str,
    listen_80: str,
    listen_443: str,
    reject_unknown: bool,
    every_host: list[Route],
    pooled: bool = False,
    first_use: CertFiles | None = None,
    health_checks: str = "",
) -> str:
    """Unknown names: challenges still reach the sidecar; /healthz answers load balancers that
    check each edge node by address; Traefik routers without a Host (`every_host`) are served
    on port 80, and nothing else is; TLS handshakes are refused, unless an IP address has a
    certificate: its clients send no name, so its server is the default one instead.
    `first_use`: the files of certificates read on first use, which the default server's
    handshake serves for every host (edge/certificates.py). `health_checks`: the location that
    runs the services' health checks (edge/health_checks.py), if any."""
    certificate = "" if first_use is None else "\n        " + certificate_directives(first_use)
    reject = f"""

    server {{
        {listen_443} default_server;
        server_name _;
        ssl_reject_handshake on;{certificate}
    }}"""
    maps, locations = "", ["\n        location / {\n            return 404;\n        }"]
    if every_host:
        maps, locations = route_locations("default:80", every_host, plain_http=True,
                                          has_cert=False, pooled=pooled)  # fmt: skip
    return f"""{maps}
    server {{
        {listen_80} default_server;
        server_name _;
{challenge_location(responder_upstream)}
        location = /healthz {{
            access_log off;
            default_type text/plain;
            return 200 "ok\\n";
        }}{health_checks}{"".join(locations)}
    }}{reject if reject_unknown else ""}"""


def http_server(
    host: str,
    routes: list[Route],
    responder_upstream: str,
    listen_80: str,
    has_cert: bool,
    pooled: bool = False,
) -> Server:
    """Port 80, decided per route: redirect=false routes are proxied, every other one is sent to
    HTTPS (or, before the certificate exists, refused) so it is never served in clear."""
    redirects = {(r.redirect_statuses, r.redirect_port) for r in routes if r.redirect_to_https}
    if has_cert and all(route.redirect_to_https for route in routes) and len(redirects) == 1:
        body = [to_https_location("/", *redirects.pop())]
        maps = ""
    else:
        maps, body = route_locations(host, routes, plain_http=True, has_cert=has_cert,
                                     pooled=pooled)  # fmt: skip
    return Server(80, listen_80, (host,), "", [challenge_location(responder_upstream), *body], maps)


def https_server(
    host: str,
    routes: list[Route],
    files: CertFiles,
    listen_443: str,
    default: bool = False,
    pooled: bool = False,
    first_use: CertFiles | None = None,
) -> Server:
    """Port 443. `first_use`: certificates are read on first use through the default server's
    handshake (edge/certificates.py), so this one names its own only if it is the default
    server or asks for client certificates (whose CA and verification are its own context's);
    else `files`."""
    # Never HSTS on a host that also serves a plain route: browsers would refuse that route
    # (discovery reports the pair as a label problem).
    hsts = any(route.hsts for route in routes) and all(r.redirect_to_https for r in routes)
    hsts_header = (
        f'\n        add_header Strict-Transport-Security "{HSTS_VALUE}" always;' if hsts else ""
    )
    maps, locations = route_locations(host, routes, plain_http=False, has_cert=True,
                                      hsts=hsts, pooled=pooled)  # fmt: skip
    client_auth = client_auth_directives(host_client_auth(routes), default)
    certificate = "\n        " + certificate_directives(files if first_use is None else first_use)
    if first_use is not None and not (default or client_auth):
        certificate = ""
    return Server(
        443,
        listen_443 + (" default_server" if default else ""),
        (host,),
        certificate + hsts_header + client_auth,
        locations,
        maps,
    )
