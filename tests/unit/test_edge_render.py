import pytest

from certbotless.edge import NginxConfigError, render_nginx_conf, validate_nginx_conf
from certbotless.model import Route
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
