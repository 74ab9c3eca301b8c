"""The data-path bench runs haproxy/haproxy.cfg itself, with loopback addresses put in by
patterns that must each match as often as expected: a change to the front's file that the bench
would no longer substitute fails here, not in the next bench run."""

from __future__ import annotations

import re

from bench.datapath_proxies import Edge


def test_the_bench_puts_loopback_addresses_into_the_front_configuration() -> None:
    edge = Edge.__new__(Edge)  # the substitution reads only the ports
    edge.http_port, edge.nginx_tls_port = 1080, 1443
    text = edge.haproxy_cfg(2080, 2443, "127.0.0.1:5353")
    servers = re.findall(r"server-template nginx 16 (.*)", text)
    assert servers == [
        "tasks.nginx:1080",
        "tasks.nginx:1080 port 1443",
        "tasks.nginx:1443 port 1443",
    ]
    assert "bind 127.0.0.1:2080" in text and "bind 127.0.0.1:2443" in text
    assert "nameserver swarm 127.0.0.1:5353" in text and "check port 1080" in text
    assert not re.search(r"^\s*bind :", text, re.MULTILINE)
