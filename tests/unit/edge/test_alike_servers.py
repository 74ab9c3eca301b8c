"""Port-80 servers alike but for their names (the redirect to HTTPS and the challenges, most
hosts' only port-80 server) are one server block naming them all in each hosts file: nginx holds
every module's configuration for each block and location, so 1,000 hosts' redirects took 44 MiB
of the edge's 92 (`bash scripts/bench datapath --only-hosts`). A real nginx still redirects each
host, and a host whose port 80 is its own (a plain route) is served as before."""

from __future__ import annotations

import hashlib
from pathlib import Path

from certbotless.edge.render import render_nginx_conf
from certbotless.model import Route
from tests.support.edge_nginx import Echo, echo_upstream, request, serve_routes, stop
from tests.support.factories import CERTS_DIR, RESPONDER, certs_for


def _one_group(count: int) -> list[str]:
    """`count` hosts whose names hash to the same hosts file."""
    found: dict[str, list[str]] = {}
    index = 0
    while True:
        host = f"h{index}.alike.test"
        group = found.setdefault(hashlib.sha256(host.encode()).hexdigest()[:2], [])
        group.append(host)
        if len(group) == count:
            return group
        index += 1


HOSTS = _one_group(4)
PLAIN = HOSTS.pop()  # in the same file, with a route served on port 80


def _routes(upstream: int) -> list[Route]:
    return [
        *(Route("127.0.0.1", (host,), upstream) for host in HOSTS),
        Route("127.0.0.1", (PLAIN,), upstream, redirect_to_https=False),
    ]


def test_redirect_only_hosts_share_one_port_80_block() -> None:
    files = render_nginx_conf(_routes(9), certs_for(*HOSTS, PLAIN), RESPONDER, CERTS_DIR)
    (text,) = (text for target, text in files.items() if "/hosts/" in target)
    blocks = text.split("\n    server {")[1:]
    assert len(blocks) == 6  # one port-80 block for the three, PLAIN's own, four on 443
    shared = [block for block in blocks if all(host in block for host in HOSTS)]
    assert len(shared) == 1 and "listen 80" in shared[0] and PLAIN not in shared[0]


def test_each_host_of_a_shared_block_is_redirected_and_a_plain_one_proxied(tmp_path: Path) -> None:
    with echo_upstream() as upstream:
        nginx, port, _ = serve_routes(_routes(upstream), tmp_path / "edge",
                                      certs=certs_for(*HOSTS, PLAIN))  # fmt: skip
        try:
            for host in HOSTS:
                status, _, headers = request(port, "/a?b=1", host=host)
                assert (status, headers["Location"]) == (308, f"https://{host}/a?b=1"), host
            status, body, _ = request(port, "/a", host=PLAIN)
            assert (status, body, Echo.seen[-1][1]["host"]) == (200, "/a -", PLAIN)
            status, _, _ = request(port, "/a", host="unknown.alike.test")
            assert status == 404  # the default server's
        finally:
            stop(nginx)
