"""Traefik's per-request matchers (ClientIP, Query, QueryRegexp, HeaderRegexp, and negated
Method, Header and those) as Traefik answers them, by a real nginx running the rendered
configuration on loopback behind a PROXY-protocol front: a request that fails a condition gets
404, as from Traefik when no router matches."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import pytest

from certbotless.labels.settle import discover
from certbotless.labels.traefik.labels import traefik_claims
from certbotless.model import LabelProblem, ServiceInfo
from tests.support.edge_nginx import HOST, echo_upstream, serve_routes, stop
from tests.support.traefik_cases import FRONT, send

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None, reason="needs nginx")
R = "traefik.http.routers."
Ask = Callable[..., str]  # (target, method=, headers=, remote=) → the router, or the status
Serve = Callable[..., tuple[Ask, tuple[LabelProblem, ...]]]  # (rule, syntax="v3")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """One router with `rule` (in `syntax`) on HOST behind the front; returns how to ask it,
    and the label problems."""
    started: list[subprocess.Popen[bytes]] = []
    echoes = ExitStack()

    def start(rule: str, syntax: str = "v3") -> tuple[Ask, tuple[LabelProblem, ...]]:
        port = echoes.enter_context(echo_upstream())
        labels = {"traefik.enable": "true", f"{R}r.rule": rule, f"{R}r.entrypoints": "web",
                  f"{R}r.ruleSyntax": syntax,
                  "traefik.http.services.r.loadbalancer.server.port": str(port)}  # fmt: skip
        claims = traefik_claims([ServiceInfo("r", labels)])
        routes = [replace(r, service="127.0.0.1") for c in claims.values() for r in c.routes]
        problems = tuple(p for found in claims.values() for p in found.problems)
        nginx, nginx_port, _ = serve_routes(
            routes, tmp_path / str(len(started)), front_subnets=FRONT
        )
        started.append(nginx)

        def ask(
            target: str,
            method: str = "GET",
            headers: Sequence[tuple[str, str]] = (),
            remote: str = "192.0.2.1",
        ) -> str:
            sent = {"method": method, "url": f"http://{HOST}{target}",
                    "headers": list(headers), "remote": remote}  # fmt: skip
            status, echo = send(nginx_port, sent)
            return "r" if echo == port else str(status)

        return ask, problems

    with echoes:
        yield start
        for nginx in started:
            stop(nginx)


def test_client_ip_matches_the_clients_address_from_the_front(serve: Serve) -> None:
    ask, problems = serve(f"Host(`{HOST}`) && ClientIP(`10.0.0.0/16`)")
    assert problems == ()
    assert ask("/", remote="10.0.200.1") == "r"
    assert ask("/", remote="10.1.0.1") == "404"
    six, _ = serve(f"Host(`{HOST}`) && ClientIP(`2001:db8::1`)")
    assert (six("/", remote="2001:db8::1"), six("/", remote="2001:db8::2")) == ("r", "404")
    # Traefik's ClientIP reads the remote address, never X-Forwarded-For.
    assert ask("/", remote="192.0.2.1", headers=[("X-Forwarded-For", "10.0.0.1")]) == "404"


def test_client_ip_networks_as_traefik_writes_them(serve: Serve) -> None:
    """Traefik's own Test_addRoute cases (matcher_v2_test.go), with a host: a CIDR with host
    bits, several values in v2, IPv6."""
    ask, problems = serve(f"Host(`{HOST}`) && ClientIP(`11.0.0.0`, `10.0.1.1/16`, `10::/16`)", "v2")
    assert problems == ()
    ask_v3, _ = serve(f"Host(`{HOST}`) && ClientIP(`10.0.0.0`)")
    assert [ask("/", remote=a) for a in ("10.0.0.0", "11.0.0.0", "10::10", "11::1")] == [
        "r", "r", "r", "404",
    ]  # fmt: skip
    assert (ask_v3("/", remote="10.0.0.0"), ask_v3("/", remote="10.0.0.1")) == ("r", "404")


def test_a_negated_client_ip_serves_everyone_else(serve: Serve) -> None:
    ask, problems = serve(f"Host(`{HOST}`) && !ClientIP(`203.0.113.0/24`)")
    assert problems == ()
    assert (ask("/", remote="203.0.113.9"), ask("/", remote="198.51.100.1")) == ("404", "r")


def test_query_matches_any_value_of_the_key_decoded(serve: Serve) -> None:
    """Traefik's TestQueryMatcher requests, and encodings Go decodes."""
    ask, problems = serve(f"Host(`{HOST}`) && Query(`q`, `traefik`)")
    assert problems == ()
    routed = ["/?q=traefik", "/?rel=ddg&q=traefik", "/?q=traefik&q=proxy", "/?q=awesome&q=traefik",
              "/?q=%74raefik", "/?%71=traefik", "/x?q=tr%61efik"]  # fmt: skip
    not_routed = ["/", "/?q=nginx", "/?q=TRAEFIK", "/?qq=traefik", "/?q=traefik2", "/?q",
                  "/?q=traefik;x=1", "/?q=traefik%zz", "/?xq=traefik"]  # fmt: skip
    assert {t: ask(t) for t in routed} == dict.fromkeys(routed, "r")
    assert {t: ask(t) for t in not_routed} == dict.fromkeys(not_routed, "404")


def test_query_with_a_space_a_plus_and_no_value(serve: Serve) -> None:
    ask, _ = serve(f"Host(`{HOST}`) && Query(`a b`, `1+2 3`)")
    assert [ask(t) for t in ("/?a+b=1%2B2+3", "/?a%20b=1%2b2%203", "/?a+b=1+2+3")] == [
        "r", "r", "404",
    ]  # fmt: skip
    bare, _ = serve(f"Host(`{HOST}`) && Query(`mobile`)")
    assert [bare(t) for t in ("/?mobile", "/?x=1&mobile=", "/?mobile=true", "/")] == [
        "r", "r", "404", "404",
    ]  # fmt: skip


def test_query_regexp_as_traefik_reads_it(serve: Serve) -> None:
    """Traefik's TestQueryRegexpMatcher requests."""
    ask, problems = serve(f"Host(`{HOST}`) && QueryRegexp(`q`, `^(traefik|nginx)$`)")
    assert problems == ()
    assert [ask(t) for t in ("/?q=traefik", "/?q=awesome&q=nginx", "/?q=%6Eginx")] == ["r"] * 3
    assert [ask(t) for t in ("/", "/?q=TRAEFIK", "/?q=traefiknginx", "/?q")] == ["404"] * 4
    anything, _ = serve(f"Host(`{HOST}`) && QueryRegexp(`q`, `^.*$`)")
    assert [anything(t) for t in ("/?q", "/?q=", "/?q=TRAEFIK", "/?q=a%0Ab", "/?x=1")] == [
        "r", "r", "r", "404", "404",
    ]  # fmt: skip
    inside, _ = serve(f"Host(`{HOST}`) && QueryRegexp(`id`, `[0-9]{{3}}`)")
    assert [inside(t) for t in ("/?id=ab123c", "/?id=%31%322", "/?id=12a")] == ["r", "r", "404"]


def test_header_regexp_searches_each_line_as_traefik(serve: Serve) -> None:
    """Traefik's TestHeaderRegexpMatcher requests; anchors hold at each line of the header."""
    ask, problems = serve(f"Host(`{HOST}`) && HeaderRegexp(`X-Forwarded-Proto`, `^https?$`)")
    assert problems == ()
    proto = "X-Forwarded-Proto"
    assert [ask("/", headers=[(proto, v)]) for v in ("http", "https", "http, https")] == ["r"] * 3
    assert [ask("/", headers=[(proto, v)]) for v in ("ftp", "xhttp", "https2")] == ["404"] * 3
    assert ask("/") == "404"
    literal, _ = serve(f"Host(`{HOST}`) && HeaderRegexp(`X-Forwarded-Proto`, `http{{secure:s?}}`)")
    assert [literal("/", headers=[(proto, v)]) for v in ("http", "http{secure:}")] == ["404", "r"]


def test_header_regexp_with_characters_nginx_quotes(serve: Serve) -> None:
    ask, problems = serve(f'Host(`{HOST}`) && HeaderRegexp(`X-A`, `^a"b\\$c\\\\d;{{}}$`)')
    assert problems == ()
    assert ask("/", headers=[("X-A", 'a"b$c\\d;{}')]) == "r"
    assert ask("/", headers=[("X-A", 'a"b$c\\\\d;{}')]) == "404"


def test_header_regexp_reads_posix_classes_and_flags_as_go(serve: Serve) -> None:
    # The same Go regex subset as the middlewares' (go_regex.py): POSIX names, (?i:…), \s.
    ask, problems = serve(f"Host(`{HOST}`) && HeaderRegexp(`X-A`, `^[[:upper:]]+\\s(?i:b)$`)")
    assert problems == ()
    assert [ask("/", headers=[("X-A", v)]) for v in ("AB b", "AB\tB", "Ab b")] == ["r", "r", "404"]


def test_header_regexp_that_matches_an_empty_value_still_needs_the_header(serve: Serve) -> None:
    ask, _ = serve(f"Host(`{HOST}`) && HeaderRegexp(`X-A`, `.*`)")
    assert (ask("/", headers=[("X-A", "1")]), ask("/")) == ("r", "404")
    negated, _ = serve(f"Host(`{HOST}`) && !HeaderRegexp(`X-A`, `^b`)")
    assert [negated("/", headers=[("X-A", v)]) for v in ("a", "b", "a, b")] == ["r", "404", "404"]
    assert negated("/") == "r"


def test_negated_method_header_and_query(serve: Serve) -> None:
    ask, problems = serve(f"Host(`{HOST}`) && !Method(`POST`) && !Header(`X-Debug`, `1`) "
                          "&& !Query(`preview`)")  # fmt: skip
    assert problems == ()
    assert ask("/") == "r"
    assert ask("/", method="POST") == "404"
    assert ask("/", headers=[("X-Debug", "1")]) == "404"
    assert ask("/", headers=[("X-Debug", "2")]) == "r"
    assert (ask("/?preview"), ask("/?preview=1")) == ("404", "r")
    double, _ = serve(f"Host(`{HOST}`) && !(!Method(`GET`))")
    assert (double("/"), double("/", method="PUT")) == ("r", "404")


def test_a_router_with_conditions_inside_another_is_routed_beside_it() -> None:
    """Requests failing ClientIP go on to the host's other router, as in Traefik: both are
    routed (edge/dispatch.py tries them in Traefik's order)."""
    services = [
        ServiceInfo("inner", {"traefik.enable": "true",
                              f"{R}a.rule": f"Host(`{HOST}`) && PathPrefix(`/admin`) && "
                                            "ClientIP(`10.0.0.0/8`)",
                              "traefik.http.services.a.loadbalancer.server.port": "80",
                              "certbotless.share": "site"}),  # inner owns the host
        ServiceInfo("site", {"traefik.enable": "true", f"{R}b.rule": f"Host(`{HOST}`)",
                             "traefik.http.services.b.loadbalancer.server.port": "80"}),
    ]  # fmt: skip
    found = discover(services, native=False, foreign=traefik_claims(services))
    assert found.problems == ()
    assert sorted(route.service for route in found.routes) == ["inner", "site"]
