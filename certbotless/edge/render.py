"""Routes + current certificates → the files of a rendered nginx configuration: nginx.conf,
which includes the hosts' server blocks, grouped into files that each fit in a Swarm config."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from certbotless.edge.breaker import EDGE_ACCESS_LOG
from certbotless.edge.certificates import (
    certificate_check_files,
    certificate_map,
    files_by_name,
    loads_on_first_use,
)
from certbotless.edge.client_certs import client_ca_files, pass_cert_maps
from certbotless.edge.compression import compress_maps
from certbotless.edge.conditions import client_geos
from certbotless.edge.dispatch import ROUTING_PATH_MAPS
from certbotless.edge.guards import htpasswd_files, rate_zones
from certbotless.edge.health_checks import health_locations
from certbotless.edge.mounts import (
    HOSTS_DIR,
    LOCATIONS_DIR,
    NGINX_CONF_TARGET,
    UPSTREAMS_DIR,
    CertFiles,
    cert_files,
    ticket_key_target,
)
from certbotless.edge.nginx_version import (
    DEFAULT_NGINX_VERSION,
    HTTP2_DIRECTIVE_SINCE,
    NginxVersion,
)
from certbotless.edge.njs import js_files, njs_directives
from certbotless.edge.servers import (
    Server,
    certificate_per_host,
    default_servers,
    http_server,
    https_server,
    listen_directives,
    real_ip,
)
from certbotless.edge.shaping import cors_maps
from certbotless.edge.upstream_tls import upstream_ca_files
from certbotless.edge.upstreams import (
    pools_upstreams,
    upstream_files,
    without_unpooled_options,
)
from certbotless.model import Route, StoredCert, is_ip_address

# Each file is one Swarm config. Docker 20.10's swarmkit refuses configs over 500 KiB (newer
# engines 1000 KB): stay well below, whatever the engine.
MAX_FILE_BYTES = 400 * 1024
# Hosts share a file by the first hex digits of their name's SHA-256: a change to one host
# changes one file, and 5,000 hosts make 256 files of about 20 hosts.
_HOST_GROUP_DIGITS = 2

# Mozilla "intermediate" profile (ssl-config.mozilla.org, v5.7): TLS 1.2 + 1.3.
TLS_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
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
    ticket_keys: int = 0,
    certificates_on_first_use: bool = True,
    workers: int | None = None,
) -> NginxFiles:
    """nginx.conf and its included files, none over `max_file_bytes`. `certs`: certificate name →
    current version (a host without one gets no 443 server). `front_subnets`: the L4 front's,
    whose PROXY header alone gives the client's address. `ticket_keys`: see _tickets.
    `certificates_on_first_use` where nginx allows it. `workers`: None: one per CPU."""
    pooled = pools_upstreams(nginx_version)
    # Without upstream blocks, tasks are taken in turn (the deployer says so to the labels).
    routes, _ = without_unpooled_options(list(routes), nginx_version)
    by_host = _routes_by_host(routes)
    cert_for_host = certificate_per_host(certs, by_host)
    http2_directive = nginx_version >= HTTP2_DIRECTIVE_SINCE
    on_first_use = certificates_on_first_use and loads_on_first_use(nginx_version)
    first_use = files_by_name(certs_dir) if on_first_use else None
    listen_80, listen_443 = listen_directives(http2_directive, front_subnets)
    ip_default = _ip_default(by_host, cert_for_host)
    servers = _servers(by_host, cert_for_host, certs_dir, responder_upstream,
                       (listen_80, listen_443), ip_default, (pooled, first_use))  # fmt: skip
    defaults = default_servers(
        responder_upstream, listen_80, listen_443, ip_default is None,
        [route for route in routes if route.every_host], pooled, first_use,
        health_locations(routes),
    )  # fmt: skip
    cache, by_name = _read_on_first_use(on_first_use, servers, cert_for_host, certs_dir, ip_default)
    client_certs, zones, answers = pass_cert_maps(routes), rate_zones(by_host), _answer_maps(routes)
    upstreams = upstream_files(routes) if pooled else {}
    maps = _map_count(servers, defaults, client_certs, zones, answers, *upstreams.values())
    main = _MAIN.format(
        **njs_directives(routes),
        workers=workers or "auto",
        default_servers=defaults,
        access_log=EDGE_ACCESS_LOG,
        hosts_dir=HOSTS_DIR,
        ciphers=TLS_CIPHERS,
        hash_sizes=_server_names_hash_sizes(by_host, on_first_use) + _variables_hash_size(maps),
        http2=_HTTP2_ON if http2_directive else "",
        real_ip=real_ip(front_subnets),
        rate_zones=zones,
        client_geos=client_geos(routes),
        client_certs=client_certs,
        answer_maps=answers,
        routing_path_maps=ROUTING_PATH_MAPS,
        tickets=_tickets(ticket_keys),
        certificate_cache=cache,
        upstreams=f"\n    include {UPSTREAMS_DIR}/*.conf;" if pooled else "",
    )
    return {NGINX_CONF_TARGET: main, **upstreams, **_host_files(servers, max_file_bytes), **by_name,
            **htpasswd_files(by_host), **client_ca_files(by_host), **js_files(routes),
            **upstream_ca_files(routes)}  # fmt: skip


def _answer_maps(routes: Sequence[Route]) -> str:
    """The maps the answers' headers read: CORS's and Traefik's compress's."""
    return cors_maps(routes) + compress_maps(routes)


def _ip_default(by_host: Mapping[str, object], cert_for_host: Mapping[str, object]) -> str | None:
    """Clients of an IP address send no SNI: its server must be the default one (discovery lets
    one IP address through)."""
    return next((h for h in sorted(by_host) if is_ip_address(h) and h in cert_for_host), None)


def _routes_by_host(routes: Iterable[Route]) -> dict[str, list[Route]]:
    by_host: dict[str, list[Route]] = {}
    for route in routes:
        for host in route.hosts:
            by_host.setdefault(host, []).append(route)
    return by_host


def _servers(
    by_host: Mapping[str, list[Route]],
    cert_for_host: Mapping[str, str],
    certs_dir: str,
    responder_upstream: str,
    listens: tuple[str, str],
    ip_default: str | None,
    loading: tuple[bool, CertFiles | None],
) -> dict[str, list[Server]]:
    """Each host's server blocks: port 80, and 443 once it has a certificate. `loading`:
    whether upstreams are pooled, and the files of certificates read on first use (if so)."""
    listen_80, listen_443 = listens
    pooled, first_use = loading
    servers: dict[str, list[Server]] = {}
    for host in sorted(by_host):
        host_routes = by_host[host]
        cert_name = cert_for_host.get(host)
        servers[host] = [
            http_server(
                host, host_routes, responder_upstream, listen_80, cert_name is not None, pooled
            )
        ]
        if cert_name is not None:
            files = cert_files(cert_name, certs_dir)
            https = https_server(host, host_routes, files, listen_443, host == ip_default, pooled,
                                 first_use)  # fmt: skip
            if https.maps == servers[host][0].maps:  # both choose a route alike: maps once
                https = replace(https, maps="")
            servers[host].append(https)
    return servers


def _read_on_first_use(
    on_first_use: bool,
    servers: Mapping[str, list[Server]],
    cert_for_host: Mapping[str, str],
    certs_dir: str,
    ip_default: str | None,
) -> tuple[str, NginxFiles]:
    """With certificates read on first use: nginx.conf's map and cache of them, the map's
    entries, and the check that loads every pair at once (nginx no longer does at start: the
    edge image's check does)."""
    if not on_first_use:
        return "", {}
    certificate_of = {host: cert_for_host[host] for host, both in servers.items() if len(both) == 2}
    default = "" if ip_default is None else cert_for_host[ip_default]
    text, entries = certificate_map(certificate_of, default)
    pairs = {name: cert_files(name, certs_dir) for name in set(certificate_of.values())}
    return text, {**entries, **certificate_check_files(pairs)}


def files_listing(files: Mapping[str, str]) -> str:
    """Every file of a configuration, each after a header naming where the edge mounts it."""
    return "".join(f"# --- {target}\n{text}" for target, text in files.items())


# Room nginx needs per name in a hash bucket: a pointer, the name and 2 bytes, aligned to 8.
def _hash_entry_bytes(name: str) -> int:
    return (8 + len(name) + 2 + 7) // 8 * 8


def _server_names_hash_sizes(hosts: Iterable[str], certificate_map: bool = False) -> str:
    """Sizes of nginx's server-name hash from the names rendered: a bucket holds at least four
    of the longest (nginx's 128 fits one name of up to 110 characters and fails `nginx -t` on a
    longer one; DNS allows 253), and the table has room for twice as many buckets as names,
    so that nginx finds a layout without warning. Powers of two: nginx.conf changes rarely.
    The map of certificates read on first use has the same names: the map hash the same sizes."""
    names = ["_", *hosts]
    bucket = _power_of_two_at_least(max(128, 4 * max(_hash_entry_bytes(n) for n in names)))
    max_size = _power_of_two_at_least(max(512, 2 * len(names)))
    sizes = f"server_names_hash_bucket_size {bucket};\n    server_names_hash_max_size {max_size};"
    if certificate_map:
        sizes += f"\n    map_hash_bucket_size {bucket};\n    map_hash_max_size {max_size};"
    return sizes


def _map_count(servers: Mapping[str, list[Server]], *http_level: str) -> int:
    """The http-level maps: the servers' routing maps and those of `http_level` texts (an
    upstream file's sticky cookie maps start its lines)."""
    texts = [*http_level, *(server.maps for both in servers.values() for server in both)]
    return sum(text.count("\n    map ") + text.count("\nmap ") for text in texts)


def _tickets(keys: int) -> str:
    """TLS session tickets with the `keys` the edge mounts (ticket_key_target), shared by every
    task so that a client resumes its session on any; none: off (each task's own cache)."""
    if keys == 0:
        return "    ssl_session_tickets off;"
    files = "".join(f"\n    ssl_session_ticket_key {ticket_key_target(i)};" for i in range(keys))
    why = "    # Keys shared by every edge task (the first encrypts): a session resumes on any."
    return f"{why}\n    ssl_session_tickets on;{files}"


def _variables_hash_size(maps: int) -> str:
    """Room in nginx's variables hash for the routing maps' variables (one each) beside nginx's
    own several hundred, twice over so that nginx finds a layout without warning."""
    if maps == 0:
        return ""
    size = _power_of_two_at_least(2 * (maps + 1024))
    return f"\n    variables_hash_max_size {size};\n    variables_hash_bucket_size 128;"


def _power_of_two_at_least(value: int) -> int:
    return 1 << (value - 1).bit_length()


def _host_group(host: str) -> str:
    return hashlib.sha256(host.encode()).hexdigest()[:_HOST_GROUP_DIGITS]


def _host_files(servers: Mapping[str, list[Server]], max_bytes: int) -> NginxFiles:
    """Hosts grouped into files by the hash of their name, so a change to one host changes one
    file and unchanged files keep their Swarm config. A group too large for one config has a
    file per host; a host too large has its locations in further files."""
    groups: dict[str, list[str]] = {}
    for host in sorted(servers):
        groups.setdefault(_host_group(host), []).append(host)
    files: NginxFiles = {}
    for group, hosts in sorted(groups.items()):
        blocks = _alike_as_one(server for host in hosts for server in servers[host])
        text = _file_header(f"hosts whose name hashes to {group}") + "\n".join(
            block.text() for block in blocks
        )
        if len(text.encode()) <= max_bytes:
            files[f"{HOSTS_DIR}/{group}.conf"] = text + "\n"
            continue
        for host in hosts:
            text = "\n".join(server.text() for server in servers[host])
            files.update(_one_host_files(host, servers[host], text, max_bytes))
    return files


def _alike_as_one(servers: Iterable[Server]) -> list[Server]:
    """Servers alike but for their names as one block naming them all: most hosts' port 80 is
    the same redirect to HTTPS, and nginx holds every module's configuration for each block and
    location (1,000 hosts' redirects took 44 of the edge's 92 MiB). Servers with routing maps
    of their own stay apart."""
    alike: dict[tuple[int, str, str, tuple[str, ...]], Server] = {}
    apart: list[Server] = []
    for server in servers:
        if server.maps:
            apart.append(server)
            continue
        key = (server.port, server.listen, server.directives, tuple(server.locations))
        first = alike.get(key)
        alike[key] = server if first is None else replace(first, names=first.names + server.names)
    return [*alike.values(), *apart]


def _one_host_files(host: str, servers: list[Server], text: str, max_bytes: int) -> NginxFiles:
    header = _file_header(host)
    # nginx's `include` reads '*' as a glob: a wildcard host's file names spell it out.
    stem = host.replace("*", "_wildcard_")
    if len((header + text).encode()) <= max_bytes:
        return {f"{HOSTS_DIR}/{stem}.conf": header + text + "\n"}
    files: NginxFiles = {}
    blocks = []
    for server in servers:
        # Its routing maps (http level) in files of their own, included before the server.
        maps = ["\n    map " + m for m in server.maps.split("\n    map ")[1:]]
        map_includes = []
        for number, chunk in enumerate(_chunks(maps, max_bytes - 200), start=1):
            target = f"{LOCATIONS_DIR}/{stem}-{server.port}-maps-{number}.conf"
            files[target] = _file_header(f"{host}, port {server.port}, maps {number}") + "".join(
                chunk
            )
            map_includes.append(f"\n    include {target};")
        server = replace(server, maps="".join(map_includes))
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


_HTTP2_ON = """
    # HTTP/2 on every 443 server (nginx >= 1.25.1 sets it here rather than on `listen`).
    http2 on;
"""

_MAIN = """\
# Rendered by certbotless. Do not edit: the next pass replaces it.
{njs_module}worker_processes {workers};
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
    {access_log}

    # Upgrades (WebSocket) pass on; other requests keep the connection to the service open
    # for the next ones (upstream keep-alive, where nginx pools them).
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      "";
    }}
{routing_path_maps}

    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers {ciphers};
    ssl_prefer_server_ciphers off;
    ssl_session_cache shared:certbotless:10m;
    ssl_session_timeout 1d;
{tickets}{certificate_cache}
{http2}{real_ip}{rate_zones}{client_geos}{client_certs}{answer_maps}{njs_http}{default_servers}

{upstreams}
    include {hosts_dir}/*.conf;
}}
"""
