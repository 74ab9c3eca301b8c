"""Traefik's middlewares that answer or rewrite by the request's host or URL, answered by a real
nginx on loopback as Traefik answers them: headers.allowedHosts with hostsProxyHeaders,
redirectRegex, stripPrefixRegex; and Go (RE2) regexes accepted only where nginx's PCRE reads
them alike. Traefik's code is quoted where it decides."""

from __future__ import annotations

import shutil

import pytest

from certbotless.edge.njs import NJS, local_njs_features
from certbotless.labels.traefik.go_regex import NotPortable, to_pcre
from certbotless.labels.traefik.labels import traefik_claims
from certbotless.model import ServiceInfo
from tests.support.edge_nginx import HOST, Echo, ServeEdge, one_router, request

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None, reason="needs nginx")
M = "traefik.http.middlewares."


def _upstream_saw(path: str) -> dict[str, str]:
    return next(headers for seen, headers in reversed(Echo.seen) if seen == path)


def _refusal(middlewares: dict[str, str]) -> str:
    claims = traefik_claims([ServiceInfo("app", one_router(8000, middlewares))])["app"]
    [problem] = claims.problems
    return f"{problem.label}: {problem.message}"


# --- headers.allowedHosts, hostsProxyHeaders ------------------------------------------------


def test_allowed_hosts_answer_bad_host_to_others(upstream: int, edge: ServeEdge) -> None:
    # unrolled/secure: strings.EqualFold(allowedHost, r.Host), else
    # http.Error(w, "Bad Host", http.StatusInternalServerError).
    allowed = {f"{M}h.headers.allowedhosts": f"{HOST.upper()},other.example.com:8080"}
    port = edge(one_router(upstream, allowed)).port
    assert request(port, "/a")[:2] == (200, "/a -")
    assert request(port, "/a", host=f"{HOST}:8080")[0] == 500  # the port is part of the host
    allowed[f"{M}h.headers.allowedhosts"] = "other.example.com"
    status, body, _ = request(edge(one_router(upstream, allowed)).port, "/a")
    assert (status, body) == (500, "Bad Host\n")


def test_hosts_proxy_headers_give_the_host_allowed_hosts_checks(
    upstream: int, edge: ServeEdge
) -> None:
    # The first of hostsProxyHeaders that the request has is the host; else Host. Traefik's
    # entry point (no trusted IPs) sets X-Forwarded-Host to the Host, whatever the client sent.
    labels = {f"{M}h.headers.allowedhosts": "front.example.com",
              f"{M}h.headers.hostsproxyheaders": "X-Original-Host,X-Forwarded-Host"}  # fmt: skip
    port = edge(one_router(upstream, labels)).port
    assert request(port)[0] == 500
    assert request(port, headers=[("X-Original-Host", "front.example.com")])[0] == 200
    assert request(port, headers=[("X-Forwarded-Host", "front.example.com")])[0] == 500
    assert request(port, headers=[("X-Original-Host", "bad.example.com")])[0] == 500


def test_allowed_hosts_that_cannot_be_applied_refuse_the_router_in_words() -> None:
    """allowedHosts guards access: a headers middleware asking for it that cannot be applied
    (here after an access middleware) refuses the router rather than serving it without the
    check, as for any middleware that guards access."""
    labels = {f"{M}a.basicauth.users": "u:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/",
              f"{M}h.headers.allowedhosts": HOST}  # fmt: skip
    claims = traefik_claims([ServiceInfo("app", one_router(8000, labels))])["app"]
    assert claims.routes == ()
    [problem] = claims.problems
    assert "before the router's access middlewares" in problem.message
    assert problem.message.endswith("not routed at all rather than served open")
    # A headers middleware without allowedHosts still only shapes: served without it.
    shaping = {f"{M}a.basicauth.users": "u:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/",
               f"{M}h.headers.stsseconds": "forever"}  # fmt: skip
    served = traefik_claims([ServiceInfo("app", one_router(8000, shaping))])["app"]
    [route], [problem] = served.routes, served.problems
    assert route.basic_auth is not None and problem.message.endswith("served without it")


# --- redirectRegex ------------------------------------------------------------------------------


def test_redirect_regex_redirects_the_url_as_traefik_rewrites_it(
    upstream: int, edge: ServeEdge
) -> None:
    # pkg/middlewares/redirect: the URL is scheme://Host + RequestURI; a different rewritten
    # URL is redirected to: 302 for GET, 307 otherwise (301, 308 when permanent).
    moved = {f"{M}rr.redirectregex.regex": r"^http://app\.example\.com/old/([a-z]+)",
             f"{M}rr.redirectregex.replacement": "https://new.example.com/${1}x"}  # fmt: skip
    port = edge(one_router(upstream, moved)).port
    status, _, headers = request(port, "/old/page/rest?q=1")
    assert (status, headers["Location"]) == (302, "https://new.example.com/pagex/rest?q=1")
    assert request(port, "/old/page", "POST")[0] == 307
    assert request(port, "/kept")[:2] == (200, "/kept -")  # no match: on to the service
    moved[f"{M}rr.redirectregex.permanent"] = "true"
    port = edge(one_router(upstream, moved)).port
    assert [request(port, "/old/a", method)[0] for method in ("GET", "PUT")] == [301, 308]


def test_redirect_regex_to_the_same_url_is_not_a_redirect(upstream: int, edge: ServeEdge) -> None:
    # `if newURL != oldURL` redirect; else the request goes on (no loop).
    same = {f"{M}rr.redirectregex.regex": r"^http://(www\.)?app\.example\.com/(.*)",
            f"{M}rr.redirectregex.replacement": "http://app.example.com/$2"}  # fmt: skip
    port = edge(one_router(upstream, same)).port
    assert request(port, "/a?b")[:2] == (200, "/a?b -")
    # Go reads `$2x` as a group named 2x, which does not exist: empty.
    named = {**same, f"{M}rr.redirectregex.replacement": "http://app.example.com/$2x"}
    status, _, headers = request(edge(one_router(upstream, named)).port, "/a")
    assert (status, headers["Location"]) == (302, "http://app.example.com/")


def test_redirect_regex_nginx_cannot_read_alike_is_refused_by_name() -> None:
    said = _refusal({f"{M}rr.redirectregex.regex": "^(?=x)",
                     f"{M}rr.redirectregex.replacement": "https://x.example.com/"})  # fmt: skip
    assert "(?=…" in said and "redirectregex" in said.lower()


@pytest.mark.skipif(NJS not in local_njs_features(), reason="needs njs")
@pytest.mark.parametrize(
    ("regex", "replacement", "location"),
    [  # every match replaced, as Go's ReplaceAllString; the Location as Go makes it
        ("/old/(.*)", "/new/$1", f"http://{HOST}/new/a?b"),
        (r"\.example\.", ".test.", "http://app.test.com/old/a?b"),
        ("^http://[^/]*/(.*)", "/relative/$1", "/relative/old/a?b"),
        ("^http://[^/]*/(.*)", "https://x.example.com/$$1", "https://x.example.com/$1"),
    ],
)
def test_redirect_regex_any_other_is_done_by_njs(
    upstream: int, edge: ServeEdge, regex: str, replacement: str, location: str
) -> None:
    labels = {f"{M}rr.redirectregex.regex": regex,
              f"{M}rr.redirectregex.replacement": replacement}  # fmt: skip
    status, _, headers = request(edge(one_router(upstream, labels)).port, "/old/a?b")
    assert (status, headers["Location"]) == (302, location)


# --- stripPrefixRegex -----------------------------------------------------------------------


def test_strip_prefix_regex_strips_the_first_match_at_the_start(
    upstream: int, edge: ServeEdge
) -> None:
    # pkg/middlewares/stripprefixregex: the first regex whose match (not empty) starts the path
    # is removed (ensureLeadingSlash), X-Forwarded-Prefix added.
    strip = {f"{M}sp.stripprefixregex.regex": "/api/v[0-9]+, /foo/[a-z]+"}
    port = edge(one_router(upstream, strip)).port
    assert request(port, "/api/v2/users?q=1")[:2] == (200, "/users?q=1 -")
    assert _upstream_saw("/users?q=1")["x-forwarded-prefix"] == "/api/v2"
    assert request(port, "/foo/barbaz")[:2] == (200, "/ -")  # the whole path: "/" is left
    assert request(port, "/api/v2x")[:2] == (200, "/x -")  # the rest gets a leading /
    assert request(port, "/v1/api/v2/a")[:2] == (200, "/v1/api/v2/a -")  # not at the start
    assert "x-forwarded-prefix" not in _upstream_saw("/v1/api/v2/a")


def test_strip_prefix_regex_keeps_gos_leftmost_first_match(upstream: int, edge: ServeEdge) -> None:
    # Go takes the first alternative that matches (`/a`), even where a longer one would.
    port = edge(one_router(upstream, {f"{M}sp.stripprefixregex.regex": "/a|/ab"})).port
    assert request(port, "/abc")[:2] == (200, "/bc -")


def test_strip_prefix_regex_that_matches_empty_strips_nothing(
    upstream: int, edge: ServeEdge
) -> None:
    # Go: `len(parts[0]) > 0`; the lazy `??` prefers the empty match, so nothing is stripped
    # (PCRE would backtrack to `/x` without the atomic group), and the next regex is tried.
    lazy = {f"{M}sp.stripprefixregex.regex": "(/x)??, /x/y"}
    port = edge(one_router(upstream, lazy)).port
    assert request(port, "/x/y/z")[:2] == (200, "/z -")
    greedy = edge(one_router(upstream, {f"{M}sp.stripprefixregex.regex": "(/x)?"})).port
    assert request(greedy, "/x/y")[:2] == (200, "/y -")
    assert request(greedy, "/y")[:2] == (200, "/y -")


def test_named_groups_quotes_and_spaces_read_as_go_reads_them(
    upstream: int, edge: ServeEdge
) -> None:
    # Go numbers a named group and Expand finds `${name}`.
    named = {f"{M}rr.redirectregex.regex": r"^http://[^/]+/(?P<page>[a-z]+)/(.*)",
             f"{M}rr.redirectregex.replacement": "https://new.example.com/${page}-$2"}  # fmt: skip
    port = edge(one_router(upstream, named)).port
    assert request(port, "/a/b")[2]["Location"] == "https://new.example.com/a-b"
    # On the decoded path, `"` and `\\` are literal; RE2's `\s` has no vertical tab.
    strip = {f"{M}sp.stripprefixregex.regex": r'/(?<p>a)"?\\?\s?'}
    port = edge(one_router(upstream, strip)).port
    assert request(port, "/a%22%5C%09b")[:2] == (200, "/b -")
    assert request(port, "/a%0Bb")[:2] == (200, "/%0Bb -")


def test_replace_path_regex_dollar_is_the_end_of_the_path(upstream: int, edge: ServeEdge) -> None:
    # Go's `$` is the end of the text; PCRE's would also match before a final newline (%0A).
    moved = {f"{M}rp.replacepathregex.regex": "^/old/([a-z]+)$",
             f"{M}rp.replacepathregex.replacement": "/new/$1"}  # fmt: skip
    port = edge(one_router(upstream, moved)).port
    assert request(port, "/old/a")[:2] == (200, "/new/a -")
    assert request(port, "/old/a%0A")[:2] == (200, "/old/a%0A -")


# --- Go's regexes as PCRE ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("go", "pcre"),
    [
        (r"^/a/(.*)$", r"^/a/(.*)\z"),  # Go's $ is the end of the text
        (r"[$a]{2,3}\.x", r"[$a]{2,3}\.x"),
        (r"(?i)^/x{", r"(?i)^/x\{"),
        (r"\d\w\b\x41", r"\d\w\bA"),
        # RE2's \s has no vertical tab (PCRE's has): written out.
        (r"\s[^\S]", r"[\x09\x0a\x0c\x0d ][\x09\x0a\x0c\x0d ]"),
        (r"[[:alpha:]\d-]", r"[\-0-9A-Za-z]"),  # POSIX classes as Go defines them
        (r"(?P<n>a)(?<m>b)", r"(a)(b)"),  # numbered as Go numbers them; no nginx variable
        ('a\\\\b"', 'a\\\\b"'),  # PCRE text: the edge quotes it for nginx
        (r"(?is:a.)", r"(?is:a.)"),
    ],
)
def test_go_regexes_both_read_alike_are_written_for_pcre(go: str, pcre: str) -> None:
    assert to_pcre(go).text == pcre


@pytest.mark.parametrize(
    "go", [r"\v", r"(?=a)", r"(?P<n", r"\1", r"a{,3}", r"a{1001}", r"a*+", r"(?m)^a",
           r"\pL", r"\xe9", r"[[:foo:]]", r"a(?i)b", r"[\b]", r"\Z"],
)  # fmt: skip
def test_go_regexes_pcre_reads_otherwise_are_refused(go: str) -> None:
    with pytest.raises(NotPortable):
        to_pcre(go)
