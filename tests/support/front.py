"""The front (haproxy/haproxy.cfg) run by a real HAProxy on loopback, with a real nginx behind
it (PROXY protocol, as on the swarm) and the sidecar's TLS-ALPN-01 responder: only the file's
addresses change, its frontends and rules are as shipped."""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from certbotless.acme.alpn_responder import AlpnResponder
from certbotless.acme.challenges import TokenStore
from certbotless.acme.tls_alpn01 import ACME_IDENTIFIER
from certbotless.model import Route
from tests.support.edge_nginx import HOST, answer_tls, echo_upstream, serve_routes, stop
from tests.support.factories import certs_for
from tests.support.paths import REPO
from tests.support.ports import unused_ports

FRONT_CONFIG = REPO / "haproxy" / "haproxy.cfg"


@dataclass(frozen=True)
class Front:
    https_port: int  # the front's port 443
    tokens: TokenStore  # what the sidecar's responders serve


def on_loopback(config: str, ports: dict[str, int]) -> str:
    """haproxy.cfg with loopback addresses for Swarm's: its listeners, nginx's task (one), the
    sidecar's responder, and nginx's check port."""
    replaced = {
        "bind :8080": f"bind 127.0.0.1:{ports['front_http']}",
        "bind :8443": f"bind 127.0.0.1:{ports['front_https']}",
        "init-addr none resolvers docker": "init-addr libc",
        "check port 80 ": f"check port {ports['nginx_http']} ",
        # The check of port 443 (only a rendered configuration listens there), then the rest.
        "tasks.nginx:80 port 443": f"127.0.0.1:{ports['nginx_http']} port {ports['nginx_https']}",
        "tasks.nginx:443 port 443": f"127.0.0.1:{ports['nginx_https']} port {ports['nginx_https']}",
        "tasks.nginx:80": f"127.0.0.1:{ports['nginx_http']}",
        "tasks.certbotless:8404": f"127.0.0.1:{ports['responder']}",
        "server-template nginx 16": "server-template nginx 1",
    }
    for swarm, loopback in replaced.items():
        assert swarm in config, f"haproxy.cfg no longer has {swarm!r}"
        config = config.replace(swarm, loopback)
    return config


@contextmanager
def front_on_loopback(scratch: Path, https_port: int | None = None) -> Iterator[Front]:
    """The front (on `https_port`, else a free one), nginx serving HOST behind it, and the
    responder; once nginx answers through the front."""
    tokens = TokenStore(scratch / "challenges")
    responder = AlpnResponder(tokens.alpn, "127.0.0.1", 0)
    responder.start()
    with echo_upstream() as echo:
        routes = [Route("127.0.0.1", (HOST,), echo)]
        nginx, http, https = serve_routes(routes, scratch / "nginx", certs=certs_for(HOST),
                                          front_subnets=("127.0.0.0/8",))  # fmt: skip
        front_http, front_https = unused_ports(2)
        ports = {"front_http": front_http, "front_https": https_port or front_https,
                 "nginx_http": http, "nginx_https": https, "responder": responder.port}  # fmt: skip
        config = scratch / "haproxy.cfg"
        config.write_text(on_loopback(FRONT_CONFIG.read_text(), ports))
        haproxy = subprocess.Popen(
            ["haproxy", "-db", "-f", str(config)],
            stdout=(scratch / "haproxy.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_until_nginx_is_up_behind(ports["front_https"])
            yield Front(ports["front_https"], tokens)
        finally:
            haproxy.terminate()
            haproxy.wait(timeout=10)
            stop(nginx)
            responder.stop()


def _wait_until_nginx_is_up_behind(port: int) -> None:
    """Until the front's health check has found nginx (one success puts it in)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            if answer_tls(port)[0] == 200:
                return
        except (OSError, ssl.SSLError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError("nginx never answered through the front")
        time.sleep(0.1)


def handshake(port: int, alpn: list[str]) -> tuple[str | None, x509.Certificate]:
    """The protocol agreed and the certificate shown to a client asking for HOST."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    context.set_alpn_protocols(alpn)
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    with context.wrap_socket(raw, server_hostname=HOST) as tls:
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return tls.selected_alpn_protocol(), x509.load_der_x509_certificate(der)


def has_acme_identifier(certificate: x509.Certificate) -> bool:
    try:
        certificate.extensions.get_extension_for_oid(ACME_IDENTIFIER)
    except x509.ExtensionNotFound:
        return False
    return True
