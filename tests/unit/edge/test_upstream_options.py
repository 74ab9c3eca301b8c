"""A route's upstream options (upstream_options, edge/upstreams.py, shaping.py) on a real nginx:
an answer streamed on at once with responseForwarding.flushInterval, IPv6 clients counted per
network (ipv6Subnet) however their address's bytes look (NUL, newline), and what nginx before
1.27.3 cannot do (p2c, sticky cookies) said rather than rendered. The sticky cookie and p2c on
two tasks are Traefik's own cases (tests/traefik_cases/middlewares_label_test.json)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from certbotless.edge.render import render_nginx_conf
from certbotless.edge.shaping import answer_pages
from certbotless.edge.upstreams import upstream_files, without_unpooled_options
from certbotless.model import RateLimit, Route
from certbotless.upstream_options import StickyCookie, Strategy, UpstreamOptions
from tests.support.edge_nginx import HOST, LOCAL_NGINX, echo_upstream, serve_routes, serving, stop
from tests.support.factories import CERTS_DIR, RESPONDER
from tests.support.traefik_cases import proxy_header

LOOPBACK = "127.0.0.1"
PAUSE = 1.5  # seconds between the two parts of a streamed answer


class Streaming(BaseHTTPRequestHandler):
    """Answers `first` at once, `second` PAUSE seconds later (chunked, one chunk each)."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for part, pause in ((b"first", PAUSE), (b"second", 0.0)):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.flush()
            time.sleep(pause)
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def streaming() -> Iterator[int]:
    with serving(Streaming, LOOPBACK) as port:
        yield port


def _seconds_to_first_part(port: int) -> float:
    started = time.monotonic()
    with socket.create_connection((LOOPBACK, port), timeout=10) as sock:
        sock.sendall(f"GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        received = b""
        while b"first" not in received:
            chunk = sock.recv(4096)
            assert chunk, received
            received += chunk
    return time.monotonic() - started


def test_flush_interval_passes_the_answer_on_as_it_comes(streaming: int, tmp_path: Path) -> None:
    route = Route(LOOPBACK, (HOST,), streaming, redirect_to_https=False,
                  upstream=UpstreamOptions(flush_at_once=True))  # fmt: skip
    nginx, port, _ = serve_routes([route], tmp_path / "edge")
    try:
        took = _seconds_to_first_part(port)
        main = (tmp_path / "edge").rglob("*.conf")
        assert any("proxy_buffering off;" in path.read_text() for path in main)
    finally:
        stop(nginx)
    assert took < PAUSE / 2, took  # the first part before the second is written


def _status_from(port: int, remote: str) -> int:
    with socket.create_connection((LOOPBACK, port), timeout=5) as sock:
        sock.sendall(proxy_header(remote) + f"GET / HTTP/1.1\r\nHost: {HOST}\r\n"
                     "Connection: close\r\n\r\n".encode())  # fmt: skip
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    return int(answer.split(b" ", 2)[1])


@pytest.mark.parametrize(
    ("first", "same_network", "other_network"),
    [
        ("::1", "::2", "0:0:0:1::1"),  # ::1's /64: 8 NUL bytes
        ("a0a:a0a:a0a:a0a::1", "a0a:a0a:a0a:a0a:ffff::2", "a0a:a0a:a0a:a0b::1"),  # newlines
        ("2001:db8::1", "2001:db8::ffff:1", "2001:db8:0:1::1"),
    ],
)
def test_ipv6_clients_are_counted_per_network(
    tmp_path: Path, first: str, same_network: str, other_network: str
) -> None:
    with echo_upstream() as upstream:
        route = Route(LOOPBACK, (HOST,), upstream, redirect_to_https=False,
                      rate_limit=RateLimit(per_minute=1, burst=0, key="subnet:64"))  # fmt: skip
        nginx, port, _ = serve_routes([route], tmp_path / "edge", front_subnets=(f"{LOOPBACK}/32",))
        try:
            statuses = [_status_from(port, remote) for remote in (first, same_network,
                                                                  other_network)]  # fmt: skip
            ipv4 = [_status_from(port, remote) for remote in ("192.0.2.1", "192.0.2.2")]
        finally:
            stop(nginx)
    assert statuses == [200, 429, 200]
    assert ipv4 == [200, 200]  # per address


def test_the_subnet_map_takes_whole_bytes() -> None:
    route = Route("web", (HOST,), 80, rate_limit=RateLimit(per_minute=1, key="subnet:48"))
    main = render_nginx_conf([route], {}, RESPONDER, CERTS_DIR)["/etc/nginx/nginx.conf"]
    assert "map $binary_remote_addr $certbotless_ipv6_48 {" in main
    assert '"~(?s)^(?<certbotless_ipv6_48_net>.{6}).{10}$" $certbotless_ipv6_48_net;' in main
    assert "limit_req_zone $certbotless_ipv6_48 " in main


def test_balancing_upstreams_take_the_tasks_one_by_one() -> None:
    sticky = StickyCookie("lb", domain="a.test", same_site="Lax", max_age=-1, secure=True)
    p2c = Route(
        "web", (HOST,), 80, upstream=UpstreamOptions(strategy=Strategy.POWER_OF_TWO_CHOICES)
    )
    plain = Route("web", (HOST,), 81)
    text = "".join(upstream_files([
        p2c, replace(p2c, upstream=UpstreamOptions(sticky=sticky)), plain,
    ]).values())  # fmt: skip
    assert text.count("server tasks.web:80 resolve;") == 2
    assert "server web:81 resolve;" in text  # in turn: the service's own name
    assert "random two least_conn;" in text
    assert "    hash $certbotless_sticky_key_" in text
    assert (
        '"lb=$certbotless_sticky_fresh; Path=/; Domain=a.test; Max-Age=0; Secure; SameSite=Lax"'
        in text
    )


def test_nginx_before_1_27_3_balances_in_turn_and_says_so() -> None:
    sticky = Route("web", (HOST,), 80, upstream=UpstreamOptions(sticky=StickyCookie("lb")))
    plain = Route("api", (HOST,), 80, path="/api")
    routes, problems = without_unpooled_options([sticky, plain], (1, 22, 1))
    assert [route.upstream.balances for route in routes] == [False, False]
    assert [(p.service, p.label) for p in problems] == [
        ("web", "traefik.http.services.*.loadbalancer.sticky.cookie")
    ]
    assert "nginx 1.27.3 or later" in problems[0].message
    files = render_nginx_conf([sticky], {}, RESPONDER, CERTS_DIR, nginx_version=(1, 22, 1))
    assert "sticky" not in "".join(files.values())  # nothing left that needs the upstreams
    assert without_unpooled_options([sticky], (1, 30, 0)) == ([sticky], ())


def test_the_answers_memory_is_whole_pages_from_nginxs_floor(tmp_path: Path) -> None:
    assert [answer_pages(n) for n in (10, 16384, 16385, 1048576)] == [4, 4, 5, 256]
    with echo_upstream() as upstream:
        route = Route(LOOPBACK, (HOST,), upstream, redirect_to_https=False,
                      upstream=UpstreamOptions(answer_memory=10))  # fmt: skip
        nginx, _, _ = serve_routes([route], tmp_path / "edge", binary=LOCAL_NGINX)  # nginx -t
        stop(nginx)
