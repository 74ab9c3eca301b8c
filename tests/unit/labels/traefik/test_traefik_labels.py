"""Traefik's labels as the seeds write them → the routes certbotless serves (issue 15, item 1).
Every case is rendered and checked by a real `nginx -t`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from certbotless.edge.mounts import HTPASSWD_DIR, NGINX_CONF_TARGET
from certbotless.edge.render import render_nginx_conf
from certbotless.edge.validation import validate_nginx_conf
from certbotless.labels.dialects import discovered
from certbotless.labels.settle import discover
from certbotless.labels.traefik.labels import traefik_claims
from certbotless.model import BasicAuth, Cors, Discovery, RateLimit, Route, ServiceInfo
from certbotless.rewrite_phase import RewritePhase, StripPrefixRegex
from certbotless.setting_values import rule_template
from certbotless.settings import Settings, SettingsError
from tests.support.factories import CERTS_DIR, RESPONDER, certs_for

STRIP_API = RewritePhase(strip_prefix_regex=StripPrefixRegex((("/api", 0),)))

T0 = datetime(2026, 1, 1, tzinfo=UTC)
HASH = "$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/"  # htpasswd -nb user password (apr1)


def service(name: str, labels: dict[str, str], stack: str = "site", minute: int = 0) -> ServiceInfo:
    return ServiceInfo(
        name, labels, ("net",), ("edge",), stack=stack, created_at=T0 + timedelta(minutes=minute)
    )


def find(services: list[ServiceInfo], exposed_by_default: bool = False) -> Discovery:
    return discover(services, foreign=traefik_claims(services, exposed_by_default))


def render_and_check(found: Discovery) -> dict[str, str]:
    hosts = sorted({host for route in found.routes for host in route.hosts})
    files = render_nginx_conf(found.routes, certs_for(*hosts), RESPONDER, CERTS_DIR)
    assert validate_nginx_conf(files) == ()
    return files


@dataclass(frozen=True)
class Case:
    labels: dict[str, str]
    routes: tuple[Route, ...]
    problems: tuple[str, ...] = ()  # words each problem holds ('|' between), in order
    exposed_by_default: bool = False
    others: tuple[ServiceInfo, ...] = field(default_factory=tuple)


R = "traefik.http.routers."
S = "traefik.http.services."
M = "traefik.http.middlewares."

CASES = {
    # Seed 000: a Flask API behind its nginx at a path, TLS on.
    "seed-000": Case(
        {
            "traefik.enable": "true",
            f"{R}app.tls": "true",
            f"{R}app.rule": "Host(`app.example.com`) && PathPrefix(`/service1`)",
            f"{S}app.loadbalancer.server.port": "80",
        },
        (Route("web", ("app.example.com",), 80, "/service1"),),
    ),
    # Seed 000 as written: `localhost` is no public name.
    "seed-000-localhost": Case(
        {
            "traefik.enable": "true",
            f"{R}app.tls": "true",
            f"{R}app.rule": "Host(`localhost`) && PathPrefix(`/service1`)",
            f"{S}app.loadbalancer.server.port": "80",
        },
        (),
        ("localhost is not a fully qualified hostname",),
    ),
    # Seed 003: Django's nginx on websecure with Traefik's resolver.
    "seed-003": Case(
        {
            "traefik.enable": "true",
            f"{R}nginx-web.rule": "Host(`mysite.com`)",
            f"{R}nginx-web.entrypoints": "websecure",
            f"{R}nginx-web.tls.certresolver": "letsencryptresolver",
            f"{S}nginx-web.loadbalancer.server.port": "80",
        },
        (Route("web", ("mysite.com",), 80),),
    ),
    # Seed 001: model APIs under one host, plain HTTP as written, no traefik.enable.
    "seed-001-sub-path": Case(
        {
            f"{S}en_core_web_sm.loadbalancer.server.port": "80",
            f"{R}en_core_web_sm.rule": "Host(`api.nlpcloud.io`) && PathPrefix(`/en_core_web_sm`)",
        },
        (Route("web", ("api.nlpcloud.io",), 80, "/en_core_web_sm", redirect_to_https=False),),
        exposed_by_default=True,
    ),
    "seed-001-not-enabled": Case(
        {
            f"{S}en_core_web_sm.loadbalancer.server.port": "80",
            f"{R}en_core_web_sm.rule": "Host(`api.nlpcloud.io`) && PathPrefix(`/en_core_web_sm`)",
        },
        (),
        ("no traefik.enable=true",),
    ),
    "seed-001-forward-auth": Case(
        {
            f"{S}en_core_web_sm.loadbalancer.server.port": "80",
            f"{R}en_core_web_sm.rule": "Host(`api.nlpcloud.io`) && PathPrefix(`/en_core_web_sm`)",
            f"{M}forward_auth_api_en_core_web_sm.forwardauth.address": "https://api.nlpcloud.io/auth/",
            f"{R}en_core_web_sm.middlewares": "forward_auth_api_en_core_web_sm",
        },
        (
            Route(
                "web",
                ("api.nlpcloud.io",),
                80,
                "/en_core_web_sm",
                redirect_to_https=False,
                auth_url="https://api.nlpcloud.io/auth/",
            ),
        ),
        exposed_by_default=True,
    ),
    # Seed 001's error pages: the middleware is on Traefik's own service, the pages' service
    # is named by its Traefik service.
    "seed-001-error-pages": Case(
        {
            f"{R}corporate.rule": "Host(`nlpcloud.io`)",
            f"{R}corporate.middlewares": "handle-http-error",
            f"{S}corporate.loadbalancer.server.port": "80",
        },
        (Route("web", ("nlpcloud.io",), 80, redirect_to_https=False),),
        exposed_by_default=True,
        others=(
            service(
                "proxy",
                {
                    f"{M}handle-http-error.errors.status": "400-599",
                    f"{M}handle-http-error.errors.service": "errors_service",
                    f"{M}handle-http-error.errors.query": "/{status}.html",
                    "certbotless.share": "web",  # its middleware, for the router's service
                },
            ),
            service("errors", {f"{S}errors_service.loadbalancer.server.port": "8080"}),
        ),
    ),
    # Seed 001's upload limit (on the router that has the rule).
    "seed-001-upload-limit": Case(
        {
            f"{R}corporate.rule": "Host(`nlpcloud.io`)",
            f"{S}c.loadbalancer.server.port": "80",
            f"{M}upload-limit.buffering.maxRequestBodyBytes": "20000000",
            f"{R}corporate.middlewares": "upload-limit",
        },
        (Route("web", ("nlpcloud.io",), 80, redirect_to_https=False, max_body_size="20000000"),),
        exposed_by_default=True,
    ),
    # Seed 001 as written: the limit is on a router with no rule.
    "seed-001-upload-limit-as-written": Case(
        {
            f"{R}corporate.rule": "Host(`nlpcloud.io`)",
            f"{S}c.loadbalancer.server.port": "80",
            f"{M}upload-limit.buffering.maxRequestBodyBytes": "20000000",
            f"{R}backoffice.middlewares": "upload-limit",
        },
        (Route("web", ("nlpcloud.io",), 80, redirect_to_https=False),),
        ("router backoffice has no rule",),
        exposed_by_default=True,
    ),
    # Seed 001's dashboard, without a status page: api@internal goes nowhere.
    "seed-001-dashboard": Case(
        {
            f"{R}dashboard.rule": "Host(`dashboard.nlpcloud.io`)",
            f"{R}dashboard.service": "api@internal",
            f"{M}auth.basicauth.users": f"admin:{HASH}",
            f"{R}dashboard.middlewares": "auth",
        },
        (),
        ("CERTBOTLESS_STATUS_LISTEN",),
        exposed_by_default=True,
    ),
    # The same basic auth on an ordinary service.
    "basic-auth": Case(
        {
            "traefik.enable": "true",
            f"{R}admin.rule": "Host(`admin.example.com`)",
            f"{R}admin.entrypoints": "websecure",
            f"{R}admin.tls": "true",
            f"{S}admin.loadbalancer.server.port": "9000",
            f"{M}auth.basicauth.users": f"admin:{HASH},ops:{{SHA}}W6ph5Mm5Pz8GgiULbPgzG37mj9g=",
            f"{M}auth.basicauth.removeheader": "true",
            f"{R}admin.middlewares": "auth@swarm",
        },
        (
            Route(
                "web",
                ("admin.example.com",),
                9000,
                basic_auth=BasicAuth(
                    (f"admin:{HASH}", "ops:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="),
                    "traefik",
                    remove_header=True,
                ),
            ),
        ),
    ),
    "basic-auth-users-file": Case(
        {
            "traefik.enable": "true",
            f"{R}admin.rule": "Host(`admin.example.com`)",
            f"{S}admin.loadbalancer.server.port": "9000",
            f"{M}auth.basicauth.usersfile": "/run/secrets/users",
            f"{R}admin.middlewares": "auth",
        },
        (
            Route(
                "web",
                ("admin.example.com",),
                9000,
                redirect_to_https=False,
                basic_auth=BasicAuth((), "traefik", secret="users"),
            ),
        ),
    ),
    "basic-auth-users-and-users-file-merged": Case(
        {
            "traefik.enable": "true",
            f"{R}admin.rule": "Host(`admin.example.com`)",
            f"{S}admin.loadbalancer.server.port": "9000",
            f"{M}auth.basicauth.usersfile": "/run/secrets/users",
            f"{M}auth.basicauth.users": f"admin:{HASH}",
            f"{R}admin.middlewares": "auth",
        },
        (
            Route(
                "web",
                ("admin.example.com",),
                9000,
                redirect_to_https=False,
                basic_auth=BasicAuth((f"admin:{HASH}",), "traefik", secret="users"),
            ),
        ),
    ),
    "allowlist-rate-limit-prefixes-headers": Case(
        {
            "traefik.enable": "true",
            f"{R}api.rule": "(Host(`api.example.com`) || Host(`www.example.com`)) && "
            "PathPrefix(`/api`)",
            f"{R}api.entrypoints": "web,websecure",
            f"{R}api.tls": "true",
            f"{S}api.loadbalancer.server.port": "8000",
            f"{R}api.middlewares": "inside,slow,strip,hdrs,gz",
            f"{M}inside.ipallowlist.sourcerange": "10.0.0.0/8, 192.168.1.7",
            f"{M}slow.ratelimit.average": "100",
            f"{M}slow.ratelimit.burst": "50",
            f"{M}strip.stripprefix.prefixes": "/api",
            f"{M}hdrs.headers.customrequestheaders.X-Script-Name": "/api",
            f"{M}hdrs.headers.customresponseheaders.X-Powered-By": "",
            f"{M}hdrs.headers.framedeny": "true",
            f"{M}hdrs.headers.stsseconds": "31536000",
            f"{M}gz.compress": "true",
        },
        (
            Route(
                "web",
                ("api.example.com", "www.example.com"),
                8000,
                "/api",
                allow_from=("10.0.0.0/8", "192.168.1.7/32"),
                rate_limit=RateLimit(6000, 49),  # nginx's burst: Traefik's less the first
                rewrite_phase=STRIP_API,  # stripPrefix: a literal stripPrefixRegex
                request_headers=(("X-Script-Name", "/api"),),
                response_headers=(("X-Powered-By", ""), ("X-Frame-Options", "DENY")),
                strict_transport="max-age=31536000",
                compress=True,
                compress_min_bytes=1024,  # Traefik's default minResponseBodyBytes
                compress_encodings=("gzip", "br", "zstd"),  # Traefik's default encodings
                compress_skipped_types=("application/grpc",),  # Traefik never compresses gRPC
            ),
        ),
        # What nginx's gzip cannot do, said on the route (which is served).
        ("compress|status 200, 403 and 404 only|201", "compress|prefers br or zstd gets gzip"),
    ),
    # Traefik's entry point (no trusted IPs, as the edge) removed the client's X-Forwarded-For:
    # depth finds no address, and nobody gets in.
    "allowlist-depth-lets-nobody-in": Case(
        {
            "traefik.enable": "true",
            f"{R}a.rule": "Host(`a.example.com`)",
            f"{S}a.loadbalancer.server.port": "80",
            f"{R}a.middlewares": "inside",
            f"{M}inside.ipwhitelist.sourcerange": "10.0.0.0/8",
            f"{M}inside.ipwhitelist.ipstrategy.depth": "2",
        },
        (
            Route(
                "web",
                ("a.example.com",),
                80,
                allow_from=("127.0.0.255/32",),
                redirect_to_https=False,
            ),
        ),
    ),
    "unknown-middleware-refused": Case(
        {
            "traefik.enable": "true",
            f"{R}a.rule": "Host(`a.example.com`)",
            f"{S}a.loadbalancer.server.port": "80",
            f"{R}a.middlewares": "sso@file",
        },
        (),
        (
            "no Traefik dynamic-configuration file is given|CERTBOTLESS_TRAEFIK_DYNAMIC_CONFIG"
            "|not routed at all",
        ),
    ),
    "circuit-breaker-served-without": Case(
        {
            "traefik.enable": "true",
            f"{R}a.rule": "Host(`a.example.com`)",
            f"{S}a.loadbalancer.server.port": "80",
            f"{R}a.middlewares": "cb",
            f"{M}cb.circuitbreaker.expression": "NetworkErrorRatio() > 1",  # Traefik's: 1.0
            f"{R}a.tls": "true",
        },
        (Route("web", ("a.example.com",), 80),),
        ("compared with a float|served without it",),
    ),
    "retry-inflight-replacepathregex": Case(
        {
            "traefik.enable": "true",
            f"{R}a.rule": "Host(`a.example.com`)",
            f"{S}a.loadbalancer.server.port": "80",
            f"{R}a.middlewares": "again,few,moved",
            f"{M}again.retry.attempts": "3",
            f"{M}again.retry.initialinterval": "0",
            f"{M}few.inflightreq.amount": "10",
            f"{M}moved.replacepathregex.regex": "^/old/(.*)",
            f"{M}moved.replacepathregex.replacement": "/new/${1}",
            f"{R}a.tls": "true",
        },
        (
            Route(
                "web",
                ("a.example.com",),
                80,
                retries=3,
                max_connections=10,
                replace_path=("^(?>^/old/(.*))([\\s\\S]*)$", "/new/$1$2"),  # and the rest
            ),
        ),
    ),
    "cors": Case(
        {
            "traefik.enable": "true",
            f"{R}a.rule": "Host(`a.example.com`)",
            f"{S}a.loadbalancer.server.port": "80",
            f"{R}a.middlewares": "cors",
            f"{M}cors.headers.accessControlAllowOriginList": "https://x.example.com,*",
            f"{M}cors.headers.accessControlAllowMethods": "get,OPTIONS",
            f"{M}cors.headers.accessControlExposeHeaders": "X-Total",
            f"{M}cors.headers.accessControlMaxAge": "100",
            f"{M}cors.headers.customResponseHeaders.X-Served-By": "edge",
            f"{R}a.tls": "true",
        },
        (
            Route(
                "web",
                ("a.example.com",),
                80,
                response_headers=(("X-Served-By", "edge"),),
                cors=Cors(
                    ("https://x.example.com", "*"),
                    ("get", "OPTIONS"),  # as written: Traefik sends them so
                    (),
                    ("X-Total",),
                    max_age=100,
                ),
            ),
        ),
    ),
    "cors-origin-pattern-served-without": Case(
        {
            "traefik.enable": "true",
            f"{R}a.rule": "Host(`a.example.com`)",
            f"{S}a.loadbalancer.server.port": "80",
            f"{R}a.middlewares": "cors",
            f"{M}cors.headers.accessControlAllowOriginList": "https://*.example.com",
            f"{R}a.tls": "true",
        },
        (Route("web", ("a.example.com",), 80),),
        ("is not an origin|served without it",),
    ),
    "replacepath": Case(
        {
            "traefik.enable": "true",
            f"{R}a.rule": "Host(`a.example.com`) && Path(`/health`)",
            f"{S}a.loadbalancer.server.port": "80",
            f"{R}a.middlewares": "to",
            f"{M}to.replacepath.path": "/api/status",
            f"{R}a.tls": "true",
        },
        (
            Route(
                "web",
                ("a.example.com",),
                80,
                path="/health",
                exact_path=True,
                replace_path=("^.*$", "/api/status"),
            ),
        ),
    ),
    # A named group is numbered as Go numbers it and written unnamed: no nginx variable
    # ($upstream) is shadowed.
    "replacepathregex-named-group-written-unnamed": Case(
        {
            "traefik.enable": "true",
            f"{R}a.rule": "Host(`a.example.com`)",
            f"{S}a.loadbalancer.server.port": "80",
            f"{R}a.middlewares": "moved",
            f"{M}moved.replacepathregex.regex": "^/(?P<upstream>.*)",
            f"{M}moved.replacepathregex.replacement": "/$1",
            f"{R}a.tls": "true",
        },
        (Route("web", ("a.example.com",), 80, replace_path=("^(?>^/(.*))([\\s\\S]*)$", "/$1$2")),),
    ),
    # The usual pair: an HTTP router redirecting to HTTPS, and the HTTPS one.
    "redirect-pair-and-chain": Case(
        {
            "traefik.enable": "true",
            f"{R}http.rule": "Host(`a.example.com`)",
            f"{R}http.entrypoints": "web",
            f"{R}http.middlewares": "to-https",
            f"{M}to-https.redirectscheme.scheme": "https",
            f"{M}to-https.redirectscheme.permanent": "true",
            f"{R}https.rule": "Host(`a.example.com`) && Path(`/login`)",
            f"{R}https.entrypoints": "websecure",
            f"{R}https.tls.certresolver": "le",
            f"{R}https.middlewares": "secured",
            f"{M}secured.chain.middlewares": "add,big",
            f"{M}add.addprefix.prefix": "/app",
            f"{M}big.buffering.maxRequestBodyBytes": "1048576",
            f"{S}a.loadbalancer.server.port": "3000",
            f"{S}a.loadbalancer.server.scheme": "https",
        },
        (
            Route(
                "web",
                ("a.example.com",),
                3000,
                "/login",
                exact_path=True,
                upstream_scheme="https",
                add_prefix="/app",
                max_body_size="1048576",
                redirect_statuses=(301, 308),  # the HTTP router's permanent redirectScheme
            ),
        ),
    ),
    # Seed 002: Traefik 1's labels.
    "seed-002-v1": Case(
        {
            "traefik.frontend.rule": "Host:proxy.example.com;PathPrefixStrip:/dash",
            "traefik.port": "8080",
            "traefik.docker.network": "frontend",
            "traefik.frontend.redirect.entryPoint": "https",
            "traefik.frontend.auth.basic.users": f"admin:{HASH}",
        },
        (
            Route(
                "web",
                ("proxy.example.com",),
                8080,
                "/dash",
                strip_prefixes=("/dash",),
                basic_auth=BasicAuth((f"admin:{HASH}",)),
                redirect_statuses=(302, 307),  # Traefik 1.7: frontend.redirect.permanent=false
            ),
        ),
        exposed_by_default=True,
    ),
    "method-and-header-narrow-the-route": Case(
        {
            "traefik.enable": "true",
            f"{R}a.rule": "Host(`a.example.com`) && Method(`POST`) && Header(`X-Api`, `v2`)",
            f"{R}a.tls": "true",
            f"{R}b.rule": "Host(`a.example.com`) && Method(`PUT`) && Headers(`X-Api`, `v2`)",
            f"{R}b.ruleSyntax": "v2",
            f"{R}b.tls": "true",
            f"{S}a.loadbalancer.server.port": "80",
        },
        (  # one route per router: the edge tries them in Traefik's order
            Route(
                "web", ("a.example.com",), 80, methods=("POST",), match_headers=(("x-api", "v2"),)
            ),
            Route(
                "web", ("a.example.com",), 80, methods=("PUT",), match_headers=(("x-api", "v2"),)
            ),
        ),
    ),
    "path-regexp-go-and-pcre-read-differently": Case(
        {
            "traefik.enable": "true",
            f"{R}a.rule": "Host(`a.example.com`) && PathRegexp(`^/v(?=1)`)",
            f"{S}a.loadbalancer.server.port": "80",
        },
        (),
        ("PathRegexp(`^/v(?=1)`): (?=… is not read alike by RE2 and PCRE",),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_traefik_label_sets_become_routes_that_pass_nginx_t(name: str) -> None:
    case = CASES[name]
    expected: tuple[Route, ...]
    found = find([service("web", case.labels), *case.others], case.exposed_by_default)
    if name == "seed-001-error-pages":
        (route,) = found.routes
        assert route.error_pages is not None
        assert route.error_pages.url == "http://errors:8080/{status}.html"
        assert route.error_pages.statuses[0] == 400
        found = Discovery(found.routes, found.specs, ())
        expected = (
            Route(
                "web", ("nlpcloud.io",), 80, redirect_to_https=False, error_pages=route.error_pages
            ),
        )
    else:
        expected = case.routes
    assert found.routes == expected
    assert len(found.problems) == len(case.problems), [str(p) for p in found.problems]
    for problem, words in zip(found.problems, case.problems, strict=True):
        assert all(word in str(problem) for word in words.split("|")), str(problem)
    if expected:
        assert {spec.domains for spec in found.specs} >= {expected[0].hosts}
        render_and_check(found)


def test_security_middlewares_render_as_nginx_access_rules() -> None:
    found = find([service("web", CASES["allowlist-rate-limit-prefixes-headers"].labels)])
    files = render_and_check(found)
    text = "".join(files.values())
    assert "allow 10.0.0.0/8;" in text and "deny all;" in text
    assert "limit_req_zone $binary_remote_addr zone=certbotless_" in files[NGINX_CONF_TARGET]
    assert "rate=6000r/m;" in files[NGINX_CONF_TARGET]
    assert "limit_req_status 429;" in text and "burst=49 nodelay;" in text
    assert r'rewrite "^(?>/api)(?<=[\s\S])(/[\s\S]*)$" $1 break;' in text
    assert 'proxy_set_header X-Script-Name "/api";' in text
    assert "proxy_hide_header X-Powered-By;" in text
    # The router's own STS (stsSeconds), on its HTTPS locations only (one per host).
    assert text.count('add_header Strict-Transport-Security "max-age=31536000" always;') == 2
    # Traefik's compress: no gzip for HEAD or gRPC requests, its Vary.
    assert "if ($certbotless_compress_skipped) { gzip off; }" in text
    assert "add_header Vary $certbotless_compress_vary_gzip_br_zstd always;" in text
    assert 'map "$request_method:$content_type" $certbotless_compress_skipped' in text


def test_basic_auth_users_are_a_file_of_the_configuration() -> None:
    found = find([service("web", CASES["basic-auth"].labels)])
    files = render_and_check(found)
    (target,) = [t for t in files if t.startswith(HTPASSWD_DIR)]
    assert files[target] == f"admin:{HASH}\nops:{{SHA}}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n"
    text = "".join(files.values())
    assert f"auth_basic_user_file {target};" in text
    assert 'proxy_set_header Authorization "";' in text


def test_an_older_native_claim_keeps_its_host_against_a_traefik_one() -> None:
    native = service(
        "shop_web",
        {"certbotless.domains": "shop.example.com", "certbotless.port": "80"},
        "shop",
        minute=0,
    )
    traefik = service(
        "evil_web",
        {
            "traefik.enable": "true",
            f"{R}x.rule": "Host(`shop.example.com`)",
            f"{S}x.loadbalancer.server.port": "80",
        },
        "evil",
        minute=1,
    )
    found = find([traefik, native])
    assert [route.service for route in found.routes] == ["shop_web"]
    assert any("belongs to shop_web, which claimed it first" in str(p) for p in found.problems)


def test_an_older_traefik_claim_keeps_its_host_against_a_native_one() -> None:
    traefik = service(
        "shop_web",
        {
            "traefik.enable": "true",
            f"{R}x.rule": "Host(`shop.example.com`)",
            f"{S}x.loadbalancer.server.port": "80",
        },
        "shop",
        minute=0,
    )
    native = service(
        "evil_web",
        {"certbotless.domains": "shop.example.com", "certbotless.port": "80"},
        "evil",
        minute=1,
    )
    found = find([native, traefik])
    assert [route.service for route in found.routes] == ["shop_web"]


def test_a_service_with_both_dialects_is_read_as_certbotless() -> None:
    both = service(
        "web",
        {
            "certbotless.domains": "a.example.com",
            "certbotless.port": "80",
            "traefik.enable": "true",
            f"{R}x.rule": "Host(`b.example.com`)",
            f"{S}x.loadbalancer.server.port": "80",
        },
    )
    found = find([both])
    assert [route.hosts for route in found.routes] == [("a.example.com",)]
    (problem,) = found.problems
    assert "both certbotless.* and traefik.* labels" in str(problem)


def test_the_dialects_setting_chooses_what_is_read() -> None:
    services = [
        service("a", {"certbotless.domains": "a.example.com", "certbotless.port": "80"}),
        service("b", CASES["seed-003"].labels, minute=1),
    ]
    both = discovered(Settings(), services, None)
    assert {route.service for route in both.routes} == {"a", "b"}
    only = Settings.from_env({"CERTBOTLESS_LABEL_DIALECTS": "traefik"})
    assert {route.service for route in discovered(only, services, None).routes} == {"b"}
    native = Settings.from_env({"CERTBOTLESS_LABEL_DIALECTS": "certbotless"})
    assert {route.service for route in discovered(native, services, None).routes} == {"a"}
    with pytest.raises(SettingsError, match="LABEL_DIALECTS"):
        Settings.from_env({"CERTBOTLESS_LABEL_DIALECTS": "nginx-proxy"})
    exposed = Settings.from_env({"CERTBOTLESS_TRAEFIK_EXPOSED_BY_DEFAULT": "true"})
    assert exposed.traefik_exposed_by_default


def test_traefik_enable_false_is_silent_even_when_exposed_by_default() -> None:
    labels = {**CASES["seed-003"].labels, "traefik.enable": "false"}
    found = find([service("web", labels)], exposed_by_default=True)
    assert (found.routes, found.problems) == ((), ())


def test_priority_picks_between_a_services_routers_on_one_path() -> None:
    labels = {
        "traefik.enable": "true",
        f"{S}a.loadbalancer.server.port": "80",
        f"{R}short.rule": "Host(`a.example.com`)",
        f"{R}short.tls": "true",
        f"{R}long.rule": "Host(`a.example.com`) && PathPrefix(`/`)",
        f"{R}long.middlewares": "big",
        f"{R}long.tls": "true",
        f"{M}big.buffering.maxRequestBodyBytes": "5",
    }
    (route,) = find([service("web", labels)]).routes
    assert route.max_body_size == "5"  # the longer rule wins, as in Traefik
    (route,) = find([service("web", {**labels, f"{R}short.priority": "1000"})]).routes
    assert route.max_body_size is None


def test_a_traefik_service_sharing_no_network_with_the_edge_is_reported_not_certified() -> None:
    edge = ServiceInfo("edge_nginx", {}, ("edge-net",), ("edge",), stack="edge")
    alone = ServiceInfo("web", CASES["seed-003"].labels, ("other",), ("other",), stack="site")
    found = discover([edge, alone], "edge_nginx", foreign=traefik_claims([edge, alone]))
    assert (found.routes, found.specs) == ((), ())
    (problem,) = found.problems
    assert "shares no network with the edge" in str(problem)


def test_tls_domains_are_reported_and_the_rule_hosts_certified() -> None:
    labels = {**CASES["seed-003"].labels, f"{R}nginx-web.tls.domains[0].main": "*.mysite.com"}
    found = find([service("web", labels)])
    assert [spec.domains for spec in found.specs] == [("mysite.com",)]
    assert [problem.label for problem in found.problems] == [f"{R}nginx-web.tls.domains[0].main"]


def test_tls_options_no_file_defines_refuse_the_router() -> None:
    """They may ask for client certificates: never served without them."""
    labels = {**CASES["seed-003"].labels, f"{R}nginx-web.tls.options": "modern@file"}
    found = find([service("web", labels)])
    assert found.routes == ()
    (problem,) = found.problems
    assert problem.label == f"{R}nginx-web.tls.options"
    assert "defines no tls.options.modern" in problem.message


def test_services_of_other_providers_are_refused() -> None:
    labels = {**CASES["seed-003"].labels, f"{R}nginx-web.service": "nginx-web@file"}
    found = find([service("web", labels)])
    assert found.routes == ()
    (problem,) = found.problems
    assert "file provider" in str(problem)


def test_an_http_router_without_the_https_routers_auth_is_not_merged_open() -> None:
    labels = {
        "traefik.enable": "true",
        f"{S}a.loadbalancer.server.port": "80",
        f"{R}plain.rule": "Host(`a.example.com`)",
        f"{R}plain.entrypoints": "web",
        f"{R}secure.rule": "Host(`a.example.com`)",
        f"{R}secure.tls": "true",
        f"{R}secure.middlewares": "auth",
        f"{M}auth.basicauth.users": f"ops:{HASH}",
    }
    found = find([service("web", labels)])
    assert found.routes == ()
    (problem,) = found.problems
    assert "other access middlewares" in str(problem)
    # With the same guard on both, one route, served over both schemes, guarded.
    (route,) = find([service("web", {**labels, f"{R}plain.middlewares": "auth"})]).routes
    assert route.basic_auth is not None and not route.redirect_to_https


def test_a_users_file_is_the_secret_the_defining_service_mounts_there() -> None:
    """basicauth.usersFile=/run/secrets/htpasswd, as Traefik's container had it: the secret the
    service mounts at that target (a stack file may name it by its content hash), before the
    names <target> and <stack>_<target>."""
    labels = {
        "traefik.enable": "true",
        f"{R}admin.rule": "Host(`admin.example.com`)",
        f"{S}admin.loadbalancer.server.port": "9000",
        f"{M}auth.basicauth.usersfile": "/run/secrets/htpasswd",
        f"{R}admin.middlewares": "auth",
    }
    hashed = "shop_htpasswd_82e847d5"
    web = ServiceInfo("shop_web", labels, ("net",), ("edge",), stack="shop",
                      secret_mounts=(("htpasswd", hashed),))  # fmt: skip
    settings = Settings(user_secrets=re.compile(r"shop_htpasswd_[0-9a-f]{8}"))
    (route,) = discovered(settings, [web], None, frozenset({hashed, "htpasswd"})).routes
    assert route.basic_auth is not None and route.basic_auth.secret == hashed
    # Without the mount, by name (here nothing of that name may be mounted: refused).
    unmounted = ServiceInfo("shop_web", labels, ("net",), ("edge",), stack="shop")
    found = discovered(settings, [unmounted], None, frozenset({hashed}))
    assert found.routes == () and "no Swarm secret is named htpasswd" in str(found.problems)


def test_labels_that_are_not_traefiks_are_none_of_the_dialects_business() -> None:
    """`docker stack deploy` adds `com.docker.stack.image` to every service; an operator's own
    labels sit beside Traefik's. Neither is a Traefik label "not read" (seen on the real swarm:
    it made a problem, and an alert, for every Traefik-labelled service of a stack)."""
    labels = {
        "com.docker.stack.image": "certbotless-demo-app:local",
        "com.example.team": "web",
        "traefik.enable": "true",
        "traefik.http.routers.app.rule": "Host(`stack.example.test`)",
        "traefik.http.services.app.loadbalancer.server.port": "8000",
    }
    claims = traefik_claims([service("app", labels)])
    assert [problem for claim in claims.values() for problem in claim.problems] == []


def test_v2_rules_are_read_under_the_rule_syntax_the_setting_gives() -> None:
    """CERTBOTLESS_TRAEFIK_RULE_SYNTAX is Traefik's core.defaultRuleSyntax: stacks written for
    Traefik v2 keep their several-value matchers when it says v2; a router's own ruleSyntax
    label still wins."""
    labels = {
        "traefik.enable": "true",
        "traefik.http.routers.r.rule": "Host(`a.example.com`, `b.example.com`)",
        "traefik.http.services.s.loadbalancer.server.port": "80",
    }
    services = [ServiceInfo("app_web", labels, ("edge",), ("edge",))]
    v3 = discovered(Settings.from_env({}), services, edge=None)
    assert v3.routes == () and "v2" in v3.problems[0].message
    v2 = discovered(Settings.from_env({"CERTBOTLESS_TRAEFIK_RULE_SYNTAX": "v2"}), services, None)
    assert v2.problems == ()
    assert sorted(h for route in v2.routes for h in route.hosts) == [
        "a.example.com",
        "b.example.com",
    ]
    pinned = [ServiceInfo("app_web", {**labels, "traefik.http.routers.r.ruleSyntax": "v3"},
                          ("edge",), ("edge",))]  # fmt: skip
    assert discovered(Settings.from_env({"CERTBOTLESS_TRAEFIK_RULE_SYNTAX": "v2"}), pinned,
                      None).routes == ()  # fmt: skip


def test_a_service_scheme_is_read_whatever_the_case_of_its_label() -> None:
    """Traefik's labels are case-insensitive (its own test writes `LoadBalancer.server.scheme`):
    a scheme spelled so was once not seen, and the route answered 502 without a word."""
    labels = {
        "traefik.enable": "true",
        f"{R}r.rule": "Host(`a.example.com`)",
        "traefik.http.services.s.LoadBalancer.server.port": "8080",
        "traefik.http.services.s.LoadBalancer.server.scheme": "wss",
    }
    found = find([service("web", labels)])
    assert found.routes == ()
    (problem,) = found.problems
    assert problem.label == "traefik.http.services.s.LoadBalancer.server.scheme"
    assert "wss" in problem.message
    for scheme in ("HTTPS", "h2c"):
        spelled = {**labels, "traefik.http.services.s.LoadBalancer.server.scheme": scheme}
        (route,) = find([service("web", spelled)]).routes
        assert route.upstream_scheme == scheme.lower()


@pytest.mark.parametrize("spelled", ["loadbalancer.server.url", "LoadBalancer.server.url"])
def test_a_service_with_a_server_url_is_refused_unless_the_operator_allows_it(
    spelled: str,
) -> None:
    """Traefik proxies such a service to that URL, not to the Swarm service's tasks; certbotless
    does only where CERTBOTLESS_TRAEFIK_SERVER_URLS allows it (tests/unit/labels/traefik/
    test_traefik_server_urls.py), and by default refuses it by that setting's name."""
    labels = {
        "traefik.enable": "true",
        f"{R}r.rule": "Host(`a.example.com`)",
        f"{S}s.{spelled}": "http://1.2.3.4:5678",
    }
    found = find([service("web", labels)])
    assert found.routes == ()
    (problem,) = found.problems
    assert problem.label == f"{S}s.{spelled}"
    assert "CERTBOTLESS_TRAEFIK_SERVER_URLS" in problem.message and "server.port" in problem.message
    # Beside a port, Traefik refuses the service whatever the setting.
    found = find([service("web", {**labels, f"{S}s.loadbalancer.server.port": "80"})])
    assert found.routes == ()
    assert [p.label for p in found.problems] == [f"{S}s.loadbalancer.server.port"]
    # The router Traefik makes by its default rule for the service is refused the same way.
    url_only = [service("web", {f"{S}s.{spelled}": "http://1.2.3.4:5678"})]
    template = rule_template("Host(`{{ normalize .Name }}.example.com`)", "TRAEFIK_DEFAULT_RULE")
    claims = traefik_claims(url_only, exposed_by_default=True, default_rule=template)["web"]
    assert claims.routes == () and [p.label for p in claims.problems] == [f"{S}s.{spelled}"]


def test_a_path_change_before_the_plain_redirect_is_refused_by_name() -> None:
    """Traefik's redirect router applies its stripPrefix first (its Location has the stripped
    path); the edge's plain-HTTP redirect keeps the request's, so that order is refused."""
    labels = {
        "traefik.enable": "true",
        f"{R}http.rule": "Host(`a.example.com`)",
        f"{R}http.entrypoints": "web",
        f"{R}http.middlewares": "strip,to-https",
        f"{M}strip.stripprefix.prefixes": "/api",
        f"{M}to-https.redirectscheme.scheme": "https",
        f"{R}https.rule": "Host(`a.example.com`)",
        f"{R}https.entrypoints": "websecure",
        f"{R}https.tls": "true",
        f"{S}a.loadbalancer.server.port": "3000",
    }
    found = find([service("web", labels)])
    assert found.routes == ()
    (problem,) = found.problems
    assert "strip is listed before the redirectScheme to-https" in problem.message
    reordered = {**labels, f"{R}http.middlewares": "to-https,strip"}
    assert len(find([service("web", reordered)]).routes) == 1


def test_a_tls_router_on_an_ip_address_gets_a_certificate_of_the_shortlived_profile() -> None:
    found = find([service("t", {
        "traefik.enable": "true", "traefik.http.routers.r.rule": "Host(`[::1]`)",
        "traefik.http.routers.r.tls": "true",
        "traefik.http.services.s.loadbalancer.server.port": "80",
    })])  # fmt: skip
    assert not found.problems
    assert [(s.name, s.domains, s.profile) for s in found.specs] == [
        ("0--1", ("::1",), "shortlived")
    ]
    assert [route.hosts for route in found.routes] == [("::1",)]
    render_and_check(found)
