"""The status page over real HTTP: its own listener on a free port, fake data behind it."""

from __future__ import annotations

import io
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import redirect_stdout
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import bcrypt
import pytest
import requests

from certbotless import __version__, cli
from certbotless.model import Listed
from certbotless.settings import Settings, SettingsError, StatusPage
from certbotless.web.access import Gate, StatusPageError
from certbotless.web.server import StatusServer
from tests.support.factories import stored_cert
from tests.web.status_data import (
    CA_WORDS,
    FALLBACK_REASON,
    NOW,
    PASSWORD,
    PROBLEM,
    SHA_HASH,
    USER,
    FakeSource,
    RecordedActions,
    serving,
    write_htpasswd,
)

LOOPBACK = ("127.0.0.1", 0)


@pytest.fixture
def htpasswd(tmp_path: Path) -> Path:
    return write_htpasswd(tmp_path)


@pytest.fixture
def page(htpasswd: Path) -> Iterator[tuple[str, RecordedActions]]:
    actions = RecordedActions()
    with serving(StatusPage(LOOPBACK, htpasswd=htpasswd, actions=True), actions=actions) as s:
        yield f"http://127.0.0.1:{s.port}", actions


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found is not None
    return found.group(1)


def test_no_credentials_get_401_and_wrong_ones_too(page: tuple[str, RecordedActions]) -> None:
    url, _ = page
    for auth in (None, (USER, "wrong"), ("nobody", PASSWORD), (USER, "x" * 100)):  # bcrypt: 72 B
        answer = requests.get(url, auth=auth, timeout=5)
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"].startswith('Basic realm="certbotless status"')
        assert "shop" not in answer.text
    assert requests.get(url + "/api/v1/certificates", timeout=5).status_code == 401
    assert requests.get(url + "/api/v1/routers", timeout=5).status_code == 401


def test_the_page_lists_the_most_urgent_first_with_the_cas_words(
    page: tuple[str, RecordedActions],
) -> None:
    url, _ = page
    answer = requests.get(url, auth=(USER, PASSWORD), timeout=5)
    assert answer.status_code == 200
    html = answer.text
    order = [m.group(1) for m in re.finditer(r'<tr id="cert-([a-z]+)"', html)]
    # expiring, failing (never issued first), ok, unwanted
    assert order == ["old", "new", "api", "shop", "manual"]
    assert CA_WORDS.replace("/", "/") in html.replace("&#34;", '"')
    assert "used by shop_web" in html and "used by api_admin, api_app" in html
    assert "ARI window" in html and "profile shortlived" in html
    assert "issuer letsencrypt" in html and "issuer zerossl" in html
    assert f"passed over {FALLBACK_REASON}" in html
    assert "3 failed in a row" in html
    assert '<meta http-equiv="refresh" content="30; url=/?q=&amp;state=all&amp;router=">' in html
    assert "<script" not in html
    assert "script-src" not in answer.headers["Content-Security-Policy"]
    assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
    # passes, rolls, alerts and the week's budget
    assert "12.3 s" in html and "4.2 s" in html and "nginx -t: unknown directive" in html
    assert "rollout_failed" in html and "renewal_failed" in html
    assert "6 / 50" in html and "example.test" in html
    assert "Orders per claimant: 30 per 3 h, a failed order counting 3" in html
    assert "service evil_app</td><td>30 / 30" in html and "10 (10)" in html
    # the edge: a task left behind on shop's previous serial
    assert "edge task 10.0.9.4 serves ab0" in html and "1 stale" in html
    assert "node2abcdef0" in html
    assert f"certbotless {__version__} ·" in html  # the release running (issue 26)


def test_the_filter_searches_and_selects_states(page: tuple[str, RecordedActions]) -> None:
    url, _ = page

    def shown(query: dict[str, str]) -> list[str]:
        html = requests.get(url, params=query, auth=(USER, PASSWORD), timeout=5).text
        return [m.group(1) for m in re.finditer(r'<tr id="cert-([a-z]+)"', html)]

    assert shown({"state": "failing"}) == ["new", "api"]
    assert shown({"q": "WWW.SHOP"}) == ["shop"]
    assert shown({"q": "api_app"}) == ["api"]  # by the service using it
    assert shown({"q": "unauthorized"}) == ["api"]  # by the CA's words
    assert shown({"q": "nothing-like-it"}) == []
    assert shown({"state": "bogus"}) == ["old", "new", "api", "shop", "manual"]


def _routers_shown(url: str, query: dict[str, str]) -> tuple[list[str], list[str], str]:
    """The services of the routers the page shows, those of its label problems, and the page."""
    html = requests.get(url, params=query, auth=(USER, PASSWORD), timeout=5).text
    routers = re.findall(r'<td data-label="Service"><b>([a-z_]+)</b>', html)
    troubled = re.findall(r'<li class="service-problems"><b>([a-z_]+)</b>', html)
    return routers, troubled, html


def _router_row(html: str, rule: str) -> str:
    start = html.rindex('<tr class="router">', 0, html.index(rule))
    return html[start : html.index("</tr>", start)]


def test_the_routers_view_shows_every_router_and_label_problem(
    page: tuple[str, RecordedActions],
) -> None:
    url, _ = page
    routers, troubled, html = _routers_shown(url, {})
    assert routers == ["api_app", "api_admin", "hello_web", "legacy_site", "shop_web"]
    assert troubled == ["blog_web"]
    assert PROBLEM.message in html and f"{PROBLEM.label}={PROBLEM.value}" in html
    admin = _router_row(html, "PathPrefix(`/admin`)")
    assert "Host(`api.example.test`) &amp;&amp; PathPrefix(`/admin`) &amp;&amp; " in admin
    assert "(Method(`GET`) || Method(`POST`))" in admin
    assert "basic auth (1 user(s))" in admin and "only from 10.0.0.0/8" in admin
    assert "port 9000" in admin and ">traefik<" in admin and ">api<" in admin  # its certificate
    hello = _router_row(html, "Host(`hello.example.test`)")
    assert "no certificate yet" in hello and "HTTP served on HTTP too" in hello
    assert SHA_HASH not in html  # the users' hashes are never shown


def test_the_routers_filter_keeps_what_it_names(page: tuple[str, RecordedActions]) -> None:
    url, _ = page
    # Its dialect, and the Traefik label of the problem.
    assert _routers_shown(url, {"router": "TRAEFIK"})[:2] == (["api_admin"], ["blog_web"])
    assert _routers_shown(url, {"router": "10.0.0.0/8"})[:2] == (["api_admin"], [])
    assert _routers_shown(url, {"router": "digestauth"})[:2] == ([], ["blog_web"])
    assert _routers_shown(url, {"router": "shop"})[:2] == (["shop_web"], [])  # certificate too
    routers, troubled, html = _routers_shown(url, {"router": "nothing-like-it"})
    assert (routers, troubled) == ([], [])
    assert "No router matches this filter" in html
    assert "No label problem matches this filter" in html
    # The certificates' filter is its own, and each form keeps the other's.
    assert re.findall(r'<tr id="cert-([a-z]+)"', html) == ["old", "new", "api", "shop", "manual"]
    assert '<input type="hidden" name="router" value="nothing-like-it">' in html


def test_the_routers_api_has_every_router_and_problem(page: tuple[str, RecordedActions]) -> None:
    url, _ = page
    answer = requests.get(url + "/api/v1/routers", auth=(USER, PASSWORD), timeout=5)
    assert answer.headers["Content-Type"] == "application/json"
    found = answer.json()
    assert [r["service"] for r in found["routers"]] == ["api_app", "api_admin", "hello_web",
                                                       "legacy_site", "shop_web"]  # fmt: skip
    admin = found["routers"][1]
    assert admin == {
        "service": "api_admin", "dialect": "traefik", "hosts": ["api.example.test"],
        "every_host": False, "path": "/admin", "exact_path": False,
        "rule": "Host(`api.example.test`) && PathPrefix(`/admin`) && "
                "(Method(`GET`) || Method(`POST`))",
        "priority": None, "port": 9000, "scheme": "http",
        "middlewares": ["only GET, POST (others 404)", "basic auth (1 user(s))",
                        "only from 10.0.0.0/8"],
        "tls": True, "certificates": {"api.example.test": "api"}, "redirect_to_https": True,
    }  # fmt: skip
    assert found["routers"][2]["tls"] is False
    assert found["problems"] == [{"service": PROBLEM.service, "label": PROBLEM.label,
                                  "value": PROBLEM.value, "message": PROBLEM.message}]  # fmt: skip
    assert SHA_HASH not in answer.text
    kept = requests.get(url + "/api/v1/routers", params={"router": "hello"},
                        auth=(USER, PASSWORD), timeout=5).json()  # fmt: skip
    assert ([r["service"] for r in kept["routers"]], kept["problems"]) == (["hello_web"], [])


def test_the_json_api_has_the_schema_and_data_of_list_json(
    page: tuple[str, RecordedActions],
) -> None:
    url, _ = page
    served = requests.get(url + "/api/v1/certificates", auth=(USER, PASSWORD), timeout=5)
    assert served.headers["Content-Type"] == "application/json"
    printed = io.StringIO()
    with redirect_stdout(printed):
        # views.listing gives `list` its rows by name
        cli._list(sorted(FakeSource().listing(), key=lambda row: row.name), as_json=True)
    expected = {row["name"]: row for row in json.loads(printed.getvalue())}
    got = {row["name"]: row for row in served.json()}
    assert list(got) == list(expected)  # in the same order too
    for name, row in expected.items():
        assert got[name].keys() == row.keys()
        assert got[name]["days_left"] == pytest.approx(row["days_left"], abs=0.01)
        assert {**got[name], "days_left": 0} == {**row, "days_left": 0}
    overview = requests.get(url + "/api/v1/overview", auth=(USER, PASSWORD), timeout=5).json()
    assert overview["version"] == 1
    assert overview["release"] == __version__
    assert [p["seconds"] for p in overview["passes"]] == [12.3, 31.0]
    assert overview["edge"]["stale"] == {"shop": {"10.0.9.4": "ab0"}}
    assert [t["node"] for t in overview["edge"]["tasks"]] == ["node1abcdef0123456",
                                                             "node2abcdef0123456"]  # fmt: skip
    use = overview["budget"][0]
    assert (use["registered_domain"], use["used"], use["limit"]) == ("example.test", 6, 50)
    share = overview["claimants"][0]
    assert (share["claimant"], share["orders"], share["failed"], share["used"], share["limit"],
            share["window_seconds"], share["failed_weight"]) == (
        "service evil_app", 10, 10, 30, 30, 10800, 3)  # fmt: skip
    assert share["frees_at"] is not None
    assert requests.get(url + "/api/v2/x", auth=(USER, PASSWORD), timeout=5).status_code == 404


def test_an_action_needs_the_visitors_token_from_a_same_origin_form(
    page: tuple[str, RecordedActions], caplog: pytest.LogCaptureFixture
) -> None:
    url, actions = page
    session = requests.Session()
    session.auth = (USER, PASSWORD)
    token = _csrf(session.get(url, timeout=5).text)
    form = {"action": "renew", "name": "shop", "csrf": token}

    def post(data: dict[str, str], **headers: str) -> requests.Response:
        return session.post(
            url + "/actions", data=data, headers=headers, allow_redirects=False, timeout=5
        )

    assert post({**form, "csrf": ""}).status_code == 403
    assert post({**form, "csrf": "0" * 64}).status_code == 403
    forged = post(form, Origin="https://evil.example")  # a cross-site form with a stolen token
    assert forged.status_code == 403 and "cross-site" in forged.text
    assert post(form, **{"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert post(form, Origin="null").status_code == 403
    assert actions.asked == []
    done = post(form, Origin=url)
    assert done.status_code == 303 and done.headers["Location"].startswith("/?done=")
    assert actions.asked == [("renew", "shop", USER)]
    assert f"status page: {USER} asked to renew shop" in caplog.text  # who asked, logged
    assert post({**form, "action": "retry", "name": "api"}).status_code == 303
    assert post({**form, "name": "no-such"}).status_code == 400
    # revoke wants the name typed
    post({**form, "action": "revoke", "confirm": "sho"})
    assert actions.asked[-1] == ("retry", "api", USER)
    post({**form, "action": "revoke", "confirm": "shop"})
    assert actions.asked[-1] == ("revoke", "shop", USER)
    shown = session.get(url + done.headers["Location"], timeout=5).text
    assert "shop: renewal asked for" in shown


def test_read_only_unless_actions_are_enabled(htpasswd: Path) -> None:
    actions = RecordedActions()
    with serving(StatusPage(LOOPBACK, htpasswd=htpasswd), actions=actions) as server:
        url = f"http://127.0.0.1:{server.port}"
        html = requests.get(url, auth=(USER, PASSWORD), timeout=5).text
        assert "/actions" not in html and "Renew now" not in html
        answer = requests.post(url + "/actions", auth=(USER, PASSWORD), timeout=5,
                               data={"action": "renew", "name": "shop", "csrf": "x"})  # fmt: skip
        assert answer.status_code == 403
    assert actions.asked == []


def test_the_allowlist_is_the_clients_address() -> None:
    with serving(StatusPage(LOOPBACK, allow_from=("10.0.0.0/8",))) as refused:
        answer = requests.get(f"http://127.0.0.1:{refused.port}/", timeout=5)
        assert answer.status_code == 403 and "ALLOW_FROM" in answer.text
    with serving(StatusPage(LOOPBACK, allow_from=("127.0.0.0/8",))) as admitted:
        answer = requests.get(f"http://127.0.0.1:{admitted.port}/", timeout=5)
        assert answer.status_code == 200 and "127.0.0.1" in answer.text


class _AuthService(BaseHTTPRequestHandler):
    """A forward-auth service: a `session=good` cookie is Alice; anything else is 401."""

    asked: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        _AuthService.asked.append(dict(self.headers.items()))
        good = "session=good" in self.headers.get("Cookie", "")
        self.send_response(200 if good else 401)
        if good:
            self.send_header("Remote-User", "alice")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_forward_auth_asks_the_auth_service_about_every_request() -> None:
    auth = ThreadingHTTPServer(LOOPBACK, _AuthService)
    threading.Thread(target=auth.serve_forever, daemon=True).start()
    try:
        verify = f"http://127.0.0.1:{auth.server_address[1]}/api/verify"
        with serving(StatusPage(LOOPBACK, forward_auth=verify)) as server:
            url = f"http://127.0.0.1:{server.port}/?q=shop"
            assert requests.get(url, timeout=5).status_code == 401
            answer = requests.get(url, cookies={"session": "good"}, timeout=5)
            assert answer.status_code == 200 and "alice" in answer.text
            assert _AuthService.asked[-1]["X-Forwarded-Uri"] == "/?q=shop"
    finally:
        auth.shutdown()
        auth.server_close()
    with serving(StatusPage(LOOPBACK, forward_auth="http://127.0.0.1:9/")) as server:
        answer = requests.get(f"http://127.0.0.1:{server.port}/", timeout=10)
        assert answer.status_code == 503


def test_a_page_without_protection_refuses_to_start() -> None:
    with pytest.raises(SettingsError, match="open to anyone") as refused:
        Settings.from_env({"CERTBOTLESS_STATUS_LISTEN": "0.0.0.0:8403"})
    assert "CERTBOTLESS_STATUS_HTPASSWD" in str(refused.value)
    assert Settings.from_env({}).status_page is None  # not served unless configured
    env = {"CERTBOTLESS_STATUS_LISTEN": ":8403", "CERTBOTLESS_STATUS_ALLOW_FROM": "10.0.0.0/8"}
    page = Settings.from_env(env).status_page
    assert page == StatusPage(("0.0.0.0", 8403), allow_from=("10.0.0.0/8",))


def test_htpasswd_lines_other_than_bcrypt_are_refused(tmp_path: Path) -> None:
    md5 = tmp_path / "md5"
    md5.write_text("ops:$apr1$abc$def\n")
    with pytest.raises(StatusPageError, match="line 1 is not USER:BCRYPT-HASH"):
        StatusServer(StatusPage(LOOPBACK, htpasswd=md5), FakeSource(), None)
    with pytest.raises(StatusPageError, match="cannot read it"):
        StatusServer(StatusPage(LOOPBACK, htpasswd=tmp_path / "absent"), FakeSource(), None)


def test_an_unknown_user_costs_the_bcrypt_check_a_known_one_costs(tmp_path: Path) -> None:
    """`htpasswd -nB` hashes at cost 5 while the stand-in for unknown users was cost 10: a wrong
    user answered in 59 ms, a wrong password in 2 ms, telling user names apart by time."""
    lines = tmp_path / "users"
    lines.write_text("ops:" + bcrypt.hashpw(b"x", bcrypt.gensalt(rounds=5)).decode() + "\n")
    gate = Gate(StatusPage(LOOPBACK, htpasswd=lines))
    assert gate._unknown_user.startswith(b"$2b$05$")


def test_a_thousand_certificates_render_within_200_ms(htpasswd: Path, figure) -> None:  # type: ignore[no-untyped-def]
    rows: list[Listed] = []
    for number in range(1000):
        name = f"site{number:04d}.example.test"
        cert = stored_cert(name, (name,), issued=NOW - timedelta(days=number % 90),
                           version=str(number))  # fmt: skip
        rows.append(Listed(name, cert, True, True, None, None))
    source = FakeSource(rows)
    with serving(StatusPage(LOOPBACK, htpasswd=htpasswd), source=source) as server:
        url = f"http://127.0.0.1:{server.port}/"
        requests.get(url, auth=(USER, PASSWORD), timeout=10)  # templates compiled, login kept
        times = []
        for _ in range(5):
            started = time.perf_counter()
            answer = requests.get(url, auth=(USER, PASSWORD), timeout=10)
            times.append((time.perf_counter() - started) * 1000)
            assert answer.status_code == 200 and answer.text.count('<tr id="cert-') == 1000
    best = min(times)
    figure(f"status page with 1,000 certificates: {best:.0f} ms (best of 5, over HTTP), "
           f"{len(answer.content) / 1024:.0f} KiB")  # fmt: skip
    assert best <= 200


class _BypassingAuthService(BaseHTTPRequestHandler):
    """A forward-auth service with an auth service's ordinary bypass rules: the public host and
    the internal network pass without a login (2xx, no Remote-User); anything else is 401."""

    asked: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        _BypassingAuthService.asked.append(dict(self.headers.items()))
        public = self.headers.get("X-Forwarded-Host") == "public.example.com"
        internal = self.headers.get("X-Forwarded-For", "").startswith("10.")
        self.send_response(200 if public or internal else 401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def bypassing_auth() -> Iterator[str]:
    auth = ThreadingHTTPServer(LOOPBACK, _BypassingAuthService)
    threading.Thread(target=auth.serve_forever, daemon=True).start()
    _BypassingAuthService.asked.clear()
    try:
        yield f"http://127.0.0.1:{auth.server_address[1]}/api/verify"
    finally:
        auth.shutdown()
        auth.server_close()


FORGED = {"X-Forwarded-Host": "public.example.com", "X-Forwarded-For": "10.1.2.3",
          "X-Forwarded-Proto": "https", "Forwarded": "for=10.1.2.3"}  # fmt: skip


def test_forged_forwarded_headers_from_a_peer_not_of_the_edge_are_ignored(
    bypassing_auth: str,
) -> None:
    """Issue 25, item 9: a client that reaches the page itself, not through the edge, named the
    host and address the auth service lets through, read a CSRF token and posted revoke."""
    actions = RecordedActions()
    page = StatusPage(LOOPBACK, forward_auth=bypassing_auth, actions=True)
    with serving(page, actions=actions) as server:
        url = f"http://127.0.0.1:{server.port}"
        answer = requests.get(url + "/", headers=FORGED, timeout=5)
        assert answer.status_code == 401, answer.text
        told = _BypassingAuthService.asked[-1]
        # The auth service was told what the page itself knows: its listener, the TCP peer.
        assert told["X-Forwarded-Host"] == f"127.0.0.1:{server.port}"
        assert told["X-Forwarded-For"] == "127.0.0.1"
        assert told["X-Forwarded-Proto"] == "http"
        posted = requests.post(
            url + "/actions", headers={**FORGED, "Origin": "https://public.example.com"},
            data={"action": "revoke", "name": "shop", "confirm": "shop", "csrf": "0" * 64},
            timeout=5, allow_redirects=False,
        )  # fmt: skip
        assert posted.status_code == 401, posted.text
    assert actions.asked == []


def test_a_peer_neither_of_the_edge_nor_allowed_directly_is_refused_first(
    bypassing_auth: str,
) -> None:
    """A tenant's container on the edge network reaches the page's listener: refused before
    the auth service is even asked."""
    page = StatusPage(LOOPBACK, forward_auth=bypassing_auth, actions=True, direct_from=())
    with serving(page) as server:
        answer = requests.get(f"http://127.0.0.1:{server.port}/", headers=FORGED, timeout=5)
        assert answer.status_code == 403 and "not an nginx task of the edge" in answer.text
        assert _BypassingAuthService.asked == []
    with serving(StatusPage(LOOPBACK, allow_from=("127.0.0.0/8",), direct_from=())) as server:
        answer = requests.get(f"http://127.0.0.1:{server.port}/", timeout=5)
        assert answer.status_code == 403, "an allowlist does not open the page to tenants"


def test_the_edges_forwarded_headers_are_believed(bypassing_auth: str) -> None:
    """From an nginx task of the edge the X-Forwarded-* are nginx's own (it replaces the
    client's): the auth service decides on them, and the form's origin is the edge's host."""
    actions = RecordedActions()
    page = StatusPage(LOOPBACK, forward_auth=bypassing_auth, actions=True, direct_from=())
    with serving(page, actions=actions, edge={"127.0.0.1"}) as server:
        url = f"http://127.0.0.1:{server.port}"
        html = requests.get(url + "/", headers=FORGED, timeout=5)
        assert html.status_code == 200
        assert _BypassingAuthService.asked[-1]["X-Forwarded-Host"] == "public.example.com"
        done = requests.post(
            url + "/actions", headers={**FORGED, "Origin": "https://public.example.com"},
            data={"action": "renew", "name": "shop", "csrf": _csrf(html.text)}, timeout=5,
            allow_redirects=False,
        )  # fmt: skip
        assert done.status_code == 303, done.text
    assert actions.asked == [("renew", "shop", "127.0.0.1")]


def test_the_direct_networks_are_a_setting() -> None:
    env = {"CERTBOTLESS_STATUS_LISTEN": ":8403", "CERTBOTLESS_STATUS_ALLOW_FROM": "10.0.0.0/8"}
    assert Settings.from_env(env).status_page.direct_from == ("127.0.0.0/8", "::1/128")  # type: ignore[union-attr]
    env["CERTBOTLESS_STATUS_DIRECT_FROM"] = "10.9.0.0/24"
    assert Settings.from_env(env).status_page.direct_from == ("10.9.0.0/24",)  # type: ignore[union-attr]
    env["CERTBOTLESS_STATUS_DIRECT_FROM"] = "none"
    assert Settings.from_env(env).status_page.direct_from == ()  # type: ignore[union-attr]
    with pytest.raises(SettingsError, match="STATUS_DIRECT_FROM"):
        Settings.from_env({**env, "CERTBOTLESS_STATUS_DIRECT_FROM": "shop"})
