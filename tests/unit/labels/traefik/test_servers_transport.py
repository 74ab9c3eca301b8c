"""Traefik's serversTransport (labels/traefik/servers_transport.py), asked of a real nginx on
loopback: an https service (an echo server whose certificate the throwaway CA signed, for
127.0.0.1) reached as `http.serversTransports.<name>` of the dynamic configuration says
(rootCAs, insecureSkipVerify, serverName, else the image's CAs, which do not know that CA: 502,
as Go's failed handshake), a name Traefik does not find (404: its service fails to build), and
the options nginx cannot honour refused by name."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.support.edge_nginx import echo_servers
from tests.support.traefik_cases import Verdict
from tests.support.traefik_middleware_cases import middleware_case_outcome

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None, reason="needs nginx")
SERVICE = "traefik.http.services.s.loadbalancer."
TLS_ECHO = {f"{SERVICE}server.url": "https://127.0.0.1:{echo_tls}"}
TRUSTED = {"rootCAs": ["{client_ca}"]}


@pytest.fixture(scope="module")
def ports() -> Iterator[list[int]]:
    with echo_servers(1) as found:
        yield found


def _outcome(ports: list[int], scratch: Path, transport: Mapping[str, Any] | None,
             status: int, name: str = "t@file", labels: Mapping[str, str] = TLS_ECHO,
             ) -> tuple[Verdict, str]:  # fmt: skip
    case: dict[str, Any] = {
        "id": "serversTransport",
        "labels": {**labels, f"{SERVICE}serversTransport": name},
        "requests": [{"method": "GET", "url": "http://a.test/", "expect": {"status": status}}],
    }
    if transport is not None:
        case["dynamic"] = {"http": {"serversTransports": {"t": transport}}}
    found = middleware_case_outcome(case, "middlewares", "transport", ports, scratch / "case")
    return found.verdict, found.detail


@pytest.mark.parametrize(("transport", "status"), [
    (TRUSTED, 200),
    ({"insecureSkipVerify": True}, 200),
    ({}, 502),  # Go's default roots: the throwaway CA is not among them
    ({**TRUSTED, "serverName": "other.test"}, 502),  # the certificate names 127.0.0.1
    ({**TRUSTED, "disableHTTP2": True}, 200),  # nginx speaks HTTP/1.1 to services anyway
])  # fmt: skip
def test_an_https_service_is_verified_as_the_transport_says(
    ports: list[int], tmp_path: Path, transport: Mapping[str, Any], status: int
) -> None:
    assert _outcome(ports, tmp_path, transport, status) == (Verdict.BEHAVES, "")


def test_the_forwarding_timeouts_apply_to_a_plain_service(ports: list[int], tmp_path: Path) -> None:
    timeouts = {"forwardingTimeouts": {"dialTimeout": "2s", "responseHeaderTimeout": 30}}
    port = {f"{SERVICE}server.port": "{echo}"}
    assert _outcome(ports, tmp_path, timeouts, 200, labels=port) == (Verdict.BEHAVES, "")


@pytest.mark.parametrize("name", ["t", "t@swarm", "other@file"])
def test_a_transport_traefik_does_not_find_is_a_404(
    ports: list[int], tmp_path: Path, name: str
) -> None:
    verdict, said = _outcome(ports, tmp_path, TRUSTED, 404, name=name)
    assert verdict == Verdict.REFUSED
    assert "servers transport not found" in said or "no provider defines" in said


@pytest.mark.parametrize("option", ["spiffe", "peerCertURI", "certificates", "minVersion"])
def test_what_nginx_cannot_honour_is_refused_by_name(
    ports: list[int], tmp_path: Path, option: str
) -> None:
    verdict, said = _outcome(ports, tmp_path, {**TRUSTED, option: "x"}, 200)
    assert verdict == Verdict.REFUSED
    assert f"{option.lower()}:" in said and "this router is not routed" in said


def test_options_about_idle_connections_are_said_and_the_rest_applied(
    ports: list[int], tmp_path: Path
) -> None:
    transport = {**TRUSTED, "maxIdleConnsPerHost": 4}
    verdict, said = _outcome(ports, tmp_path, transport, 200)
    assert verdict == Verdict.REFUSED  # said: not applied
    assert "maxidleconnsperhost" in said and "the rest of the transport" in said
