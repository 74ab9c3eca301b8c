"""Middlewares from Traefik dynamic-configuration files (`name@file`, issue 15 item 1): YAML and
TOML read into the labels' middleware model, applied alike, and a broken file refusing only the
routers that use it."""

from __future__ import annotations

from pathlib import Path

import pytest

from certbotless.edge.render import render_nginx_conf
from certbotless.edge.validation import validate_nginx_conf
from certbotless.labels.dialects import discovered
from certbotless.labels.settle import discover
from certbotless.labels.traefik.dynamic import read_dynamic_config
from certbotless.labels.traefik.labels import traefik_claims
from certbotless.labels.traefik.middlewares.options import FileMiddlewares
from certbotless.model import BasicAuth, Discovery, RateLimit, Route, ServiceInfo
from certbotless.rewrite_phase import RewritePhase, StripPrefixRegex
from certbotless.settings import Settings
from tests.support.factories import CERTS_DIR, RESPONDER, certs_for

HASH = "$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/"
YAML = f"""
http:
  routers:            # not read: routers come from labels
    ignored: {{rule: "Host(`x.example.com`)", service: s}}
  middlewares:
    auth:
      basicAuth:
        users:
          - "admin:{HASH}"
        realm: Admins
        removeHeader: true
    lan:
      ipAllowList:
        sourceRange: ["10.0.0.0/8", "192.0.2.7"]
    slow:
      rateLimit: {{average: 2, period: 1s, burst: 5}}
    secure:
      headers:
        customResponseHeaders:
          X-Robots-Tag: "noindex"
        frameDeny: true
    strip:
      stripPrefix:
        prefixes: ["/app"]
    guarded:
      chain:
        middlewares: [lan, auth]
    to-https:
      redirectScheme: {{scheme: https, permanent: true}}
"""
TOML = f"""
[http.middlewares.auth.basicAuth]
users = ["admin:{HASH}"]
realm = "Admins"
removeHeader = true

[http.middlewares.lan.ipAllowList]
sourceRange = ["10.0.0.0/8", "192.0.2.7"]
"""
R = "traefik.http.routers."
HOST = "app.example.com"


def labels(middlewares: str, path: str = "") -> dict[str, str]:
    rule = f"Host(`{HOST}`)" + (f" && PathPrefix(`{path}`)" if path else "")
    return {
        "traefik.enable": "true",
        f"{R}app.rule": rule,
        f"{R}app.entrypoints": "websecure",
        f"{R}app.middlewares": middlewares,
        "traefik.http.services.app.loadbalancer.server.port": "8000",
    }


def find(services: list[ServiceInfo], files: FileMiddlewares) -> Discovery:
    return discover(services, foreign=traefik_claims(services, False, None, files))


def written(tmp_path: Path, name: str, text: str) -> FileMiddlewares:
    path = tmp_path / name
    path.write_text(text)
    return read_dynamic_config([path])


@pytest.fixture
def yaml_file(tmp_path: Path) -> FileMiddlewares:
    return written(tmp_path, "dynamic.yml", YAML)


def test_file_middlewares_apply_as_label_ones_do(yaml_file: FileMiddlewares) -> None:
    service = ServiceInfo("app", labels("guarded@file,slow@file,secure@file,strip@file", "/app"))
    found = find([service], yaml_file)
    assert found.problems == (), [str(p) for p in found.problems]
    (route,) = found.routes
    assert route == Route(
        "app", (HOST,), 8000, path="/app",
        basic_auth=BasicAuth((f"admin:{HASH}",), "Admins", remove_header=True),
        allow_from=("10.0.0.0/8", "192.0.2.7/32"),
        rate_limit=RateLimit(120, 4),  # Traefik's burst 5: the first and 4 more
        response_headers=(("X-Robots-Tag", "noindex"), ("X-Frame-Options", "DENY")),
        rewrite_phase=RewritePhase(strip_prefix_regex=StripPrefixRegex((("/app", 0),))),
    )  # fmt: skip
    files = render_nginx_conf(found.routes, certs_for(HOST), RESPONDER, CERTS_DIR)
    assert validate_nginx_conf(files) == ()


def test_toml_gives_the_same_middlewares(tmp_path: Path, yaml_file: FileMiddlewares) -> None:
    toml_file = written(tmp_path, "dynamic.toml", TOML)
    service = ServiceInfo("app", labels("lan@file,auth@file"))
    assert find([service], toml_file).routes == find([service], yaml_file).routes != ()


def test_a_redirect_router_from_the_file_is_certbotless_own_redirect(
    yaml_file: FileMiddlewares,
) -> None:
    both = {
        **labels("auth@file"),
        f"{R}app-http.rule": f"Host(`{HOST}`)",
        f"{R}app-http.entrypoints": "web",
        f"{R}app-http.middlewares": "to-https@file",
    }
    found = find([ServiceInfo("app", both)], yaml_file)
    assert found.problems == ()
    (route,) = found.routes
    assert route.redirect_to_https and route.basic_auth is not None


def test_a_name_the_file_lacks_refuses_the_router(yaml_file: FileMiddlewares) -> None:
    found = find([ServiceInfo("app", labels("sso@file"))], yaml_file)
    assert found.routes == ()
    (problem,) = found.problems
    assert "defines no middleware sso" in problem.message
    assert "not routed at all rather than served open" in problem.message


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("http: [", "is not valid yml"),
        ("http:\n  middlewares: [a, b]\n", "http.middlewares that is not a mapping"),
    ],
)
def test_a_broken_file_refuses_only_the_routers_using_it(
    tmp_path: Path, text: str, words: str
) -> None:
    broken = written(tmp_path, "dynamic.yml", text)
    uses_file = ServiceInfo("app", labels("auth@file"))
    own = {**labels("own"), "traefik.http.middlewares.own.compress": "true"}
    own[f"{R}app.rule"] = "Host(`other.example.com`)"
    found = find([uses_file, ServiceInfo("other", own)], broken)
    assert [route.service for route in found.routes] == ["other"]
    (problem,) = [p for p in found.problems if not p.situational]  # compress's words are its own
    assert (problem.service, words) == ("app", words) and words in problem.message
    assert "CERTBOTLESS_TRAEFIK_DYNAMIC_CONFIG" in problem.message


def test_a_missing_file_and_a_name_defined_in_two_files(tmp_path: Path) -> None:
    missing = read_dynamic_config([tmp_path / "absent.yml"])
    assert "cannot be read" in missing.error
    (tmp_path / "a.yml").write_text(YAML)
    (tmp_path / "b.toml").write_text(TOML)
    twice = read_dynamic_config([tmp_path / "a.yml", tmp_path / "b.toml"])
    assert "defines auth, lan again" in twice.error


def test_the_sidecar_reads_the_files_its_setting_names(tmp_path: Path) -> None:
    (tmp_path / "dynamic.yml").write_text(YAML)
    settings = Settings(traefik_dynamic_config=(tmp_path / "dynamic.yml",))
    found = discovered(settings, [ServiceInfo("app", labels("lan@file"))], None)
    (route,) = found.routes
    assert route.allow_from == ("10.0.0.0/8", "192.0.2.7/32")
    without = discovered(Settings(), [ServiceInfo("app", labels("lan@file"))], None)
    assert without.routes == ()
    assert "CERTBOTLESS_TRAEFIK_DYNAMIC_CONFIG" in without.problems[0].message
