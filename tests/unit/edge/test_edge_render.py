import os
import re
from pathlib import Path

import pytest

from certbotless.edge.mounts import NGINX_CONF_TARGET
from certbotless.edge.nginx_version import local_nginx_version, parse_nginx_version
from certbotless.edge.render import files_listing, render_nginx_conf
from certbotless.edge.snippets import render_snippets
from certbotless.edge.validation import NginxConfigError, explain_nginx_error, validate_nginx_conf
from certbotless.model import Route
from tests.support.factories import (
    CERTS_DIR,
    DEMO,
    IP_ADDRESS,
    MIXED,
    MIXED_REDIRECT,
    MIXED_REDIRECT_BEFORE_CERTIFICATE,
    NLP,
    RESPONDER,
    SEEDS,
    EdgeScenario,
    certs_for,
    stored_cert,
)
from tests.support.paths import REPO

NEW_NGINX = (1, 26, 3)


def server_block(text: str, host: str, port: int) -> str:
    """The `server { … }` of `host` on `port` (80 or 443)."""
    for block in text.split("\n    server {")[1:]:
        if f"server_name {host};" in block and f"listen {port}" in block:
            return block[: block.index("\n    }")]
    raise AssertionError(f"no port {port} server for {host}")


def location_block(server: str, path: str) -> str:
    """The location of `path`: its own, or its route's named one (which says the path)."""
    named = f"{{  # {path}\n"
    start = server.index(named) if named in server else server.index(f"location {path} {{")
    return server[start : server.index("\n        }", start)]


def test_hosts_with_certificates_get_443_servers_and_redirects() -> None:
    text = DEMO.render()
    assert "ssl_certificate /etc/nginx/certs/app.example.test/fullchain.pem;" in text
    assert "ssl_certificate_key /etc/nginx/certs/app.example.test/privkey.pem;" in text
    # api.example.test has no certificate yet: no broken reference, and no plain proxying.
    assert "certs/api.example.test" not in text
    assert text.count("return 308 https://$host$request_uri;") == 1
    assert (
        text.count("location ^~ /.well-known/acme-challenge/") == 4
    )  # default server + one per host
    assert "ssl_reject_handshake on;" in text


def test_paths_route_to_their_services_through_the_resolver() -> None:
    text = DEMO.render()
    assert "resolver 127.0.0.11 valid=10s" in text
    assert "set $upstream http://plain:80;" in text
    assert "set $upstream http://demo_app:8000;" in text
    assert "{  # /en_core_web_lg\n" in text


def test_rendered_config_passes_nginx_t() -> None:
    assert validate_nginx_conf(DEMO.files()) == ()


def test_broken_config_is_rejected_with_nginx_words() -> None:
    files = DEMO.files()
    files[NGINX_CONF_TARGET] = files[NGINX_CONF_TARGET].replace("sendfile on;", "sendfile_typo on;")
    with pytest.raises(NginxConfigError, match="unknown directive"):
        validate_nginx_conf(files)


def test_nginx_warnings_are_returned_and_the_command_is_an_argv_prefix() -> None:
    twice = "types { text/html html; text/plain html; }"
    (warning,) = validate_nginx_conf(
        f"events {{}}\nhttp {{\n{twice}\n}}\n", command=("env", "nginx")
    )
    assert "[warn]" in warning and 'duplicate extension "html"' in warning
    assert f"at line 3: {twice}" in warning


GOLDEN = Path(__file__).parent / "golden"


def test_seed_scenarios_render_as_reviewed() -> None:
    # Reviewed by eye once; regenerate with CERTBOTLESS_UPDATE_GOLDEN=1 and review the diff.
    golden = GOLDEN / "seeds.nginx.conf"
    if os.environ.get("CERTBOTLESS_UPDATE_GOLDEN") == "1":
        golden.write_text(SEEDS.render())
    assert SEEDS.render() == golden.read_text()


def test_seed_scenarios_pass_nginx_t() -> None:
    assert validate_nginx_conf(SEEDS.files()) == ()


def test_route_options_render_where_nginx_applies_them() -> None:
    text = SEEDS.render()
    backoffice = text[text.index("{  # /backoffice\n") :]
    assert "client_max_body_size 20m;" in backoffice[: backoffice.index("\n        }")]
    for index in re.findall(r"auth_request /\.certbotless/auth/(\d+);", text):
        assert f"location = /.certbotless/auth/{index} {{\n            internal;" in text
    assert text.count("auth_request /.certbotless/auth/") == 2
    assert "set $auth_url http://nlp_auth:8000/check;" in text
    assert re.search(r"error_page 400 401 402 .* 498 500 .* 599 @certbotless_errors_\d+;", text)
    assert "set $error_page http://nlp_errors:80/${status}.html;" in text
    assert text.count('add_header Strict-Transport-Security "max-age=63072000" always;') == 1
    # api.example.test has no route at /: other paths are a plain 404.
    assert "location / {\n            return 404;" in text
    # Seed 000: gunicorn --timeout 180 behind a 300 s proxy timeout, for this route only.
    service1 = location_block(server_block(text, "api.example.test", 443), "/service1")
    assert "proxy_read_timeout 300s;" in service1 and "proxy_send_timeout 300s;" in service1
    assert text.count("proxy_read_timeout 300s;") == 1


def test_port_80_redirects_or_proxies_each_route_by_its_own_label() -> None:
    plain_http = server_block(MIXED_REDIRECT.render(), MIXED, 80)
    legacy = location_block(plain_http, "/legacy")
    assert "set $upstream http://mixed_legacy:8000;" in legacy
    for path in ("/", "/admin"):
        assert "return 308 https://$host$request_uri;" in location_block(plain_http, path)
    # Routes behind forward auth are never served in clear, nor is their auth asked.
    assert "mixed_app" not in plain_http and "mixed_admin" not in plain_http
    assert "auth_request" not in plain_http
    assert "set $upstream http://mixed_app:8000;" in server_block(
        MIXED_REDIRECT.render(), MIXED, 443
    )


def test_before_its_certificate_a_route_that_wants_https_answers_503_not_plain_http() -> None:
    text = MIXED_REDIRECT_BEFORE_CERTIFICATE.render()
    plain_http = server_block(text, MIXED, 80)
    for path in ("/", "/admin"):
        location = location_block(plain_http, path)
        assert "add_header Retry-After 60 always;" in location
        assert 'return 503 "' in location
    assert "mixed_app" not in plain_http and "mixed_admin" not in plain_http
    assert "set $upstream http://mixed_legacy:8000;" in plain_http
    assert f"listen 443 ssl http2;\n        server_name {MIXED};" not in text


def test_no_hsts_on_a_host_that_serves_a_plain_route() -> None:
    assert "Strict-Transport-Security" not in MIXED_REDIRECT.render()


def test_proxied_requests_carry_the_client_address_and_no_proxy_header() -> None:
    text = SEEDS.render()
    assert "$proxy_add_x_forwarded_for" not in text
    locations = text.count("set $upstream ") + text.count("set $auth_url ")
    assert text.count("proxy_set_header X-Forwarded-For $remote_addr;") == locations
    assert text.count('proxy_set_header Proxy "";') == locations + text.count("set $error_page ")
    http_level = text[: text.index("\n    server {")]
    assert "proxy_connect_timeout 5s;" in http_level


def test_forward_auth_sends_sni_traefik_headers_and_times_out_quickly() -> None:
    auth = location_block(server_block(SEEDS.render(), NLP, 443), "= /.certbotless/auth/0")
    for line in (
        "proxy_ssl_server_name on;",
        "proxy_set_header X-Forwarded-Uri $request_uri;",
        "proxy_set_header X-Forwarded-Method $request_method;",
        "proxy_set_header X-Original-URI $request_uri;",
        "proxy_connect_timeout 2s;",
        "proxy_read_timeout 5s;",
    ):
        assert line in auth
    errors = location_block(server_block(SEEDS.render(), NLP, 443), "@certbotless_errors_4")
    assert "proxy_ssl_server_name on;" in errors


def test_default_server_answers_load_balancer_health_checks() -> None:
    default = DEMO.render().split("\n    server {")[1]
    assert "listen 80 default_server;" in default
    healthz = location_block(default, "= /healthz")
    assert "access_log off;" in healthz and 'return 200 "ok\\n";' in healthz


def test_access_log_names_the_upstream_and_the_client() -> None:
    log_format = SEEDS.render().split("log_format certbotless ")[1].split(";")[0]
    assert "ua=" not in log_format
    for field in (
        'upstream="$upstream_addr"',
        "$upstream_status",
        "$request_length",
        '"$http_user_agent"',
    ):
        assert field in log_format


@pytest.mark.parametrize(
    ("version", "http2_on", "listen"),
    [
        ((1, 22, 1), False, "listen 443 ssl http2"),
        ((1, 25, 0), False, "listen 443 ssl http2"),
        ((1, 25, 1), True, "listen 443 ssl"),
        (NEW_NGINX, True, "listen 443 ssl"),
    ],
)
def test_http2_is_switched_on_the_way_the_edges_nginx_wants(
    version: tuple[int, int, int], http2_on: bool, listen: str
) -> None:
    text = SEEDS.render(version)
    listens = re.findall(r"listen 443[^;]*;", text)
    assert len(listens) == 3  # the default server and both hosts: all alike, or nginx warns
    assert set(listens) == {f"{listen} default_server;", f"{listen};"}
    assert text.count("\n    http2 on;") == (1 if http2_on else 0)


def test_the_default_nginx_version_keeps_the_old_syntax() -> None:
    routes, certs = DEMO.routes, DEMO.certs
    assert render_nginx_conf(routes, certs, RESPONDER, CERTS_DIR) == DEMO.files((1, 22, 0))


@pytest.mark.parametrize(
    ("output", "version"),
    [
        ("nginx version: nginx/1.26.3\n", (1, 26, 3)),
        ("nginx version: nginx/1.25.1 (Ubuntu)", (1, 25, 1)),
        ("nginx/1.22.1", (1, 22, 1)),
    ],
)
def test_nginx_versions_are_parsed(output: str, version: tuple[int, int, int]) -> None:
    assert parse_nginx_version(output) == version


@pytest.mark.parametrize("output", ["", "nginx version: nginx/1.26", "command not found"])
def test_unreadable_nginx_versions_are_refused(output: str) -> None:
    with pytest.raises(ValueError, match="cannot read an nginx version"):
        parse_nginx_version(output)


def test_local_nginx_version_asks_nginx() -> None:
    major, minor, _ = local_nginx_version()
    assert (major, minor) >= (1, 22)


def test_snippets_for_an_own_nginx_conf_pass_nginx_t_inside_it(tmp_path: Path) -> None:
    snippets = render_snippets(["shop"], RESPONDER, CERTS_DIR)
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
    assert validate_nginx_conf(own) == ()


def test_nginx_errors_name_the_offending_line_and_route() -> None:
    files = SEEDS.files()
    target, text = next((t, text) for t, text in files.items() if "/backoffice" in text)
    line = text.splitlines().index("            client_max_body_size 20m;") + 1
    explained = explain_nginx_error(f"[emerg] invalid value in {target}:{line}", files)
    assert f"at line {line}: client_max_body_size 20m;" in explained
    assert f"(server {NLP}, location /backoffice)" in explained


def test_a_host_without_a_route_at_root_answers_404_on_both_ports() -> None:
    routes = (Route("api", ("api.example.test",), 80, path="/v1", redirect_to_https=False),)
    text = EdgeScenario(routes, certs_for("api.example.test")).render()
    for port in (80, 443):
        server = server_block(text, "api.example.test", port)
        assert "return 404;" in location_block(server, "@certbotless_no_route")


def test_an_ip_address_with_a_certificate_is_the_default_tls_server() -> None:
    """Its clients send no SNI, so nginx must pick its server without a name."""
    text = IP_ADDRESS.render()
    assert "ssl_reject_handshake on;" not in text
    assert text.count("default_server;") == 2  # port 80's catch-all and the address's 443
    address_server = text.split("server_name 192.0.2.10;")[-1]
    assert "ssl_certificate /etc/nginx/certs/192.0.2.10/fullchain.pem;" in address_server
    validate_nginx_conf(IP_ADDRESS.files())
    # Until the address has its certificate, unknown names are refused as always.
    waiting = EdgeScenario(IP_ADDRESS.routes, certs_for("app.example.test")).render()
    assert "ssl_reject_handshake on;" in waiting


def test_an_ipv6_address_is_its_server_name_in_brackets_as_host_headers_write_it() -> None:
    """Browsers send `Host: [2001:db8::7]`; nginx matches `server_name [2001:db8::7]` (asked of
    a real nginx in tests/unit/edge/test_ip_hosts.py)."""
    cert = stored_cert(name="2001-db8--7", domains=("2001:db8::7",))
    scenario = EdgeScenario((Route("v6", ("2001:db8::7",), 8000),), {"2001-db8--7": cert})
    text = scenario.render()
    assert text.count("server_name [2001:db8::7];") == 2
    validate_nginx_conf(scenario.files())


def test_behind_the_front_every_listener_takes_the_client_address_from_its_network_only() -> None:
    files = render_nginx_conf(
        DEMO.routes, DEMO.certs, RESPONDER, CERTS_DIR, front_subnets=("10.222.0.0/24",)
    )
    text = files_listing(files)
    listens = re.findall(r"^\s*listen .*;$", text, re.MULTILINE)
    assert len(listens) > 4 and all("proxy_protocol" in line for line in listens)
    assert "set_real_ip_from 10.222.0.0/24;" in text
    assert "real_ip_header proxy_protocol;" in text
    assert validate_nginx_conf(files) == ()
    # Without a front: no PROXY protocol, and no address taken from headers.
    assert "proxy_protocol" not in DEMO.render() and "real_ip" not in DEMO.render()


def test_traefiks_compress_steps_aside_for_head_and_grpc_and_says_vary() -> None:
    """gzip takes no variables: it is turned off by an `if`, which nginx applies only when it is
    the last to match, so it stands before each `rewrite … break` (ending the rewrite phase)
    and last; the Vary header is read from a map of the client's Accept-Encoding."""
    traefiks = Route("api", ("api.example.test",), 80, path="/v1", strip_prefixes=("/v1",),
                     compress=True, compress_min_bytes=1024, compress_encodings=("gzip", "br"),
                     redirect_to_https=False)  # fmt: skip
    own = Route("www", ("www.example.test",), 80, compress=True, redirect_to_https=False)
    scenario = EdgeScenario((traefiks, own), certs_for())
    text = scenario.render()
    location = location_block(server_block(text, "api.example.test", 80), "/v1")
    skip = "if ($certbotless_compress_skipped) { gzip off; }"
    lines = [line.strip() for line in location.splitlines()]
    rewrites = [i for i, line in enumerate(lines) if line.startswith("rewrite ")]
    assert rewrites and all(lines[i - 1] == skip for i in rewrites)
    assert lines[-1] == skip and "gzip_min_length 1024;" in lines
    assert "add_header Vary $certbotless_compress_vary_gzip_br always;" in lines
    # One map of the requests it skips, one per list of encodings, in the http context.
    assert text.count("$certbotless_compress_skipped {") == 1
    assert text.count("$certbotless_compress_vary_gzip_br {") == 1
    # certbotless's own compress label is nginx's gzip as it is.
    www = location_block(server_block(text, "www.example.test", 80), "/")
    assert "gzip on;" in www and "compress" not in www and "Vary" not in www
    assert validate_nginx_conf(scenario.files()) == ()


def test_every_rendered_configuration_listens_on_443() -> None:
    """The front takes a task whose port 443 opens for one that runs the rendered configuration
    (haproxy/haproxy.cfg; the image's bootstrap configuration does not listen there): so even
    a configuration with no route and no certificate has its 443 default server."""
    for scenario in (EdgeScenario((), {}), DEMO, IP_ADDRESS):
        assert "listen 443 ssl" in scenario.render()
    bootstrap = (REPO / "nginx" / "bootstrap.conf").read_text().splitlines()
    assert not [line for line in bootstrap if "listen 443" in line.split("#")[0]]
