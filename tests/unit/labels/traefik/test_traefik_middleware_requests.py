"""Traefik middleware and service options where the edge once did something else than Traefik
without a word (issue 23), each answered by a real nginx on loopback as Traefik answers it:
HSTS as the headers middleware writes it, redirectScheme's temporary and permanent codes,
forwardAuth's request headers, rateLimit's burst, retry's attempts, passHostHeader, and
replacePath's X-Replaced-Path. Traefik's code is quoted where it decides."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from certbotless.labels.traefik.labels import traefik_claims
from certbotless.model import ServiceInfo
from tests.support.edge_nginx import (
    HOST,
    Echo,
    ServeEdge,
    StubDns,
    answer,
    answer_tls,
    echo_upstream,
    get,
    one_router,
)

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None, reason="needs nginx")
M = "traefik.http.middlewares."
STS = "Strict-Transport-Security"


def _upstream_saw(path: str) -> dict[str, str]:
    """The headers of the last request Echo servers got for `path`."""
    return next(headers for seen, headers in reversed(Echo.seen) if seen == path)


# --- headers: Strict-Transport-Security -----------------------------------------------------


def test_sts_is_sent_as_the_labels_write_it_on_https_only(upstream: int, edge: ServeEdge) -> None:
    # unrolled/secure: "max-age=%d" + "; includeSubDomains" + "; preload", when the request
    # came over TLS (or forceSTSHeader), and only if stsSeconds != 0.
    sts = {f"{M}sts.headers.stsseconds": "42", f"{M}sts.headers.stsincludesubdomains": "true",
           f"{M}sts.headers.stspreload": "true"}  # fmt: skip
    served = edge(one_router(upstream, sts, entrypoints="web,websecure"))
    status, _, headers = answer_tls(served.tls_port)
    assert (status, headers[STS]) == (200, "max-age=42; includeSubDomains; preload")
    status, _, headers = answer(served.port)
    assert status == 200 and STS not in headers  # plain HTTP: no STS without forceSTSHeader


def test_force_sts_header_sends_it_over_plain_http_too(upstream: int, edge: ServeEdge) -> None:
    forced = {f"{M}sts.headers.stsseconds": "42", f"{M}sts.headers.forcestsheader": "true"}
    served = edge(one_router(upstream, forced, entrypoints="web,websecure"))
    assert answer(served.port)[2][STS] == "max-age=42"
    assert answer_tls(served.tls_port)[2][STS] == "max-age=42"


def test_sts_seconds_zero_sends_no_sts(upstream: int, edge: ServeEdge) -> None:
    zero = {f"{M}sts.headers.stsseconds": "0", f"{M}sts.headers.forcestsheader": "true",
            f"{M}sts.headers.framedeny": "true"}  # fmt: skip
    served = edge(one_router(upstream, zero, entrypoints="websecure"))
    headers = answer_tls(served.tls_port)[2]
    assert STS not in headers and headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"framedeny": "true"}, {"X-Frame-Options": "DENY"}),  # replaces the service's own
        ({"framedeny": "true", "customframeoptionsvalue": "SAMEORIGIN"},
         {"X-Frame-Options": "SAMEORIGIN"}),
        ({"contenttypenosniff": "true"}, {"X-Content-Type-Options": "nosniff"}),
        ({"browserxssfilter": "true"}, {"X-XSS-Protection": "1; mode=block"}),
        ({"browserxssfilter": "true", "custombrowserxssvalue": "0"}, {"X-XSS-Protection": "0"}),
        ({"referrerpolicy": "no-referrer"}, {"Referrer-Policy": "no-referrer"}),
        ({"permissionspolicy": "camera=()"}, {"Permissions-Policy": "camera=()"}),
        ({"contentsecuritypolicy": "default-src 'self'"},
         {"Content-Security-Policy": "default-src 'self'"}),
        ({"contentsecuritypolicyreportonly": "default-src 'none'"},
         {"Content-Security-Policy-Report-Only": "default-src 'none'"}),
        ({"customresponseheaders.X-Upstream": ""}, {"X-Upstream": None}),  # removed
        ({"customresponseheaders.X-Upstream": "edge"}, {"X-Upstream": "edge"}),
    ],
)  # fmt: skip
def test_security_and_custom_answer_headers_are_set_as_traefik_sets_them(
    upstream: int, edge: ServeEdge, options: dict[str, str], expected: dict[str, str | None]
) -> None:
    labels = one_router(upstream, {f"{M}h.headers.{key}": v for key, v in options.items()})
    status, _, headers = answer(edge(labels).port)
    assert status == 200
    assert {name: headers.get(name) for name in expected} == expected


def test_a_header_traefiks_entry_point_sets_cannot_make_a_request_count_as_https() -> None:
    option = "sslproxyheaders.X-Forwarded-Port"
    labels = one_router(8000, {f"{M}h.headers.{option}": "443", f"{M}h.headers.framedeny": "true"})
    claims = traefik_claims([ServiceInfo("app", labels)])["app"]
    [problem] = claims.problems
    assert "entry point sets this header" in problem.message
    assert "served without it" in problem.message


@pytest.mark.parametrize(
    "option", ["featurepolicy", "sslredirect", "ssltemporaryredirect", "sslhost", "sslforcehost"]
)
def test_deprecated_headers_options_are_not_applied_as_in_traefik_v3_and_said_so(
    upstream: int, edge: ServeEdge, option: str
) -> None:
    labels = one_router(
        upstream, {f"{M}h.headers.{option}": "x", f"{M}h.headers.framedeny": "true"}
    )
    (problem,) = traefik_claims([ServiceInfo("app", labels)])["app"].problems
    assert problem.label.endswith(option) and "as Traefik v3" in problem.message
    served = dict((key, value) for key, value in labels.items() if not key.endswith(option))
    routes = traefik_claims([ServiceInfo("app", labels)])["app"].routes
    assert routes == traefik_claims([ServiceInfo("app", served)])["app"].routes  # as without it
    status, _, headers = answer(edge(served).port)
    assert status == 200
    assert headers.get("X-Frame-Options") == "DENY" and headers.get("Feature-Policy") is None


# --- redirectScheme ---------------------------------------------------------------------------


def _redirected(upstream: int, options: dict[str, str]) -> dict[str, str]:
    """The usual pair: router `r` on websecure, router `r-http` on web redirecting."""
    labels = one_router(upstream, {}, entrypoints="websecure")
    labels.update({
        "traefik.http.routers.r-http.rule": f"Host(`{HOST}`)",
        "traefik.http.routers.r-http.entrypoints": "web",
        "traefik.http.routers.r-http.middlewares": "to-https",
        f"{M}to-https.redirectscheme.scheme": "https",
        **{f"{M}to-https.redirectscheme.{key}": value for key, value in options.items()},
    })  # fmt: skip
    return labels


def test_redirect_scheme_is_temporary_unless_permanent(upstream: int, edge: ServeEdge) -> None:
    # pkg/middlewares/redirect/redirect.go: 302 for GET, 307 otherwise; permanent: 301, 308.
    temporary = edge(_redirected(upstream, {})).port
    status, _, headers = answer(temporary, "GET", "/a?b=1")
    assert (status, headers["Location"]) == (302, f"https://{HOST}/a?b=1")
    assert answer(temporary, "POST", "/a")[0] == 307
    assert answer(temporary, "HEAD", "/a")[0] == 307
    permanent = edge(_redirected(upstream, {"permanent": "true"})).port
    assert answer(permanent, "GET", "/a")[0] == 301
    assert answer(permanent, "POST", "/a")[0] == 308


def test_redirect_scheme_port_is_in_the_location(upstream: int, edge: ServeEdge) -> None:
    served = edge(_redirected(upstream, {"port": "8443", "permanent": "true"}))
    status, _, headers = answer(served.port, "GET", "/a?b=1")
    assert (status, headers["Location"]) == (301, f"https://{HOST}:8443/a?b=1")


# --- forwardAuth ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def auth_server() -> Iterator[int]:
    """A forward-auth server that lets everyone in (an Echo: it keeps what it was sent)."""
    with echo_upstream() as port:
        yield port


def test_forward_auth_sends_only_the_listed_request_headers(
    upstream: int, auth_server: int, edge: ServeEdge
) -> None:
    auth = {f"{M}fa.forwardauth.address": f"http://127.0.0.1:{auth_server}/check",
            f"{M}fa.forwardauth.authrequestheaders": "Accept,X-CustomHeader"}  # fmt: skip
    served = edge(one_router(upstream, auth))
    sent = {"Accept": "text/plain", "X-CustomHeader": "kept", "Cookie": "session=secret",
            "Authorization": "Bearer secret", "X-Other": "dropped",
            "X-Forwarded-For": "203.0.113.9", "X-Real-Ip": "203.0.113.9"}  # fmt: skip
    assert get(served.port, "/page?q=1", headers=sent)[0] == 200
    seen = _upstream_saw("/check")
    assert seen["accept"] == "text/plain" and seen["x-customheader"] == "kept"
    for dropped in ("cookie", "authorization", "x-other", "user-agent", "x-real-ip"):
        assert dropped not in seen, dropped
    # The headers Traefik's forward auth adds itself, after the filter.
    assert seen["x-forwarded-for"] == "127.0.0.1"  # the client's address, not what it sent
    assert (seen["x-forwarded-method"], seen["x-forwarded-uri"]) == ("GET", "/page?q=1")
    assert (seen["x-forwarded-proto"], seen["x-forwarded-host"]) == ("http", HOST)
    assert _upstream_saw("/page?q=1")["cookie"] == "session=secret"  # the service gets all


def test_forward_auth_trusting_forward_headers_still_sends_the_clients_address(
    upstream: int, auth_server: int, edge: ServeEdge
) -> None:
    # Traefik's entry point drops X-Forwarded-* from clients it does not trust (the edge is
    # the first hop: none), so trustForwardHeader finds only Traefik's own.
    auth = {f"{M}fa.forwardauth.address": f"http://127.0.0.1:{auth_server}/trusted",
            f"{M}fa.forwardauth.trustforwardheader": "true"}  # fmt: skip
    served = edge(one_router(upstream, auth))
    assert get(served.port, headers={"X-Forwarded-For": "203.0.113.9"})[0] == 200
    assert _upstream_saw("/trusted")["x-forwarded-for"] == "127.0.0.1"


def test_forward_auth_gets_traefiks_entry_point_headers_not_the_clients(
    upstream: int, auth_server: int, edge: ServeEdge
) -> None:
    # forwardedheaders.XForwarded (no trusted IPs): the client's X-Forwarded-*, X-Real-Ip
    # removed, then X-Real-Ip, X-Forwarded-Port (Host's port, else 80/443) and
    # X-Forwarded-Server (its host name; here the edge's) set; forwardAuth copies them.
    served = edge(one_router(upstream, {f"{M}fa.forwardauth.address":
                                        f"http://127.0.0.1:{auth_server}/entry"}))  # fmt: skip
    forged = {"X-Real-Ip": "203.0.113.9", "X-Forwarded-Port": "1", "X-Forwarded-Prefix": "/x",
              "X-Forwarded-Server": "forged", "Host": f"{HOST}:8080"}  # fmt: skip
    assert get(served.port, headers=forged)[0] == 200
    seen = _upstream_saw("/entry")
    assert (seen["x-real-ip"], seen["x-forwarded-port"]) == ("127.0.0.1", "8080")
    assert seen["x-forwarded-server"] == socket.gethostname()
    assert "x-forwarded-prefix" not in seen


@pytest.mark.parametrize(
    ("trust", "listed", "port"),
    [(None, "X-Case", None), (None, "X-Case,X-Forwarded-Port", "80"), ("false", "X-Case", "80"),
     ("true", "X-Case", "80"), (None, "", "80")],
)  # fmt: skip
def test_forward_auth_sends_x_forwarded_port_as_traefiks_two_header_writers(
    upstream: int,
    auth_server: int,
    edge: ServeEdge,
    trust: str | None,
    listed: str,
    port: str | None,
) -> None:
    """oldWriteHeader (trustForwardHeader not given) copies the entry point's port only when
    not filtered out; writeHeader (given, either way) sets it when missing."""
    auth = {f"{M}fa.forwardauth.address": f"http://127.0.0.1:{auth_server}/port-{trust}"}
    if trust is not None:
        auth[f"{M}fa.forwardauth.trustforwardheader"] = trust
    if listed:
        auth[f"{M}fa.forwardauth.authrequestheaders"] = listed
    served = edge(one_router(upstream, auth))
    assert get(served.port, headers={"X-Forwarded-Port": "1", "X-Case": "1"})[0] == 200
    assert _upstream_saw(f"/port-{trust}").get("x-forwarded-port") == port
    assert ("x-real-ip" in _upstream_saw(f"/port-{trust}")) == (not listed and trust != "false")


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("authresponseheadersregex", "^X-", "authResponseHeaders"),
        ("addauthcookiestoresponse", "session", "addAuthCookiesToResponse"),
    ],
)
def test_forward_auth_options_nginx_cannot_honour_are_refused_by_name(
    option: str, value: str, named: str
) -> None:
    labels = one_router(8000, {f"{M}fa.forwardauth.address": "http://auth:9000/check",
                               f"{M}fa.forwardauth.{option}": value})  # fmt: skip
    claims = traefik_claims([ServiceInfo("app", labels)])["app"]
    assert claims.routes == ()  # forward auth guards access: never served without it
    [problem] = claims.problems
    assert named in problem.message and problem.label.endswith(option)


# --- rateLimit --------------------------------------------------------------------------------


def test_rate_limit_burst_lets_exactly_burst_requests_through(
    upstream: int, edge: ServeEdge
) -> None:
    # Traefik's token bucket holds `burst` tokens (max(burst, 1)), full at first.
    limited = {f"{M}slow.ratelimit.average": "1", f"{M}slow.ratelimit.period": "1m",
               f"{M}slow.ratelimit.burst": "3"}  # fmt: skip
    port = edge(one_router(upstream, limited)).port
    assert [get(port)[0] for _ in range(5)] == [200, 200, 200, 429, 429]


# --- retry and passHostHeader -----------------------------------------------------------------


class _Refusing:
    """Listeners on `addresses` (one port) that accept each connection and close it at once,
    counting them: a task that fails every request."""

    def __init__(self, addresses: list[str]) -> None:
        self.count = 0
        self.sockets = []
        for _ in range(20):
            probe = socket.socket()
            probe.bind((addresses[0], 0))
            self.port = int(probe.getsockname()[1])
            self.sockets = [probe]
            try:
                for address in addresses[1:]:
                    other = socket.socket()
                    self.sockets.append(other)
                    other.bind((address, self.port))
                break
            except OSError:
                for sock in self.sockets:
                    sock.close()
        for sock in self.sockets:
            sock.listen()
            sock.settimeout(0.1)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._refuse, args=(s,)) for s in self.sockets]
        for thread in self._threads:
            thread.start()

    def _refuse(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = sock.accept()
            except OSError:
                continue
            self.count += 1
            connection.close()

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)
        for sock in self.sockets:
            sock.close()


def test_retry_attempts_counts_every_try(edge: ServeEdge) -> None:
    # pkg/middlewares/retry: `attempts` is the number of tries, the first included.
    addresses = [f"127.0.0.{n}" for n in range(2, 8)]  # more tasks than attempts
    tasks, dns = _Refusing(addresses), StubDns(addresses)
    try:
        labels = one_router(tasks.port, {f"{M}again.retry.attempts": "4"})
        port = edge(labels, service="flaky", resolver=dns.address).port
        assert get(port)[0] == 502
        time.sleep(0.3)  # the listeners' threads count the last connection
        assert tasks.count == 4
    finally:
        tasks.close()
        dns.close()


def test_pass_host_header_false_sends_the_services_address(upstream: int, edge: ServeEdge) -> None:
    # pkg/proxy/httputil: `if !passHostHeader { pr.Out.Host = pr.Out.URL.Host }`.
    labels = one_router(upstream, {})
    labels["traefik.http.services.s.loadbalancer.passhostheader"] = "false"
    assert get(edge(labels).port, "/own-host")[0] == 200
    assert _upstream_saw("/own-host")["host"] == f"127.0.0.1:{upstream}"
    labels["traefik.http.services.s.loadbalancer.passhostheader"] = "true"
    assert get(edge(labels).port, "/clients-host")[0] == 200
    assert _upstream_saw("/clients-host")["host"] == HOST


# --- replacePath(Regex): X-Replaced-Path ------------------------------------------------------


def test_replace_path_tells_the_service_the_original_path(upstream: int, edge: ServeEdge) -> None:
    replaced = edge(one_router(upstream, {f"{M}rp.replacepath.path": "/fixed"})).port
    assert get(replaced, "/asked/for?q=1") == (200, "/fixed?q=1 -")
    assert _upstream_saw("/fixed?q=1")["x-replaced-path"] == "/asked/for"


def test_replace_path_regex_sets_x_replaced_path_only_when_it_matches(
    upstream: int, edge: ServeEdge
) -> None:
    moved = {f"{M}mv.replacepathregex.regex": "^/old/(.*)",
             f"{M}mv.replacepathregex.replacement": "/new/$1"}  # fmt: skip
    port = edge(one_router(upstream, moved)).port
    assert get(port, "/old/a?q=1") == (200, "/new/a?q=1 -")
    assert _upstream_saw("/new/a?q=1")["x-replaced-path"] == "/old/a"
    assert get(port, "/kept") == (200, "/kept -")
    assert "x-replaced-path" not in _upstream_saw("/kept")
