"""certbotless's own labels for what Traefik's middlewares introduced (issue 15, item 2): basic
auth from a Swarm secret, IP allowlist, rate limit, extra headers, strip and add prefix. They
compile to the same routes as the Traefik dialect, render to configurations `nginx -t` passes,
and a real nginx on loopback answers as they say."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certbotless.edge.deployer import edge_references, with_their_secrets
from certbotless.edge.mounts import HTPASSWD_DIR, HTPASSWD_SECRETS_DIR, NGINX_CONF_TARGET
from certbotless.edge.render import render_nginx_conf
from certbotless.edge.rollout import swap_references
from certbotless.edge.validation import validate_nginx_conf
from certbotless.labels.settle import discover
from certbotless.labels.traefik.labels import traefik_claims
from certbotless.model import BasicAuth, Discovery, ObjectKind, RateLimit, Route, ServiceInfo
from tests.support.edge_nginx import get, serve_routes
from tests.support.factories import CERTS_DIR, RESPONDER, certs_for

HOST = "app.example.com"
BASE = {"certbotless.domains": HOST, "certbotless.port": "8000"}
PASSWORD_HASH = "{SHA}" + base64.b64encode(hashlib.sha1(b"secret").digest()).decode()


def native(labels: dict[str, str], secrets: frozenset[str] | None = None) -> Discovery:
    return discover([ServiceInfo("app", {**BASE, **labels})], secrets=secrets)


def only_route(found: Discovery) -> Route:
    assert found.problems == (), [str(p) for p in found.problems]
    (route,) = found.routes
    return route


# --- labels → routes ---------------------------------------------------------------------------


def test_each_native_label_sets_its_route_option() -> None:
    route = only_route(
        native(
            {
                "certbotless.basic_auth_secret": "ops-users",
                "certbotless.basic_auth_realm": "Operators only",
                "certbotless.allow_from": "10.0.0.0/8, 192.0.2.7",
                "certbotless.rate_limit": "10/s",
                "certbotless.rate_limit_burst": "20",
                "certbotless.path": "/api",
                "certbotless.strip_prefix": "/api",
                "certbotless.add_prefix": "/v1/",
                "certbotless.request_header.X-Tenant": "blue",
                "certbotless.response_header.Server": "",
                "certbotless.response_header.X-Frame-Options": "DENY",
            },
            secrets=frozenset({"ops-users"}),
        )
    )
    assert route.basic_auth == BasicAuth((), "Operators only", secret="ops-users")
    assert route.allow_from == ("10.0.0.0/8", "192.0.2.7/32")
    assert route.rate_limit == RateLimit(per_minute=600, burst=20)
    assert (route.path, route.strip_prefixes, route.add_prefix) == ("/api", ("/api",), "/v1")
    assert route.request_headers == (("X-Tenant", "blue"),)
    assert route.response_headers == (("Server", ""), ("X-Frame-Options", "DENY"))


def test_defaults_a_per_minute_rate_and_no_access_options() -> None:
    assert only_route(native({"certbotless.rate_limit": "30/m"})).rate_limit == RateLimit(30, 10)
    plain = only_route(native({}))
    assert plain == Route("app", (HOST,), 8000)


def test_native_labels_and_traefik_middlewares_compile_to_the_same_route() -> None:
    traefik = {
        "traefik.enable": "true",
        "traefik.http.routers.r.rule": f"Host(`{HOST}`) && PathPrefix(`/api`)",
        "traefik.http.routers.r.entrypoints": "websecure",
        "traefik.http.routers.r.middlewares": "auth,lan,slow,hdr",
        "traefik.http.services.s.loadbalancer.server.port": "8000",
        "traefik.http.middlewares.auth.basicauth.usersfile": "/run/secrets/ops-users",
        "traefik.http.middlewares.auth.basicauth.realm": "ops",
        "traefik.http.middlewares.lan.ipallowlist.sourcerange": "10.0.0.0/8",
        "traefik.http.middlewares.slow.ratelimit.average": "5",
        "traefik.http.middlewares.slow.ratelimit.burst": "8",
        "traefik.http.middlewares.hdr.headers.customrequestheaders.X-Tenant": "blue",
    }
    services = [ServiceInfo("app", traefik)]
    secrets = frozenset({"ops-users"})
    from_traefik = only_route(discover(services, foreign=traefik_claims(services, False, secrets),
                                       secrets=secrets))  # fmt: skip
    from_native = only_route(
        native(
            {
                "certbotless.path": "/api",
                "certbotless.basic_auth_secret": "ops-users",
                "certbotless.basic_auth_realm": "ops",
                "certbotless.allow_from": "10.0.0.0/8",
                "certbotless.rate_limit": "5/s",
                "certbotless.rate_limit_burst": "7",  # the first, then 7 more: Traefik's 8
                "certbotless.request_header.X-Tenant": "blue",
            },
            secrets,
        )
    )
    # Path changes differ on purpose: Traefik's stripPrefix strips by string prefix (`/api`
    # from `/apix`), certbotless.strip_prefix by path segment.
    assert from_native == from_traefik


BAD_VALUES = {
    "certbotless.basic_auth_secret": ("bad name!", "must name a Swarm secret"),
    "certbotless.basic_auth_realm": ('x"y', "has no effect without"),
    "certbotless.allow_from": ("10.0.0.300/8", "is not an address or network"),
    "certbotless.rate_limit": ("10 per second", "requests per second or minute"),
    "certbotless.rate_limit_burst": ("5", "has no effect without certbotless.rate_limit"),
    "certbotless.strip_prefix": ("api", "must start with /"),
    "certbotless.add_prefix": ("/.well-known/acme-challenge/x", "reserved for the edge"),
    "certbotless.request_header.X-A": ('say "hi"', "printable ASCII without"),
    "certbotless.response_header.X A": ("v", "header names are letters"),
    "certbotless.basic_auth_secrets": ("ops", "is not a certbotless label"),
}


@pytest.mark.parametrize("label", sorted(BAD_VALUES))
def test_a_bad_value_is_one_problem_and_that_service_alone_is_not_routed(label: str) -> None:
    value, words = BAD_VALUES[label]
    bad = ServiceInfo("bad", {"certbotless.domains": "bad.example.com",
                              "certbotless.port": "80", label: value})  # fmt: skip
    good = ServiceInfo("good", {**BASE, "certbotless.allow_from": "10.0.0.0/8"})
    found = discover([bad, good], secrets=frozenset({"ops"}))
    (problem,) = found.problems
    assert (problem.service, problem.label, problem.value) == ("bad", label, value)
    assert words in problem.message, problem.message
    assert [route.service for route in found.routes] == ["good"]


def test_a_secret_that_does_not_exist_refuses_the_route_rather_than_serving_it_open() -> None:
    found = native({"certbotless.basic_auth_secret": "ops"}, secrets=frozenset({"other"}))
    assert found.routes == ()
    (problem,) = found.problems
    assert "no Swarm secret is named ops" in problem.message
    assert "never served without its password" in problem.message
    # Where the swarm is not asked (certbotless lint), the name is taken as it is.
    assert only_route(native({"certbotless.basic_auth_secret": "ops"})).basic_auth is not None


def test_certbotless_own_secrets_are_never_a_users_file() -> None:
    key = "cbl-acme-account-key"
    found = native({"certbotless.basic_auth_secret": key}, secrets=frozenset({key}))
    assert found.routes == ()
    assert "one of certbotless's own secrets" in found.problems[0].message
    labels = {
        "traefik.enable": "true",
        "traefik.http.routers.r.rule": f"Host(`{HOST}`)",
        "traefik.http.routers.r.middlewares": "auth",
        "traefik.http.services.s.loadbalancer.server.port": "80",
        "traefik.http.middlewares.auth.basicauth.usersfile": f"/run/secrets/{key}",
    }
    claims = traefik_claims([ServiceInfo("app", labels)], False, frozenset({key}))["app"]
    assert claims.routes == () and "certbotless's own" in str(claims.problems)


def test_traefik_users_file_names_the_secret_or_the_stacks_secret() -> None:
    labels = {
        "traefik.enable": "true",
        "traefik.http.routers.r.rule": f"Host(`{HOST}`)",
        "traefik.http.routers.r.middlewares": "auth",
        "traefik.http.services.s.loadbalancer.server.port": "80",
        "traefik.http.middlewares.auth.basicauth.usersfile": "/run/secrets/users",
    }
    # The stack's secret (site_users) only where the operator trusts stack labels: any
    # service may write `com.docker.stack.namespace=site` in its own.
    trusted = ServiceInfo("app", labels, stack="site", trusted_stack="site")
    claimed = ServiceInfo("app", labels, stack="site")

    def route_with(service: ServiceInfo, secrets: frozenset[str]) -> tuple[Route, ...]:
        return traefik_claims([service], False, secrets)["app"].routes

    (own,) = route_with(trusted, frozenset({"users", "site_users"}))
    (stacks,) = route_with(trusted, frozenset({"site_users"}))
    assert own.basic_auth is not None and own.basic_auth.secret == "users"
    assert stacks.basic_auth is not None and stacks.basic_auth.secret == "site_users"
    assert route_with(claimed, frozenset({"site_users"})) == ()
    refused = traefik_claims([trusted], False, frozenset())["app"]
    assert refused.routes == ()
    (problem,) = refused.problems
    assert "no Swarm secret is named users or site_users" in problem.message
    assert "not routed at all rather than served open" in problem.message
    elsewhere = {**labels, "traefik.http.middlewares.auth.basicauth.usersfile": "/etc/users"}
    refused = traefik_claims([ServiceInfo("app", elsewhere)], False, None)["app"]
    assert refused.routes == () and "/run/secrets/<name>" in refused.problems[0].message


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(
    st.sampled_from(["certbotless.basic_auth_secret", "certbotless.basic_auth_realm",
                     "certbotless.allow_from", "certbotless.rate_limit",
                     "certbotless.rate_limit_burst", "certbotless.strip_prefix",
                     "certbotless.add_prefix", "certbotless.request_header.X-A",
                     "certbotless.response_header.X-B", "certbotless.path",
                     "certbotless.response_header.X", "certbotless.request_header.Bad Name"]),
    st.text(max_size=40)
    | st.sampled_from(["ops", "10/s", "5", "/api", "10.0.0.0/8,::1", "Operators", ""]),
))  # fmt: skip
def test_hostile_native_labels_give_problems_never_exceptions(changes: dict[str, str]) -> None:
    """Never an exception; a route whose access label is set is only ever served with it; and
    nginx accepts whatever is served."""
    found = native(changes, secrets=frozenset({"ops"}))
    assert len(found.problems) <= 1
    for route in found.routes:
        if changes.get("certbotless.basic_auth_secret", "").strip():
            assert route.basic_auth is not None
        if changes.get("certbotless.allow_from", "").strip():
            assert route.allow_from
        if changes.get("certbotless.rate_limit", "").strip():
            assert route.rate_limit is not None
    if found.routes:
        files = render_nginx_conf(found.routes, certs_for(HOST), RESPONDER, CERTS_DIR)
        validate_nginx_conf(files)


# --- render and mount --------------------------------------------------------------------------


def test_a_secret_users_file_is_mounted_by_name_and_not_rendered() -> None:
    route = only_route(native({"certbotless.basic_auth_secret": "ops"}))
    files = render_nginx_conf([route], certs_for(HOST), RESPONDER, CERTS_DIR)
    text = "".join(files.values())
    assert f"auth_basic_user_file {HTPASSWD_SECRETS_DIR}/ops;" in text
    assert not any(target.startswith(HTPASSWD_DIR + "/") for target in files)
    assert validate_nginx_conf(files) == ()
    references = edge_references([route], {}, {}, CERTS_DIR, {"ops": "secret-id-1"})
    (secret,) = [r for r in references if r.kind == ObjectKind.SECRET]
    assert (secret.object_id, secret.object_name, secret.target, secret.mode) == (
        "secret-id-1", "ops", f"{HTPASSWD_SECRETS_DIR}/ops", 0o444,
    )  # fmt: skip


def test_every_native_option_renders_and_passes_nginx_t() -> None:
    route = only_route(
        native({
            "certbotless.basic_auth_secret": "ops",
            "certbotless.allow_from": "10.0.0.0/8,2001:db8::/32",
            "certbotless.rate_limit": "100/m",
            "certbotless.path": "/api",
            "certbotless.strip_prefix": "/api",
            "certbotless.add_prefix": "/v2",
            "certbotless.request_header.X-Tenant": "blue",
            "certbotless.response_header.Server": "",
        })
    )  # fmt: skip
    files = render_nginx_conf([route], certs_for(HOST), RESPONDER, CERTS_DIR)
    text = "".join(files.values())
    directives = ("allow 10.0.0.0/8;", "allow 2001:db8::/32;", "deny all;", "limit_req zone=",
                  "rate=100r/m", "rewrite ^/api/?(.*)$ /v2/$1 break;",
                  'proxy_set_header X-Tenant "blue";', "proxy_hide_header Server;")  # fmt: skip
    for directive in directives:
        assert directive in text, directive
    assert validate_nginx_conf(files) == ()
    assert NGINX_CONF_TARGET in files


def test_a_stale_basic_auth_secret_mount_is_dropped_and_others_stay() -> None:
    current = [
        {"SecretID": "old", "SecretName": "ops-old",
         "File": {"Name": f"{HTPASSWD_SECRETS_DIR}/ops-old", "UID": "0", "GID": "0",
                  "Mode": 0o444}},
        {"SecretID": "own", "SecretName": "operators-own",
         "File": {"Name": "/run/secrets/own", "UID": "0", "GID": "0", "Mode": 0o400}},
    ]  # fmt: skip
    route = only_route(native({"certbotless.basic_auth_secret": "ops"}))
    wanted = edge_references([route], {}, {}, CERTS_DIR, {"ops": "new"})
    kept = swap_references(current, wanted, ObjectKind.SECRET)
    assert [r["SecretName"] for r in kept] == ["ops", "operators-own"]


class _Secrets:
    def __init__(self, ids: Mapping[str, str]) -> None:
        self.ids = dict(ids)

    def secret_ids(self, names: set[str]) -> dict[str, str]:
        return {name: self.ids[name] for name in names if name in self.ids}


def test_a_route_whose_secret_vanished_since_discovery_is_left_out_of_the_roll() -> None:
    guarded = only_route(native({"certbotless.basic_auth_secret": "gone"}))
    other = replace(Route("other", ("b.example.com",), 80),
                    basic_auth=BasicAuth((), secret="kept"))  # fmt: skip
    routes, ids = with_their_secrets(_Secrets({"kept": "id-1"}), [guarded, other])  # type: ignore[arg-type]
    assert (list(routes), ids) == ([other], {"kept": "id-1"})


# --- a real nginx ------------------------------------------------------------------------------

Serve = Callable[[dict[str, str], Mapping[str, str]], int]


@pytest.fixture
def serve(tmp_path: Path, upstream: int) -> Iterator[Serve]:
    """Native labels of one service (reached at 127.0.0.1) → the port nginx serves them on."""
    if shutil.which("nginx") is None:
        pytest.fail("nginx is not installed (rig/install.py installs it)")
    started: list[subprocess.Popen[bytes]] = []

    def start(labels: dict[str, str], extra: Mapping[str, str]) -> int:
        found = discover([ServiceInfo("127.0.0.1", {**BASE, "certbotless.port": str(upstream),
                                                    "certbotless.redirect": "false",
                                                    **labels})])  # fmt: skip
        nginx, port, _ = serve_routes((only_route(found),), tmp_path / str(len(started)), extra)
        started.append(nginx)
        return port

    yield start
    for nginx in started:
        nginx.terminate()
        nginx.wait(timeout=10)


def test_basic_auth_from_a_secret_answers_401_then_200(serve: Serve) -> None:
    # The secret's file where the edge mounts it (the scratch tree maps the edge's paths).
    port = serve({"certbotless.basic_auth_secret": "ops"},
                 {f"{HTPASSWD_SECRETS_DIR}/ops": f"ops:{PASSWORD_HASH}\n"})  # fmt: skip
    assert get(port)[0] == 401
    assert get(port, auth="ops:wrong")[0] == 401
    assert get(port, "/x", auth="ops:secret")[0] == 200


def test_allowlist_rate_limit_and_prefixes_answer_as_labelled(serve: Serve) -> None:
    outside = serve({"certbotless.allow_from": "10.0.0.0/8"}, {})
    inside = serve({"certbotless.allow_from": "127.0.0.1"}, {})
    assert (get(outside)[0], get(inside)[0]) == (403, 200)
    limited = serve({"certbotless.rate_limit": "1/m", "certbotless.rate_limit_burst": "2"}, {})
    statuses = [get(limited)[0] for _ in range(5)]
    assert statuses[:3] == [200, 200, 200] and statuses[-1] == 429
    prefixed = serve({"certbotless.path": "/api", "certbotless.strip_prefix": "/api",
                      "certbotless.add_prefix": "/v1"}, {})  # fmt: skip
    assert get(prefixed, "/api/users?page=2") == (200, "/v1/users?page=2 -")
