import os
import re
from pathlib import Path

import pytest

from certbotless.edge import (
    NginxConfigError,
    explain_nginx_error,
    render_nginx_conf,
    render_snippets,
    validate_nginx_conf,
)
from certbotless.model import ErrorPages, Route
from tests.unit.factories import stored_cert

CERTS_DIR = "/etc/nginx/certs"
ROUTES = [
    Route("demo_app", ("app.example.test",), 8000),
    Route("api_sm", ("api.example.test",), 80, path="/en_core_web_sm"),
    Route("api_lg", ("api.example.test",), 80, path="/en_core_web_lg"),
    Route("plain", ("plain.example.test",), 80, redirect_to_https=False),
]


def render() -> str:
    cert = stored_cert()
    plain = stored_cert(name="plain.example.test", domains=("plain.example.test",))
    return render_nginx_conf(
        ROUTES, {c.name: c for c in (cert, plain)}, "certbotless:8402", CERTS_DIR
    )


def test_hosts_with_certificates_get_443_servers_and_redirects() -> None:
    text = render()
    assert "ssl_certificate /etc/nginx/certs/app.example.test/fullchain.pem;" in text
    assert "ssl_certificate_key /etc/nginx/certs/app.example.test/privkey.pem;" in text
    # api.example.test has no certificate yet: plain HTTP only, never a broken reference.
    assert "certs/api.example.test" not in text
    assert text.count("return 308 https://$host$request_uri;") == 1
    assert (
        text.count("location ^~ /.well-known/acme-challenge/") == 4
    )  # default server + one per host
    assert "ssl_reject_handshake on;" in text


def test_paths_route_to_their_services_through_the_resolver() -> None:
    text = render()
    assert "resolver 127.0.0.11 valid=10s" in text
    assert "set $upstream http://api_sm:80;" in text
    assert "location /en_core_web_lg {" in text


def test_rendered_config_passes_nginx_t() -> None:
    validate_nginx_conf(render(), CERTS_DIR)


def test_broken_config_is_rejected_with_nginx_words() -> None:
    with pytest.raises(NginxConfigError, match="unknown directive"):
        validate_nginx_conf(render().replace("sendfile on;", "sendfile_typo on;"), CERTS_DIR)


GOLDEN = Path(__file__).parent / "golden"

# Seed 001 on certbotless: a corporate static site with custom error pages and HSTS, a back
# office taking 20 MB uploads, two model APIs behind forward auth, all under one host; and
# seed 000's Flask API behind /service1 on another host.
NLP = "nlp.example.test"
SEED_ROUTES = [
    Route(
        "nlp_corporate",
        (NLP,),
        80,
        hsts=True,
        error_pages=ErrorPages(
            "http://nlp_errors:80/{status}.html", tuple(c for c in range(400, 600) if c != 499)
        ),
    ),
    Route("nlp_backoffice", (NLP,), 8000, path="/backoffice", max_body_size="20m"),
    Route("nlp_sm", (NLP,), 8000, path="/en_core_web_sm", auth_url="http://nlp_auth:8000/check"),
    Route("nlp_lg", (NLP,), 8000, path="/en_core_web_lg", auth_url="http://nlp_auth:8000/check"),
    Route("nlp_auth", (NLP,), 8000, path="/auth"),
    Route("flask_api", ("api.example.test",), 5000, path="/service1"),
]


def render_seeds() -> str:
    certs = [
        stored_cert(name=NLP, domains=(NLP,)),
        stored_cert(name="api.example.test", domains=("api.example.test",)),
    ]
    return render_nginx_conf(SEED_ROUTES, {c.name: c for c in certs}, "certbotless:8402", CERTS_DIR)


def test_seed_scenarios_render_as_reviewed() -> None:
    # Reviewed by eye once; regenerate with CERTBOTLESS_UPDATE_GOLDEN=1 and review the diff.
    golden = GOLDEN / "seeds.nginx.conf"
    if os.environ.get("CERTBOTLESS_UPDATE_GOLDEN") == "1":
        golden.write_text(render_seeds())
    assert render_seeds() == golden.read_text()


def test_seed_scenarios_pass_nginx_t() -> None:
    validate_nginx_conf(render_seeds(), CERTS_DIR)


def test_route_options_render_where_nginx_applies_them() -> None:
    text = render_seeds()
    backoffice = text[text.index("location /backoffice {") :]
    assert "client_max_body_size 20m;" in backoffice[: backoffice.index("}")]
    for index in re.findall(r"auth_request /\.certbotless/auth/(\d+);", text):
        assert f"location = /.certbotless/auth/{index} {{\n            internal;" in text
    assert text.count("auth_request /.certbotless/auth/") == 2
    assert "set $auth_url http://nlp_auth:8000/check;" in text
    assert re.search(r"error_page 400 401 402 .* 498 500 .* 599 @certbotless_errors_\d+;", text)
    assert "set $error_page http://nlp_errors:80/$status.html;" in text
    assert text.count('add_header Strict-Transport-Security "max-age=63072000" always;') == 1
    # api.example.test has no route at /: other paths are a plain 404.
    assert "location / {\n            return 404;" in text


def test_snippets_for_an_own_nginx_conf_pass_nginx_t_inside_it(tmp_path: Path) -> None:
    snippets = render_snippets(["shop"], "certbotless:8402", CERTS_DIR)
    assert set(snippets) == {
        "/etc/nginx/certbotless/acme-challenge.conf",
        "/etc/nginx/certbotless/certs/shop.conf",
    }
    challenge, certificate = snippets.values()
    own = (
        "events {}\nhttp {\n"
        f"  server {{ listen 80; {challenge} }}\n"
        f"  server {{ listen 443 ssl; {certificate} location / {{ return 200; }} }}\n}}\n"
    )
    validate_nginx_conf(own, CERTS_DIR)


def test_nginx_errors_name_the_offending_line_and_route() -> None:
    text = render_seeds()
    line = text.splitlines().index("            client_max_body_size 20m;") + 1
    explained = explain_nginx_error(f"[emerg] invalid value in /x/nginx.conf:{line}", text)
    assert f"at line {line}: client_max_body_size 20m;" in explained
    assert f"(server {NLP}, location /backoffice)" in explained
