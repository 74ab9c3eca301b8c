"""Traefik labels served by a real nginx on loopback (tests/support/edge_nginx.py)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from certbotless.labels.traefik.labels import traefik_claims
from certbotless.model import ServiceInfo
from tests.support.edge_nginx import HOST, Served, ServeEdge, serve_routes, stop
from tests.support.factories import certs_for


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[ServeEdge]:
    started: list[subprocess.Popen[bytes]] = []

    def start(labels: Mapping[str, str], service: str = "127.0.0.1", resolver: str = "") -> Served:
        claims = traefik_claims([ServiceInfo(service, dict(labels))])[service]
        assert claims.problems == (), claims.problems
        nginx, port, tls_port = serve_routes(claims.routes, tmp_path / str(len(started)),
                                             certs=certs_for(HOST), resolver=resolver)  # fmt: skip
        started.append(nginx)
        return Served(port, tls_port)

    yield start
    for nginx in started:
        stop(nginx)
