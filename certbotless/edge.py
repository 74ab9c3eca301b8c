"""Routes + current certificates → nginx.conf text, and its validation with `nginx -t`."""

from __future__ import annotations

import datetime
import re
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from certbotless.acme.keys import private_key_pem
from certbotless.model import Route, StoredCert

NGINX_CONF_TARGET = "/etc/nginx/nginx.conf"
CHALLENGE_LOCATION = "/.well-known/acme-challenge/"

# Mozilla "intermediate" profile (ssl-config.mozilla.org, v5.7): TLS 1.2 + 1.3.
TLS_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
)


class NginxConfigError(Exception):
    """`nginx -t` rejected a rendered configuration; the message is nginx's own."""


@dataclass(frozen=True)
class CertFiles:
    fullchain: str
    privkey: str


def cert_files(cert_name: str, certs_dir: str) -> CertFiles:
    return CertFiles(
        f"{certs_dir}/{cert_name}/fullchain.pem", f"{certs_dir}/{cert_name}/privkey.pem"
    )


def render_nginx_conf(
    routes: Iterable[Route],
    certs: Mapping[str, StoredCert],
    responder_upstream: str,
    certs_dir: str,
) -> str:
    """`certs` maps certificate name → current version; a host without one gets no 443 server."""
    by_host: dict[str, list[Route]] = {}
    for route in routes:
        for host in route.hosts:
            by_host.setdefault(host, []).append(route)
    cert_for_host = {host: cert.name for cert in certs.values() for host in cert.domains}

    servers = [_default_servers(responder_upstream)]
    for host in sorted(by_host):
        host_routes = sorted(by_host[host], key=lambda r: r.path, reverse=True)
        cert_name = cert_for_host.get(host)
        redirect = cert_name is not None and all(r.redirect_to_https for r in host_routes)
        servers.append(_http_server(host, host_routes, responder_upstream, redirect))
        if cert_name is not None:
            servers.append(_https_server(host, host_routes, cert_files(cert_name, certs_dir)))
    return _MAIN.format(servers="\n".join(servers), ciphers=TLS_CIPHERS)


SNIPPETS_DIR = "/etc/nginx/certbotless"


def challenge_snippet_target() -> str:
    return f"{SNIPPETS_DIR}/acme-challenge.conf"


def cert_snippet_target(cert_name: str) -> str:
    return f"{SNIPPETS_DIR}/certs/{cert_name}.conf"


def render_snippets(
    cert_names: Iterable[str], responder_upstream: str, certs_dir: str
) -> dict[str, str]:
    """For an operator's own nginx.conf: target path → snippet text. In a port-80 server,
    `include /etc/nginx/certbotless/acme-challenge.conf;`; in a 443 server,
    `include /etc/nginx/certbotless/certs/<certificate name>.conf;`."""
    snippets = {
        challenge_snippet_target(): "# Managed by certbotless: ACME HTTP-01 challenges.\n"
        + f"""location ^~ {CHALLENGE_LOCATION} {{
    resolver 127.0.0.11 valid=10s ipv6=off;
    set $certbotless_responder {responder_upstream};
    proxy_pass http://$certbotless_responder;
    proxy_set_header Host $host;
}}
"""
    }
    for name in sorted(cert_names):
        files = cert_files(name, certs_dir)
        snippets[cert_snippet_target(name)] = (
            f"# Managed by certbotless: certificate {name}.\n"
            f"ssl_certificate {files.fullchain};\nssl_certificate_key {files.privkey};\n"
        )
    return snippets


def placeholder_certificate() -> tuple[bytes, bytes]:
    """A self-signed pair for names whose certificate is not issued yet (own nginx.conf)."""
    return _stand_in_certificate()


def _challenge_location(responder_upstream: str) -> str:
    return f"""
        location ^~ {CHALLENGE_LOCATION} {{
            set $certbotless_responder {responder_upstream};
            proxy_pass http://$certbotless_responder;
            proxy_set_header Host $host;
        }}"""


def _default_servers(responder_upstream: str) -> str:
    return f"""
    server {{
        listen 80 default_server;
        server_name _;
{_challenge_location(responder_upstream)}
        location / {{
            return 404;
        }}
    }}

    server {{
        listen 443 ssl default_server;
        server_name _;
        ssl_reject_handshake on;
    }}"""


def _http_server(host: str, routes: list[Route], responder_upstream: str, redirect: bool) -> str:
    body = (
        "\n        location / {\n            return 308 https://$host$request_uri;\n        }"
        if redirect
        else _proxy_locations(routes)
    )
    return f"""
    server {{
        listen 80;
        server_name {host};
{_challenge_location(responder_upstream)}
{body}
    }}"""


def _https_server(host: str, routes: list[Route], files: CertFiles) -> str:
    hsts = (
        '\n        add_header Strict-Transport-Security "max-age=63072000" always;'
        if any(route.hsts for route in routes)
        else ""
    )
    return f"""
    server {{
        listen 443 ssl http2;
        server_name {host};
        ssl_certificate {files.fullchain};
        ssl_certificate_key {files.privkey};{hsts}
{_proxy_locations(routes)}
    }}"""


_PROXY_HEADERS = """\
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;"""

_WEBSOCKET_HEADERS = """
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;"""


def _proxy_locations(routes: list[Route]) -> str:
    """One location per route (longest path first), plus its auth and error-page locations.
    Without a route at `/`, other paths get a plain 404 rather than nginx's own files."""
    blocks = []
    for index, route in enumerate(routes):
        extra = ""
        if route.max_body_size is not None:
            extra += f"\n            client_max_body_size {route.max_body_size};"
        if route.auth_url is not None:
            extra += f"\n            auth_request /.certbotless/auth/{index};"
        if route.error_pages is not None:
            codes = " ".join(str(code) for code in route.error_pages.statuses)
            extra += (
                "\n            proxy_intercept_errors on;"
                f"\n            error_page {codes} @certbotless_errors_{index};"
            )
        blocks.append(
            f"""
        location {route.path} {{
            set $upstream http://{route.service}:{route.port};
            proxy_pass $upstream;
{_PROXY_HEADERS}{_WEBSOCKET_HEADERS}{extra}
        }}"""
        )
        if route.auth_url is not None:
            blocks.append(_auth_location(index, route.auth_url))
        if route.error_pages is not None:
            page = route.error_pages.url.replace("{status}", "$status")
            blocks.append(
                f"""
        location @certbotless_errors_{index} {{
            set $error_page {page};
            proxy_pass $error_page;
            proxy_method GET;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }}"""
            )
    if not any(route.path == "/" for route in routes):
        blocks.append("\n        location / {\n            return 404;\n        }")
    return "\n".join(blocks)


def _auth_location(index: int, auth_url: str) -> str:
    """Forward auth: nginx asks `auth_url` with the client's headers; 2xx lets the request
    through, 401/403 go back to the client, anything else is a 500."""
    return f"""
        location = /.certbotless/auth/{index} {{
            internal;
            set $auth_url {auth_url};
            proxy_pass $auth_url;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
        }}"""


_MAIN = """\
# Rendered by certbotless. Do not edit: the next pass replaces it.
worker_processes auto;
error_log stderr warn;

events {{
    worker_connections 4096;
}}

http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    server_tokens off;
    server_names_hash_bucket_size 128;

    # Docker's embedded DNS; variables in proxy_pass make nginx re-resolve and start even when an
    # upstream is down.
    resolver 127.0.0.11 valid=10s ipv6=off;
    resolver_timeout 5s;

    log_format certbotless '$remote_addr [$time_local] "$host" "$request" $status '
                           '$body_bytes_sent rt=$request_time ua="$upstream_addr" '
                           'urt=$upstream_response_time';
    access_log /dev/stdout certbotless;

    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}

    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers {ciphers};
    ssl_prefer_server_ciphers off;
    ssl_session_cache shared:certbotless:10m;
    ssl_session_timeout 1d;
    ssl_session_tickets off;
{servers}
}}
"""


_LINE_RE = re.compile(r"nginx\.conf:(\d+)")
_CONTEXT_RE = re.compile(r"^\s*(server_name|location)\s+([^{;]+)")


def explain_nginx_error(message: str, text: str) -> str:
    """nginx's message, plus the server and location of the line it names, so the operator
    knows which route (and so which service's labels) to look at."""
    match = _LINE_RE.search(message)
    if match is None:
        return message
    lines = text.splitlines()
    number = int(match.group(1))
    context: dict[str, str] = {}
    for line in lines[: max(number, 0)]:
        found = _CONTEXT_RE.match(line)
        if found:
            if found.group(1) == "server_name":
                context = {"server": found.group(2).strip()}
            else:
                context["location"] = found.group(2).strip()
    where = ", ".join(f"{key} {value}" for key, value in context.items())
    offending = lines[number - 1].strip() if 0 < number <= len(lines) else ""
    return f"{message}\n  at line {number}: {offending}" + (f" ({where})" if where else "")


_CERT_PATH_RE = re.compile(r"^\s*ssl_certificate(?:_key)?\s+(\S+);", re.MULTILINE)


def validate_nginx_conf(text: str, certs_dir: str, nginx: str = "nginx") -> None:
    """Run `nginx -t` on `text` with stand-in certificates at the paths it names.

    Secrets cannot be read back from the swarm, so the certificate files are self-signed stand-ins
    with the real paths rewritten into a scratch directory; syntax, paths and TLS settings are what
    this proves.
    """
    with tempfile.TemporaryDirectory(prefix="certbotless-nginx-") as scratch:
        root = Path(scratch)
        local = text.replace(certs_dir + "/", f"{root}/certs/")
        chain_pem, key_pem = _stand_in_certificate()
        for path in _CERT_PATH_RE.findall(local):
            file = Path(path)
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(key_pem if path.endswith("privkey.pem") else chain_pem)
        conf = root / "nginx.conf"
        conf.write_text(local)
        result = subprocess.run(
            [
                nginx,
                "-t",
                "-q",
                "-e",
                "stderr",
                "-p",
                f"{root}/",
                "-c",
                str(conf),
                "-g",
                f"pid {root}/nginx.pid;",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            message = result.stderr.strip().replace(str(root), "<scratch>")
            raise NginxConfigError(explain_nginx_error(message, text))


@cache
def _stand_in_certificate() -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "certbotless validation")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.PEM), private_key_pem(key)
