"""Routes + current certificates → nginx.conf text, and its validation with `nginx -t`."""

from __future__ import annotations

import datetime
import hashlib
import re
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path, PurePosixPath

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from certbotless.acme.keys import private_key_pem
from certbotless.labels.settle import INTERNAL_LOCATION
from certbotless.model import CHALLENGE_PREFIX, Cors, Route, StoredCert, is_ip_address

NGINX_CONF_TARGET = "/etc/nginx/nginx.conf"
SNIPPETS_DIR = "/etc/nginx/certbotless"
# The rendered configuration's server blocks, which nginx.conf includes (`hosts/*.conf`), and
# the locations of a host too large for one file, which its servers include.
HOSTS_DIR = f"{SNIPPETS_DIR}/hosts"
LOCATIONS_DIR = f"{SNIPPETS_DIR}/locations"
HTPASSWD_DIR = f"{SNIPPETS_DIR}/htpasswd"  # basic-auth users, one file per set
# Basic-auth users an operator keeps in a Swarm secret (the labels name it), mounted here by
# its name: certbotless never reads them.
HTPASSWD_SECRETS_DIR = f"{SNIPPETS_DIR}/htpasswd-secrets"
HSTS_VALUE = "max-age=63072000"
# Each file is one Swarm config. Docker 20.10's swarmkit refuses configs over 500 KiB (newer
# engines 1000 KB): stay well below, whatever the engine.
MAX_FILE_BYTES = 400 * 1024
# Hosts share a file by the first hex digits of their name's SHA-256: a change to one host
# changes one file, and 5,000 hosts make 256 files of about 20 hosts.
_HOST_GROUP_DIGITS = 2

NginxVersion = tuple[int, int, int]
# From 1.25.1 nginx wants `http2 on;` and warns about `listen ... http2`; older ones reject it.
HTTP2_DIRECTIVE_SINCE: NginxVersion = (1, 25, 1)
# Debian bookworm's nginx, the oldest the edge image is built on.
DEFAULT_NGINX_VERSION: NginxVersion = (1, 22, 0)

# A redirect=true route asked for over plain HTTP before its host has a certificate.
NO_CERTIFICATE_YET_RETRY_AFTER = 60

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


NginxFiles = dict[str, str]  # target path in the edge → text; nginx.conf first


def render_nginx_conf(
    routes: Iterable[Route],
    certs: Mapping[str, StoredCert],
    responder_upstream: str,
    certs_dir: str,
    *,
    nginx_version: NginxVersion = DEFAULT_NGINX_VERSION,
    front_subnets: Sequence[str] = (),
    max_file_bytes: int = MAX_FILE_BYTES,
) -> NginxFiles:
    """nginx.conf and the files it includes, none over `max_file_bytes`. `certs` maps
    certificate name → current version; a host without one gets no 443 server.
    `nginx_version` is the edge's nginx: it decides how HTTP/2 is switched on. `front_subnets`:
    the L4 front's network; with one, every listener speaks PROXY protocol and the client's
    address is taken from it, trusted from those subnets only."""
    by_host: dict[str, list[Route]] = {}
    for route in routes:
        for host in route.hosts:
            by_host.setdefault(host, []).append(route)
    cert_for_host = certificate_per_host(certs, by_host)
    http2_directive = nginx_version >= HTTP2_DIRECTIVE_SINCE
    # One form on every 443 listen, the default server's included: listen options are per
    # address, so servers sharing 443 must agree.
    proxy_protocol = " proxy_protocol" if front_subnets else ""
    listen_80 = f"listen 80{proxy_protocol}"
    listen_443 = ("listen 443 ssl" if http2_directive else "listen 443 ssl http2") + proxy_protocol

    # Clients of an IP address send no SNI: its server must be the default one (discovery lets
    # one IP address through).
    ip_default = next(
        (host for host in sorted(by_host) if is_ip_address(host) and host in cert_for_host), None
    )
    servers: dict[str, list[_Server]] = {}
    for host in sorted(by_host):
        host_routes = sorted(by_host[host], key=lambda r: r.path, reverse=True)
        cert_name = cert_for_host.get(host)
        servers[host] = [
            _http_server(host, host_routes, responder_upstream, listen_80, cert_name is not None)
        ]
        if cert_name is not None:
            files = cert_files(cert_name, certs_dir)
            servers[host].append(
                _https_server(host, host_routes, files, listen_443, default=host == ip_default)
            )
    main = _MAIN.format(
        default_servers=_default_servers(
            responder_upstream, listen_80, listen_443, ip_default is None
        ),
        hosts_dir=HOSTS_DIR,
        ciphers=TLS_CIPHERS,
        hash_sizes=_server_names_hash_sizes(by_host),
        http2=_HTTP2_ON if http2_directive else "",
        real_ip=_real_ip(front_subnets),
        rate_zones=_rate_zones(by_host),
    )
    return {NGINX_CONF_TARGET: main, **_host_files(servers, max_file_bytes),
            **_htpasswd_files(by_host)}  # fmt: skip


def certificate_per_host(certs: Mapping[str, StoredCert], hosts: Iterable[str]) -> dict[str, str]:
    """Each host's certificate name: the one naming it, else a wildcard one covering it (one
    label more), until the host has its own."""
    named = {host: cert.name for cert in certs.values() for host in cert.domains}
    for host in hosts:
        wildcard = "*." + host.partition(".")[2]
        if host not in named and wildcard in named and not host.startswith("*"):
            named[host] = named[wildcard]
    return named


def _rate_zones(by_host: Mapping[str, list[Route]]) -> str:
    routes = {route for host_routes in by_host.values() for route in host_routes}
    zones = sorted({
        f"    limit_req_zone $binary_remote_addr zone={rate_zone(r)}:1m "
        f"rate={r.rate_limit.per_minute}r/m;\n"
        for r in routes if r.rate_limit is not None
    } | {
        f"    limit_conn_zone $binary_remote_addr zone={connection_zone(r)}:1m;\n"
        for r in routes if r.max_connections is not None
    })  # fmt: skip
    return "".join(zones)


def _htpasswd_files(by_host: Mapping[str, list[Route]]) -> NginxFiles:
    return {
        htpasswd_target(route): "\n".join(route.basic_auth.users) + "\n"
        for host_routes in by_host.values()
        for route in host_routes
        if route.basic_auth is not None and not route.basic_auth.secret
    }


def htpasswd_secrets(routes: Iterable[Route]) -> set[str]:
    """The Swarm secrets holding the basic-auth users of `routes`."""
    return {r.basic_auth.secret for r in routes if r.basic_auth is not None and r.basic_auth.secret}


def files_listing(files: Mapping[str, str]) -> str:
    """Every file of a configuration, each after a header naming where the edge mounts it."""
    return "".join(f"# --- {target}\n{text}" for target, text in files.items())


# Room nginx needs per name in a hash bucket: a pointer, the name and 2 bytes, aligned to 8.
def _hash_entry_bytes(name: str) -> int:
    return (8 + len(name) + 2 + 7) // 8 * 8


def _server_names_hash_sizes(hosts: Iterable[str]) -> str:
    """Sizes of nginx's server-name hash from the names rendered: a bucket holds at least four
    of the longest (nginx's 128 fits one name of up to 110 characters and fails `nginx -t` on a
    longer one; DNS allows 253), and the table has room for twice as many buckets as names,
    so that nginx finds a layout without warning. Powers of two: nginx.conf changes rarely."""
    names = ["_", *hosts]
    bucket = _power_of_two_at_least(max(128, 4 * max(_hash_entry_bytes(n) for n in names)))
    max_size = _power_of_two_at_least(max(512, 2 * len(names)))
    return f"server_names_hash_bucket_size {bucket};\n    server_names_hash_max_size {max_size};"


def _power_of_two_at_least(value: int) -> int:
    return 1 << (value - 1).bit_length()


@dataclass(frozen=True)
class _Server:
    """One server block: its directives before the locations, and the locations."""

    port: int
    head: str
    locations: list[str] = field(default_factory=list)

    def text(self, body: str | None = None) -> str:
        """The block; `body` in place of the locations (includes of them elsewhere)."""
        inside = "\n".join(self.locations) if body is None else body
        return f"""
    server {{
        {self.head}
{inside}
    }}"""


def _host_group(host: str) -> str:
    return hashlib.sha256(host.encode()).hexdigest()[:_HOST_GROUP_DIGITS]


def _host_files(servers: Mapping[str, list[_Server]], max_bytes: int) -> NginxFiles:
    """Hosts grouped into files by the hash of their name, so a change to one host changes one
    file and unchanged files keep their Swarm config. A group too large for one config has a
    file per host; a host too large has its locations in further files."""
    groups: dict[str, list[str]] = {}
    for host in sorted(servers):
        groups.setdefault(_host_group(host), []).append(host)
    files: NginxFiles = {}
    for group, hosts in sorted(groups.items()):
        blocks = {host: "\n".join(server.text() for server in servers[host]) for host in hosts}
        text = _file_header(f"hosts whose name hashes to {group}") + "\n".join(blocks.values())
        if len(text.encode()) <= max_bytes:
            files[f"{HOSTS_DIR}/{group}.conf"] = text + "\n"
            continue
        for host in hosts:
            files.update(_one_host_files(host, servers[host], blocks[host], max_bytes))
    return files


def _one_host_files(host: str, servers: list[_Server], text: str, max_bytes: int) -> NginxFiles:
    header = _file_header(host)
    # nginx's `include` reads '*' as a glob: a wildcard host's file names spell it out.
    stem = host.replace("*", "_wildcard_")
    if len((header + text).encode()) <= max_bytes:
        return {f"{HOSTS_DIR}/{stem}.conf": header + text + "\n"}
    files: NginxFiles = {}
    blocks = []
    for server in servers:
        includes = []
        for number, chunk in enumerate(_chunks(server.locations, max_bytes - 200), start=1):
            target = f"{LOCATIONS_DIR}/{stem}-{server.port}-{number}.conf"
            what = f"{host}, port {server.port}, part {number}"
            files[target] = _file_header(what) + "\n".join(chunk) + "\n"
            includes.append(f"        include {target};")
        blocks.append(server.text("\n".join(includes)))
    return {f"{HOSTS_DIR}/{stem}.conf": header + "\n".join(blocks) + "\n", **files}


def _chunks(locations: list[str], max_bytes: int) -> list[list[str]]:
    """Consecutive locations, as few to a chunk as fit (their order is kept; nginx matches
    prefixes by length anyway)."""
    chunks: list[list[str]] = [[]]
    size = 0
    for location in locations:
        length = len(location.encode()) + 1
        if chunks[-1] and size + length > max_bytes:
            chunks.append([])
            size = 0
        chunks[-1].append(location)
        size += length
    return chunks


def _file_header(what: str) -> str:
    return f"# Rendered by certbotless ({what}). Do not edit: the next pass replaces it.\n"


def _real_ip(front_subnets: Sequence[str]) -> str:
    if not front_subnets:
        return ""
    trusted = "".join(f"\n    set_real_ip_from {subnet};" for subnet in front_subnets)
    return f"""
    # Behind the L4 front: the client's address is the one in its PROXY protocol header, and a
    # header from anywhere else changes nothing.{trusted}
    real_ip_header proxy_protocol;
"""


_NGINX_VERSION_RE = re.compile(r"\bnginx/([0-9]+)\.([0-9]+)\.([0-9]+)", re.ASCII)


def parse_nginx_version(text: str) -> NginxVersion:
    """The version in `nginx -v` output: `nginx version: nginx/1.26.3`, `nginx/1.25.1 (Ubuntu)`."""
    match = _NGINX_VERSION_RE.search(text)
    if match is None:
        raise ValueError(
            f"cannot read an nginx version from {text.strip()!r}; "
            "expected `nginx -v` output such as 'nginx version: nginx/1.26.3'"
        )
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


@cache
def local_nginx_version(nginx: str = "nginx") -> NginxVersion:
    """The version of the nginx on this machine (`nginx -v` prints it on stderr)."""
    result = subprocess.run([nginx, "-v"], capture_output=True, text=True, timeout=30, check=False)
    return parse_nginx_version(result.stderr + result.stdout)


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
        + f"""location ^~ {CHALLENGE_PREFIX} {{
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
        location ^~ {CHALLENGE_PREFIX} {{
            set $certbotless_responder {responder_upstream};
            proxy_pass http://$certbotless_responder;
            proxy_set_header Host $host;
        }}"""


def _default_servers(
    responder_upstream: str, listen_80: str, listen_443: str, reject_unknown: bool
) -> str:
    """Unknown names: challenges still reach the sidecar; /healthz answers load balancers that
    check each edge node by address; TLS handshakes are refused, unless an IP address has a
    certificate: its clients send no name, so its server is the default one instead."""
    reject = f"""

    server {{
        {listen_443} default_server;
        server_name _;
        ssl_reject_handshake on;
    }}"""
    return f"""
    server {{
        {listen_80} default_server;
        server_name _;
{_challenge_location(responder_upstream)}
        location = /healthz {{
            access_log off;
            default_type text/plain;
            return 200 "ok\\n";
        }}
        location / {{
            return 404;
        }}
    }}{reject if reject_unknown else ""}"""


def _http_server(
    host: str, routes: list[Route], responder_upstream: str, listen_80: str, has_cert: bool
) -> _Server:
    """Port 80, decided per route: redirect=false routes are proxied, every other one is sent to
    HTTPS (or, before the certificate exists, refused) so it is never served in clear."""
    if has_cert and all(route.redirect_to_https for route in routes):
        body = [_to_https_location("/")]
    else:
        body = _route_locations(routes, plain_http=True, has_cert=has_cert)
    return _Server(
        80,
        f"{listen_80};\n        server_name {host};",
        [_challenge_location(responder_upstream), *body],
    )


def _https_server(
    host: str, routes: list[Route], files: CertFiles, listen_443: str, default: bool = False
) -> _Server:
    # Never HSTS on a host that also serves a plain route: browsers would refuse that route
    # (discovery reports the pair as a label problem).
    hsts = any(route.hsts for route in routes) and all(r.redirect_to_https for r in routes)
    hsts_header = (
        f'\n        add_header Strict-Transport-Security "{HSTS_VALUE}" always;' if hsts else ""
    )
    return _Server(
        443,
        f"""{listen_443}{" default_server" if default else ""};
        server_name {host};
        ssl_certificate {files.fullchain};
        ssl_certificate_key {files.privkey};{hsts_header}""",
        _route_locations(routes, plain_http=False, has_cert=True, hsts=hsts),
    )


def _to_https_location(path: str) -> str:
    return f"""
        location {path} {{
            return 308 https://$host$request_uri;
        }}"""


def _not_yet_https_location(path: str) -> str:
    return f"""
        location {path} {{
            add_header Retry-After {NO_CERTIFICATE_YET_RETRY_AFTER} always;
            default_type text/plain;
            return 503 "HTTPS for this site is being set up; retry in a minute\\n";
        }}"""


# The edge is the first hop: X-Forwarded-For is the client's address, never what it sent.
# `Proxy` is cleared against httpoxy.
_FORWARDED_HEADERS = """
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header Proxy "";"""

_PROXY_HEADERS = (
    """
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;"""
    + _FORWARDED_HEADERS
    + """
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;"""
)


def _route_locations(
    routes: list[Route], plain_http: bool, has_cert: bool, hsts: bool = False
) -> list[str]:
    """One location per route (longest path first), plus its auth and error-page locations.
    On plain HTTP, routes that want HTTPS only redirect. Without a route at `/`, other paths get
    a plain 404 rather than nginx's own files."""
    blocks = []
    # Indexes follow the host's route list, so both servers name a route's helpers alike.
    for index, route in enumerate(routes):
        if plain_http and route.redirect_to_https:
            match = _location_match(route)
            blocks.append(_to_https_location(match) if has_cert else _not_yet_https_location(match))
        else:
            blocks.extend(_proxy_locations(index, route, hsts))
    if not any(route.path == "/" and not route.exact_path for route in routes):
        blocks.append("\n        location / {\n            return 404;\n        }")
    return blocks


def _location_match(route: Route) -> str:
    return f"= {route.path}" if route.exact_path else route.path


def _match_conditions(route: Route) -> str:
    """Traefik's Method and Header(s) matchers: a request they do not match gets 404, as in
    Traefik when no router matches (checked before access, in nginx's rewrite phase)."""
    lines = []
    if route.methods:
        lines.append(f"if ($request_method !~ ^({'|'.join(route.methods)})$) {{ return 404; }}")
    lines += [
        f'if ($http_{name.lower().replace("-", "_")} != "{value}") {{ return 404; }}'
        for name, value in route.match_headers
    ]
    return "".join(f"\n            {line}" for line in lines)


def _proxy_locations(index: int, route: Route, hsts: bool = False) -> list[str]:
    extra = _match_conditions(route)
    if route.cors is not None:
        extra += _cors_checks(route.cors)
    if route.timeout is not None:
        extra += (
            f"\n            proxy_read_timeout {route.timeout};"
            f"\n            proxy_send_timeout {route.timeout};"
        )
    if route.max_body_size is not None:
        extra += f"\n            client_max_body_size {route.max_body_size};"
    extra += _access_directives(route)
    if route.auth_url is not None:
        extra += f"\n            auth_request {INTERNAL_LOCATION}auth/{index};"
        extra += _auth_response_headers(index, route.auth_response_headers)
    if route.error_pages is not None:
        codes = " ".join(str(code) for code in route.error_pages.statuses)
        extra += (
            "\n            proxy_intercept_errors on;"
            f"\n            error_page {codes} @certbotless_errors_{index};"
        )
    extra += _rewrites(route) + _header_directives(route, hsts)
    blocks = [
        f"""
        location {_location_match(route)} {{
            set $upstream {route.upstream_scheme}://{route.service}:{route.port};
            proxy_pass $upstream;{_PROXY_HEADERS}{extra}
        }}"""
    ]
    if route.auth_url is not None:
        blocks.append(_auth_location(index, route.auth_url))
    if route.error_pages is not None:
        blocks.append(_error_pages_location(index, route.error_pages.url))
    return blocks


def htpasswd_target(route: Route) -> str:
    """Where the edge mounts a route's basic-auth users: the secret that holds them, by its
    name, or the users from the labels, named by their content."""
    assert route.basic_auth is not None
    if route.basic_auth.secret:
        return htpasswd_secret_target(route.basic_auth.secret)
    digest = hashlib.sha256("\n".join(route.basic_auth.users).encode()).hexdigest()[:16]
    return f"{HTPASSWD_DIR}/{digest}"


def htpasswd_secret_target(secret: str) -> str:
    return f"{HTPASSWD_SECRETS_DIR}/{secret}"


def rate_zone(route: Route) -> str:
    """The shared-memory zone counting one route's requests (a zone per route: routes never
    share a budget)."""
    assert route.rate_limit is not None
    key = f"{route.service}|{route.path}|{route.exact_path}|{route.rate_limit.per_minute}"
    return "certbotless_" + hashlib.sha256(key.encode()).hexdigest()[:12]


def connection_zone(route: Route) -> str:
    """The shared-memory zone counting one route's requests in flight per client."""
    key = f"{route.service}|{route.path}|{route.exact_path}|connections"
    return "certbotless_" + hashlib.sha256(key.encode()).hexdigest()[:12]


def _access_directives(route: Route) -> str:
    """Who gets in, checked before anything is proxied: address, then password, then rate."""
    lines = [f"allow {network};" for network in route.allow_from]
    if route.allow_from:
        lines.append("deny all;")
    if route.basic_auth is not None:
        lines += [f'auth_basic "{route.basic_auth.realm}";',
                  f"auth_basic_user_file {htpasswd_target(route)};"]  # fmt: skip
        if route.basic_auth.remove_header:
            lines.append('proxy_set_header Authorization "";')
    if route.rate_limit is not None:
        lines += [f"limit_req zone={rate_zone(route)} burst={route.rate_limit.burst} nodelay;",
                  "limit_req_status 429;"]  # fmt: skip
    if route.max_connections is not None:
        lines += [f"limit_conn {connection_zone(route)} {route.max_connections};",
                  "limit_conn_status 429;"]  # fmt: skip
    if route.retries:
        lines += ["proxy_next_upstream error timeout;",
                  f"proxy_next_upstream_tries {route.retries + 1};"]  # fmt: skip
    if route.upstream_scheme == "https":
        lines.append("proxy_ssl_server_name on;")
    if route.compress:
        lines += ["gzip on;", "gzip_proxied any;", f"gzip_types {_GZIP_TYPES};"]
    return "".join(f"\n            {line}" for line in lines)


_GZIP_TYPES = (
    "text/plain text/css text/xml application/json application/javascript application/xml "
    "image/svg+xml"
)


def _auth_response_headers(index: int, headers: tuple[str, ...]) -> str:
    lines = []
    for number, header in enumerate(headers):
        variable = f"$certbotless_auth_{index}_{number}"
        upstream = "$upstream_http_" + header.lower().replace("-", "_")
        lines += [f"auth_request_set {variable} {upstream};",
                  f"proxy_set_header {header} {variable};"]  # fmt: skip
    return "".join(f"\n            {line}" for line in lines)


def _rewrites(route: Route) -> str:
    """Traefik's stripPrefix then addPrefix, as one rewrite (the first that matches ends);
    or its replacePath(Regex)."""
    if route.replace_path is not None:
        regex, replacement = route.replace_path
        return f'\n            rewrite "{regex}" "{replacement}" break;'
    lines = [
        f"rewrite ^{re.escape(prefix.rstrip('/'))}/?(.*)$ {route.add_prefix}/$1 break;"
        for prefix in route.strip_prefixes
    ]
    if route.add_prefix:
        lines.append(f"rewrite ^(.*)$ {route.add_prefix}$1 break;")
    if len(route.strip_prefixes) == 1:
        lines.append(f"proxy_set_header X-Forwarded-Prefix {route.strip_prefixes[0]};")
    return "".join(f"\n            {line}" for line in lines)


def _header_directives(route: Route, hsts: bool) -> str:
    lines = [f'proxy_set_header {name} "{value}";' for name, value in route.request_headers]
    for name, value in route.response_headers:
        lines.append(
            f'add_header {name} "{value}" always;' if value else f"proxy_hide_header {name};"
        )
    if route.cors is not None:
        lines += _cors_headers(route.cors)
    if hsts and (route.cors is not None or any(value for _, value in route.response_headers)):
        # add_header here stops the server's from being inherited: repeat HSTS.
        lines.append(f'add_header Strict-Transport-Security "{HSTS_VALUE}" always;')
    return "".join(f"\n            {line}" for line in lines)


_ASKS = '"${certbotless_cors_preflight}m"'  # "o" (OPTIONS) then "m" (a method asked): "om"


def _cors_checks(cors: Cors) -> str:
    """Traefik's CORS, first part (nginx's rewrite phase, so before any rewrite's `break`): the
    request's Origin kept when listed (`*` when `*` is), and preflights (OPTIONS with
    Access-Control-Request-Method) answered 200 here with the allowed methods, headers and max
    age. An empty variable sends no header."""
    origin, preflight = "$certbotless_cors_origin", "$certbotless_cors_preflight"
    lines = [f'set {origin} "";']
    if "*" in cors.origins:
        lines.append(f'set {origin} "*";')
    elif cors.origins:
        listed = "|".join(re.escape(o) for o in cors.origins)
        lines.append(f'if ($http_origin ~ "^({listed})$") {{ set {origin} $http_origin; }}')
    lines += [f'set {variable} "";' for variable in _CORS_ANSWERS.values()]
    lines += [f'set {preflight} "";',
              f'if ($request_method = OPTIONS) {{ set {preflight} "o"; }}',
              f"if ($http_access_control_request_method) {{ set {preflight} {_ASKS}; }}",
              f'if ({preflight} = "om") {{ '
              + "".join(f'set {_CORS_ANSWERS[n]} "{v}"; ' for n, v in _preflight(cors) if v)
              + "return 200; }"]  # fmt: skip
    return "".join(f"\n            {line}" for line in lines)


_CORS_ANSWERS = {
    "Access-Control-Allow-Methods": "$certbotless_cors_methods",
    "Access-Control-Allow-Headers": "$certbotless_cors_headers",
    "Access-Control-Max-Age": "$certbotless_cors_max_age",
}


def _preflight(cors: Cors) -> list[tuple[str, str]]:
    return [
        ("Access-Control-Allow-Methods", ", ".join(cors.methods)),
        ("Access-Control-Allow-Headers", ", ".join(cors.headers)),
        ("Access-Control-Max-Age", "" if cors.max_age is None else str(cors.max_age)),
    ]


def _cors_headers(cors: Cors) -> list[str]:
    """Traefik's CORS, second part: the answer's headers."""
    lines = ["add_header Access-Control-Allow-Origin $certbotless_cors_origin always;"]
    lines += [f"add_header {name} {variable} always;" for name, variable in _CORS_ANSWERS.items()]
    if cors.credentials:
        lines.append('add_header Access-Control-Allow-Credentials "true" always;')
    if cors.expose_headers:
        exposed = ", ".join(cors.expose_headers)
        lines.append(f'add_header Access-Control-Expose-Headers "{exposed}" always;')
    if cors.vary:
        lines.append("add_header Vary Origin always;")
    return lines


def _auth_location(index: int, auth_url: str) -> str:
    """Forward auth: nginx asks `auth_url` with the client's headers (and the request line in
    both the X-Original-* and Traefik's X-Forwarded-* names); 2xx lets the request through,
    401/403 go back to the client, anything else (a timeout included) is a 500. The timeouts
    are short because every request of the route waits for this answer."""
    return f"""
        location = {INTERNAL_LOCATION}auth/{index} {{
            internal;
            set $auth_url {auth_url};
            proxy_pass $auth_url;
            proxy_ssl_server_name on;
            proxy_connect_timeout 2s;
            proxy_send_timeout 5s;
            proxy_read_timeout 5s;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Forwarded-Uri $request_uri;
            proxy_set_header X-Forwarded-Method $request_method;{_FORWARDED_HEADERS}
        }}"""


def _error_pages_location(index: int, url: str) -> str:
    page = url.replace("{status}", "$status")
    return f"""
        location @certbotless_errors_{index} {{
            set $error_page {page};
            proxy_pass $error_page;
            proxy_ssl_server_name on;
            proxy_method GET;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header Proxy "";
        }}"""


_HTTP2_ON = """
    # HTTP/2 on every 443 server (nginx >= 1.25.1 sets it here rather than on `listen`).
    http2 on;
"""

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
    {hash_sizes}

    # Docker's embedded DNS; variables in proxy_pass make nginx re-resolve and start even when an
    # upstream is down.
    resolver 127.0.0.11 valid=10s ipv6=off;
    resolver_timeout 5s;
    # With dnsrr, a task that is gone leaves a dead address behind for up to `valid`: fail over
    # to the next one quickly instead of after nginx's default 60 s.
    proxy_connect_timeout 5s;

    log_format certbotless '$remote_addr [$time_local] "$host" "$request" $status '
                           '$body_bytes_sent req=$request_length rt=$request_time '
                           'upstream="$upstream_addr" upstream_status=$upstream_status '
                           'urt=$upstream_response_time agent="$http_user_agent"';
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
{http2}{real_ip}{rate_zones}{default_servers}

    include {hosts_dir}/*.conf;
}}
"""


_PLACE_RE = re.compile(r"(/[^\s:]*\.conf):([0-9]+)", re.ASCII)
_CONTEXT_RE = re.compile(r"^\s*(server_name|location)\s+([^{;]+)")


def explain_nginx_error(message: str, files: str | Mapping[str, str]) -> str:
    """nginx's message, plus the server and location of the line it names, so the operator
    knows which route (and so which service's labels) to look at. `files`: target path → text
    (or nginx.conf's text alone)."""
    match = _PLACE_RE.search(message)
    if match is None:
        return message
    path, number = match.group(1), int(match.group(2))
    text = _file_named(path, {NGINX_CONF_TARGET: files} if isinstance(files, str) else files)
    if text is None:
        return message
    lines = text.splitlines()
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


def _file_named(path: str, files: Mapping[str, str]) -> str | None:
    """The file nginx names: by its path, or else by the only one of that file name."""
    if path in files:
        return files[path]
    same_name = [text for target, text in files.items() if Path(target).name == Path(path).name]
    return same_name[0] if len(same_name) == 1 else None


_CERT_PATH_RE = re.compile(r"\bssl_certificate(_key)?\s+[^\s;]+;", re.ASCII)


def validate_nginx_conf(
    files: str | Mapping[str, str],
    *,
    command: Sequence[str] = ("nginx",),
    root: Path = Path("/"),
) -> tuple[str, ...]:
    """Run `nginx -t` on a configuration (target path → text, as `render_nginx_conf` gives it;
    or nginx.conf's text alone) with stand-in certificates at the paths it names. Raises
    NginxConfigError when nginx rejects it; returns nginx's warnings (each explained like an
    error), which an edge would print at every start.

    Secrets cannot be read back from the swarm, so every certificate and key is one self-signed
    stand-in pair in a scratch directory, where the included files go too; syntax, includes and
    TLS settings are what this proves (the edge image's check proves the real pairs).

    `command` is the argv that runs nginx and `root` the directory that nginx sees as `/`: with
    `command=("chroot", root, "nginx")` the scratch tree goes under `root`/tmp, and nginx is given
    the paths as it sees them.
    """
    files = {NGINX_CONF_TARGET: files} if isinstance(files, str) else dict(files)
    scratch_parent = None if root == Path("/") else root / "tmp"
    with tempfile.TemporaryDirectory(prefix="certbotless-nginx-", dir=scratch_parent) as scratch:
        seen = PurePosixPath("/") / Path(scratch).relative_to(root)  # the scratch tree to nginx
        _write_scratch_tree(files, root, seen)
        result = subprocess.run(
            [*command, "-t", "-q", "-e", "stderr", "-p", f"{seen}/", "-c", f"{seen}/nginx.conf",
             "-g", f"pid {seen}/nginx.pid;"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    output = (
        result.stderr.strip()
        .replace(f"{seen}/nginx.conf", NGINX_CONF_TARGET)
        .replace(f"{seen}/certbotless/", f"{SNIPPETS_DIR}/")
        .replace(str(seen), "<scratch>")
    )
    if result.returncode != 0 or "[emerg]" in output:
        raise NginxConfigError(explain_nginx_error(output, files))
    return tuple(
        explain_nginx_error(line, files) for line in output.splitlines() if "[warn]" in line
    )


def _write_scratch_tree(files: Mapping[str, str], root: Path, seen: PurePosixPath) -> None:
    """The configuration under `seen` (as nginx sees it; `root` / `seen` here), its paths
    rewritten there, and every certificate and key it names pointed at one stand-in pair
    (lines keep their numbers, so nginx's messages still name the right ones)."""
    stand_in = root / seen.relative_to("/") / "stand-in"
    stand_in.mkdir()
    chain_pem, key_pem = _stand_in_certificate()
    (stand_in / "fullchain.pem").write_bytes(chain_pem)
    (stand_in / "privkey.pem").write_bytes(key_pem)

    def to_stand_in(match: re.Match[str]) -> str:
        file = "privkey.pem" if match.group(1) else "fullchain.pem"
        return f"ssl_certificate{match.group(1) or ''} {seen}/stand-in/{file};"

    for target, text in files.items():
        local = _CERT_PATH_RE.sub(to_stand_in, text).replace(
            SNIPPETS_DIR + "/", f"{seen}/certbotless/"
        )
        if target == NGINX_CONF_TARGET:
            relative = PurePosixPath("nginx.conf")
        else:
            relative = PurePosixPath("certbotless") / PurePosixPath(target).relative_to(
                SNIPPETS_DIR
            )
        destination = root / seen.relative_to("/") / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(local)


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
