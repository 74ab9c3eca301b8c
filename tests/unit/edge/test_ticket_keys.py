"""TLS session ticket keys every edge task shares (Swarm secrets certbotless makes, one a day,
and rotates): a session a client began on one nginx resumes on another with the same keys, and
gc keeps the two in use. The real-nginx checks use the rendered configuration; its keys are
the stand-in every `nginx -t` scratch tree holds, the same file for both instances."""

from __future__ import annotations

import socket
import ssl
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import cast

from certbotless.edge.render import render_nginx_conf
from certbotless.model import ObjectKind, ObjectRole, Route, StoredObject
from certbotless.swarm.api import Swarm
from certbotless.swarm.store import CertStore, plan_garbage
from tests.support.edge_nginx import HOST, serve_routes, stop
from tests.support.factories import CERTS_DIR, RESPONDER, certs_for
from tests.support.fakes import SecretsSwarm

TODAY = date(2026, 12, 6)
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def test_a_key_a_day_and_the_previous_one_are_mounted() -> None:
    swarm = SecretsSwarm(80)
    store = CertStore(cast(Swarm, swarm))
    first = store.ensure_ticket_keys(TODAY)
    assert [name for name, _ in first] == ["cbl-tls-ticket-key-20261206"]
    assert store.ensure_ticket_keys(TODAY) == first  # made once
    later = store.ensure_ticket_keys(TODAY + timedelta(days=2))
    assert [name for name, _ in later] == ["cbl-tls-ticket-key-20261208",
                                           "cbl-tls-ticket-key-20261206"]  # fmt: skip


def test_gc_keeps_the_two_newest_keys_and_any_referenced() -> None:
    keys = [StoredObject(ObjectKind.SECRET, f"k{day}", f"cbl-tls-ticket-key-202612{day:02}",
                         f"2026-12-{day:02}T00:00:00Z", ObjectRole.TICKET_KEY)
            for day in range(1, 6)]  # fmt: skip
    removals = plan_garbage([], keys, {"k1"}, set(), NOW, 3, timedelta(0))
    assert {r.target.object_id for r in removals} == {"k2", "k3"}


def test_tickets_are_on_with_keys_and_off_without() -> None:
    route = [Route("app", (HOST,), 80)]
    with_keys = render_nginx_conf(route, certs_for(HOST), RESPONDER, CERTS_DIR, ticket_keys=2)
    conf = next(iter(with_keys.values()))
    assert "ssl_session_tickets on;" in conf
    assert conf.count("ssl_session_ticket_key /etc/nginx/certbotless/tls-tickets/") == 2
    without = next(iter(render_nginx_conf(route, certs_for(HOST), RESPONDER, CERTS_DIR).values()))
    assert "ssl_session_tickets off;" in without and "ssl_session_ticket_key" not in without


def _handshake(port: int, context: ssl.SSLContext, session: ssl.SSLSession | None) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    tls = context.wrap_socket(raw, server_hostname=HOST, session=session)
    tls.sendall(f"GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
    while tls.recv(65536):  # TLS 1.3 sends its tickets after the handshake: read them all
        pass
    return tls


def _resumes_on_the_other(ticket_keys: int, tmp_path: Path) -> bool:
    routes = [Route("127.0.0.1", (HOST,), 9, redirect_to_https=False)]
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    first, _, first_tls = serve_routes(routes, tmp_path / "a", certs=certs_for(HOST),
                                       ticket_keys=ticket_keys)  # fmt: skip
    second, _, second_tls = serve_routes(routes, tmp_path / "b", certs=certs_for(HOST),
                                         ticket_keys=ticket_keys)  # fmt: skip
    try:
        session = _handshake(first_tls, context, None).session
        return bool(_handshake(second_tls, context, session).session_reused)
    finally:
        stop(first)
        stop(second)


def test_a_session_resumes_on_another_task_sharing_the_keys(tmp_path: Path) -> None:
    assert _resumes_on_the_other(2, tmp_path / "shared")
    assert not _resumes_on_the_other(0, tmp_path / "apart")  # each task's own session cache
