"""Traefik's rule language: what nginx can express compiles to host sets by paths; anything else,
hostile input included, is one RuleError and never another exception."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certbotless.edge.render import render_nginx_conf
from certbotless.edge.validation import validate_nginx_conf
from certbotless.labels.traefik.labels import traefik_claims
from certbotless.labels.traefik.rules import (
    MAX_RULE_LENGTH,
    V2,
    Alternative,
    RuleError,
    compile_rule,
    default_priority,
    parse_v1_rule,
)
from certbotless.model import ServiceInfo
from certbotless.request_conditions import Check, RequestCondition
from tests.support.factories import CERTS_DIR, RESPONDER, certs_for


@pytest.mark.parametrize(
    ("rule", "alternatives"),
    [
        ("Host(`a.example.com`)", (Alternative(("a.example.com",)),)),
        ("Host(`a.example.com`) && PathPrefix(`/api`)",
         (Alternative(("a.example.com",), "/api"),)),
        ("Host(`a.example.com`) || Host(`b.example.com`)",
         (Alternative(("a.example.com", "b.example.com")),)),
        ('Host("a.example.com") && Path("/x")', (Alternative(("a.example.com",), "/x", True),)),
        ("Host(`a.example.com`) || Host(`b.example.com`) && PathPrefix(`/b`)",
         (Alternative(("a.example.com",)), Alternative(("b.example.com",), "/b"))),
        ("(Host(`a.example.com`) || Host(`b.example.com`)) && PathPrefix(`/b`)",
         (Alternative(("a.example.com", "b.example.com"), "/b"),)),
        ("Host(`a.example.com`) && PathPrefix(`/a`) && PathPrefix(`/a/b`)",
         (Alternative(("a.example.com",), "/a/b"),)),
        ("Host(`a.example.com`) && PathPrefix(`/a`) && Path(`/a/b`)",
         (Alternative(("a.example.com",), "/a/b", True),)),
        ("HostRegexp(`^a\\.example\\.com$`)", (Alternative(("a.example.com",)),)),
        ("!!Host(`a.example.com`)", (Alternative(("a.example.com",)),)),
        # De Morgan: !(!a || !b) is a && b.
        ("!(!Host(`a.example.com`) || !PathPrefix(`/x`))",
         (Alternative(("a.example.com",), "/x"),)),
        # Methods of one host and path are united; headers must agree.
        ("Host(`a.example.com`) && (Method(`GET`) || Method(`head`) || Method(`POST`)) "
         "&& Header(`X-Api`, `1`)",
         (Alternative(("a.example.com",), "/", False, ("GET", "HEAD", "POST"),
                      (("x-api", "1"),)),)),
        ("Host(`a.example.com`) && Method(`GET`) || Host(`a.example.com`)",
         (Alternative(("a.example.com",)),)),
        ("Host(`a.example.com`) && Method(`GET`) && Method(`POST`) || Host(`b.example.com`)",
         (Alternative(("b.example.com",)),)),
        ("Host(`a.example.com`) && Header(`X-A`, `1`) && Header(`x-a`, `2`)"
         " || Host(`b.example.com`)", (Alternative(("b.example.com",)),)),
    ],
)  # fmt: skip
def test_rules_nginx_can_express_compile(rule: str, alternatives: tuple[Alternative, ...]) -> None:
    assert compile_rule(rule) == alternatives


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        ("Host(`a.example.com`) && ClientIP(`10.0.0.0/255.0.0.0`)", "not an IP address or CIDR"),
        ("Host(`a.example.com`) && ClientIP(`fe80::1%eth0`)", "not an IP address or CIDR"),
        # Go's RE2 and nginx's PCRE: only what both read alike.
        ("Host(`a.example.com`) && HeaderRegexp(`X-A`, `(a)\\1`)", "`\\1` is not read alike"),
        ("Host(`a.example.com`) && HeaderRegexp(`X-A`, `a*+`)", "a repetition of a repetition"),
        ("Host(`a.example.com`) && HeaderRegexp(`X-A`, `a{,3}`)", "write {0,n} or `\\{`"),
        ("Host(`a.example.com`) && HeaderRegexp(`X-A`, `(?m)^a`)", "(?m… is not read alike"),
        ("Host(`a.example.com`) && HeaderRegexp(`X-A`, `[[:alfa:]]`)", "RE2's POSIX classes"),
        ("Host(`a.example.com`) && HeaderRegexp(`X-A`, `(a`)", "a group is not closed"),
        ("Host(`a.example.com`) && HeaderRegexp(`X-A`, `é`)", "printable ASCII"),
        ("Host(`a.example.com`) && HeaderRegexp(`X_A`, `a`)", "header names are letters"),
        # A query value is matched as sent (encoded): what counts characters is refused.
        ("Host(`a.example.com`) && QueryRegexp(`q`, `^a.b$`)", "`.` is read only as `.*`"),
        ("Host(`a.example.com`) && QueryRegexp(`q`, `[^a]+`)", "a negated class"),
        ("Host(`a.example.com`) && QueryRegexp(`q`, `(?i)a`)", "flags are not read here"),
        ("Host(`a.example.com`) && QueryRegexp(`q`, `a|^b`)", "`^` is read only first"),
        ("Host(`a.example.com`) && QueryRegexp(`q`, `^a|b`)", "top-level `|`"),
        ("Host(`a.example.com`) && Method(`GET PUT`)", "not an HTTP method"),
        ("Host(`a.example.com`) && Header(`X-A`)", "Header takes 2 value(s) in Traefik v3"),
        # Traefik refuses empty values in every matcher (CheckRule): they would widen the route.
        ("Host(`a.example.com`) && PathPrefix(``)", "PathPrefix has an empty value"),
        ("Host(`a.example.com`) && Path(``, `/x`)", "Path has an empty value"),
        ("Host(`a.example.com`) && Header(`X-A`, ``)", "Header has an empty value"),
        ("Host(`a.example.com`) && PathPrefix(`api`)", "does not start with a '/'"),
        # v3 takes one value per matcher, and its own matchers only.
        ("Host(`a.example.com`, `b.example.com`)", "Host takes 1 value(s) in Traefik v3 and has 2"),
        ("Host(`a.example.com`) && PathPrefix(`/a`, `/b`)", "set the router's ruleSyntax=v2"),
        ("Host(`a.example.com`) && Headers(`X-A`, `1`)", "Headers is a Traefik v2 matcher"),
        ("Host(`a.example.com`) && pathPrefix(`/a`)", "pathPrefix is not a Traefik v3 matcher"),
        ("Host(`a.example.com`) && Header(`X-A`, `$x`)", "printable ASCII without"),
        ("Host(`a.example.com`) && Host(`b.example.com`)", "can never match"),
        ("Host(`a.example.com`", "ends early"),
        ("Host(`a.example.com`) &&", "ends early"),
        ("Host(`a.example.com`) Host(`b`)", "unexpected"),
        ("Host('a.example.com')", "cannot read"),
        ("Host()", "has no value"),
        ("(" * 100 + "Host(`a`)" + ")" * 100, "nests deeper"),
        ("", "is empty"),
        ("Host(`a`) && " * 400 + "Host(`a`)", "characters long"),
    ],
)  # fmt: skip
def test_rules_nginx_cannot_express_are_one_error_naming_the_part(rule: str, words: str) -> None:
    with pytest.raises(RuleError, match=None) as raised:
        compile_rule(rule)
    assert words in str(raised.value)


@pytest.mark.parametrize(
    ("rule", "alternatives"),
    [
        ("Host(`a.example.com`, `b.example.com`)",
         (Alternative(("a.example.com", "b.example.com")),)),
        # gorilla/mux's host template without a {variable}: the names themselves
        ("HostRegexp(`a.example.com`, `b.example.com`)",
         (Alternative(("a.example.com", "b.example.com")),)),
        ("HOST(`a.example.com`) && (Method(`GET`, `head`) || Method(`POST`)) "
         "&& Headers(`X-Api`, `1`)",
         (Alternative(("a.example.com",), "/", False, ("GET", "HEAD", "POST"),
                      (("x-api", "1"),)),)),
    ],
)  # fmt: skip
def test_v2_syntax_reads_several_values_and_its_own_matchers(
    rule: str, alternatives: tuple[Alternative, ...]
) -> None:
    assert compile_rule(rule, V2) == alternatives


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        ("Host(`a.example.com`) && Header(`X-A`, `1`)", "Header is a Traefik v3 matcher"),
        ("Host(`a.example.com`) && PathPrefix(``)", "PathPrefix has an empty value"),
        ("Host(`a.example.com`) && Path(``, `/x`)", "Path has an empty value"),
    ],
)
def test_v2_syntax_refuses_what_traefik_v2_refuses(rule: str, words: str) -> None:
    with pytest.raises(RuleError, match=None) as raised:
        compile_rule(rule, V2)
    assert words in str(raised.value)


def test_disjunctions_that_explode_are_refused() -> None:
    rule = " && ".join(["(Host(`a.example.com`) || Host(`b.example.com`))"] * 10)
    with pytest.raises(RuleError, match="alternatives"):
        compile_rule(rule)


def test_priority_is_the_rules_length() -> None:
    assert default_priority("Host(`a.example.com`)") == 21


def test_v1_rules_become_v2_rules() -> None:
    assert parse_v1_rule("Host:a.example.com,b.example.com;PathPrefixStrip:/x") == (
        "Host(`a.example.com`, `b.example.com`) && PathPrefix(`/x`)", ("/x",),
    )  # fmt: skip
    with pytest.raises(RuleError, match="Headers:"):
        parse_v1_rule("Headers:X,Y")
    # Traefik 1 takes a path without its '/' and never routes to it: said so.
    with pytest.raises(RuleError, match=r"bar does not start with '/'.*write PathPrefix:/bar"):
        parse_v1_rule("Host:a.example.com;PathPrefix:bar")
    assert MAX_RULE_LENGTH == 4096


_ALPHABET = 'HostPathPrefixRegexpMethod()`"!&|, /.a\\-{}'


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=_ALPHABET, max_size=120) | st.text(max_size=60))
def test_hostile_rules_never_raise_anything_but_a_rule_error(rule: str) -> None:
    with contextlib.suppress(RuleError):
        compile_rule(rule)


# A routed service that the drawn labels then change.
ROUTED = {"traefik.http.routers.r.rule": "Host(`a.example.com`)",
          "traefik.http.services.s.loadbalancer.server.port": "80"}  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(
    st.sampled_from(["traefik.enable", "traefik.http.routers.r.rule",
                     "traefik.http.routers.r.middlewares", "traefik.http.routers.r.tls",
                     "traefik.http.routers.r.entrypoints", "traefik.http.routers.r.service",
                     "traefik.http.services.s.loadbalancer.server.port",
                     "traefik.http.middlewares.m.basicauth.users",
                     "traefik.http.middlewares.m.ipallowlist.sourcerange",
                     "traefik.http.middlewares.m.ratelimit.average",
                     "traefik.http.middlewares.m.stripprefix.prefixes",
                     "traefik.http.middlewares.m.headers.customresponseheaders.X",
                     "traefik.frontend.rule", "traefik.port"]),
    st.text(max_size=40)
    | st.sampled_from(["true", "m", "80", "Host(`a.example.com`)", "/api", "10.0.0.0/8",
                       "u:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="]),
))  # fmt: skip
def test_hostile_labels_give_problems_never_exceptions(changes: dict[str, str]) -> None:
    """Never an exception; a router guarded by a basic-auth or allowlist middleware is only
    ever served with that guard; and nginx accepts whatever is served."""
    labels = {**ROUTED, **changes}
    claims = traefik_claims([ServiceInfo("web", labels)], exposed_by_default=True)
    used = [n.strip() for n in labels.get("traefik.http.routers.r.middlewares", "").split(",")]
    routes = claims["web"].routes if "web" in claims else ()
    for route in routes:
        if "m" in used and "traefik.http.middlewares.m.basicauth.users" in labels:
            assert route.basic_auth is not None
        if "m" in used and "traefik.http.middlewares.m.ipallowlist.sourcerange" in labels:
            assert route.allow_from
    if routes:  # whatever was accepted, nginx accepts
        hosts = sorted({host for route in routes for host in route.hosts})
        validate_nginx_conf(render_nginx_conf(routes, certs_for(*hosts), RESPONDER, CERTS_DIR))


@pytest.mark.parametrize(
    ("rule", "syntax", "hosts", "conditions"),
    [
        ("PathPrefix(`/api`)", "v3", (), ()),  # every host
        ("Host(`a.example.com`) && !PathPrefix(`/admin`)", "v3", ("a.example.com",),
         (RequestCondition(Check.PATH_PREFIX, ("/admin",), negated=True),)),
        ("!Host(`a.example.com`)", "v3", (),
         (RequestCondition(Check.HOST, ("a.example.com",), negated=True),)),
        ("HostRegexp(`^[a-z]+\\.example\\.com$`)", "v3", (),
         (RequestCondition(Check.HOST_REGEXP, ("^[a-z]+\\.example\\.com$",), False,
                           "^[a-z]+\\.example\\.com\\z"),)),
        ("HostRegexp(`{sub:[a-z]+}.example.com`)", "v2", (),
         (RequestCondition(Check.HOST_REGEXP, ("{sub:[a-z]+}.example.com",), False,
                           "^([a-z]+)\\.example\\.com$"),)),
        ("Host(`a.example.com`) && PathRegexp(`^/v[0-9]+`)", "v3", ("a.example.com",),
         (RequestCondition(Check.PATH_REGEXP, ("^/v[0-9]+",), False, "^/v[0-9]+"),)),
    ],
)  # fmt: skip
def test_rules_without_a_host_negated_and_pattern_matchers_are_request_conditions(
    rule: str, syntax: str, hosts: tuple[str, ...], conditions: tuple[RequestCondition, ...]
) -> None:
    (alternative,) = compile_rule(rule, syntax)
    assert (alternative.hosts, alternative.conditions) == (hosts, conditions)


def test_alternatives_with_different_conditions_on_one_place_are_separate_routes() -> None:
    rule = "Host(`a.example.com`) && (Header(`X-A`, `1`) || Header(`X-A`, `2`))"
    assert [a.headers for a in compile_rule(rule)] == [(("x-a", "1"),), (("x-a", "2"),)]


def test_routers_alike_but_for_their_priority_keep_each_its_own() -> None:
    """The edge orders a host's routes by priority: merging routes of one service must not give
    one host the priority of another host's router."""
    r = "traefik.http.routers."
    labels = {
        "traefik.enable": "true",
        "traefik.http.services.s.loadbalancer.server.port": "80",
        f"{r}a.rule": "Host(`a.example.com`) && Path(`/x`)",
        f"{r}a.priority": "10",
        f"{r}b.rule": "Host(`b.example.com`) && Path(`/x`)",
        f"{r}b.priority": "20",
    }
    routes = traefik_claims([ServiceInfo("web", labels)])["web"].routes
    assert sorted((route.hosts, route.priority) for route in routes) == [
        (("a.example.com",), 10), (("b.example.com",), 20),
    ]  # fmt: skip


def test_a_cors_list_too_long_for_one_nginx_parameter_is_refused_and_nginx_t_passes() -> None:
    """120 long header names once made a parameter nginx cannot read: `nginx -t` failed for
    every host, so no roll went through for anyone."""
    from certbotless.edge.render import render_nginx_conf
    from certbotless.edge.validation import validate_nginx_conf
    from tests.support.factories import CERTS_DIR, RESPONDER, certs_for

    m = "traefik.http.middlewares.c.headers."
    names = ",".join(
        f"X-Custom-Header-Number-{i:03}-abcdefghijklmnopqrstuvwxyz" for i in range(120)
    )
    labels = {
        "traefik.enable": "true",
        "traefik.http.services.s.loadbalancer.server.port": "80",
        "traefik.http.routers.r.rule": "Host(`a.example.com`)",
        "traefik.http.routers.r.middlewares": "c",
        f"{m}accessControlAllowHeaders": names,
        f"{m}accessControlAllowOriginList": "https://a.example.com",
    }
    claims = traefik_claims([ServiceInfo("web", labels)])["web"]
    assert any("longer than 1000 characters" in p.message for p in claims.problems)
    files = render_nginx_conf(claims.routes, certs_for("a.example.com"), RESPONDER, CERTS_DIR)
    assert validate_nginx_conf(files) == ()
