"""How the 443 servers name their certificate files: loaded by nginx's master at start (every
nginx), or, from nginx 1.27.4, read by a worker at first use through one handshake context
(certificate_map), so that start and memory stay flat in the number of certificates; and the
check that loads every pair at once, which the edge image runs before a roll."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from certbotless.edge.mounts import (
    CERTIFICATE_CHECK_CONF,
    CERTIFICATE_CHECK_DIR,
    CERTIFICATE_MAP_DIR,
    CertFiles,
    cert_files,
)
from certbotless.edge.nginx_version import NginxVersion

# `ssl_certificate_cache`, which keeps certificates named with variables between handshakes.
CERTIFICATES_ON_FIRST_USE_SINCE: NginxVersion = (1, 27, 4)
# The name of the certificate for the name a client sent (SNI), by an http-level map of every
# host with a 443 server (its entries in CERTIFICATE_MAP_DIR, grouped like the hosts' files).
CERTIFICATE_VARIABLE = "$certbotless_certificate"
# nginx's words in a map block: a host of that name is written escaped.
_MAP_KEYWORDS = frozenset({"default", "hostnames", "include", "volatile"})
_MAP_GROUP_DIGITS = 1  # 16 files: 5,000 hosts make about 20 KiB each
# A roll starts new tasks with fresh caches, so `valid` only notices a file changed in place.
_CACHE_INACTIVE = "1h"
_CACHE_VALID = "1m"


def loads_on_first_use(nginx_version: NginxVersion) -> bool:
    return nginx_version >= CERTIFICATES_ON_FIRST_USE_SINCE


def certificate_directives(files: CertFiles) -> str:
    """A 443 server's `ssl_certificate` and `ssl_certificate_key`."""
    return f"ssl_certificate {files.fullchain};\n        ssl_certificate_key {files.privkey};"


def files_by_name(certs_dir: str) -> CertFiles:
    """The files of the certificate CERTIFICATE_VARIABLE names, read at handshake time."""
    return cert_files(CERTIFICATE_VARIABLE, certs_dir)


def certificate_map(certificate_of: Mapping[str, str], default: str) -> tuple[str, dict[str, str]]:
    """nginx.conf's part (the map, each worker's cache) and the map's entries (host →
    certificate name), `default` (the default server's, or "" where it refuses unknown names)
    for the rest.

    From nginx 1.27.4 certificates are read by a worker at first use, not all at start, and one
    handshake context serves them all: the default server's, whose certificate is the one
    CERTIFICATE_VARIABLE names for the client's SNI. The other 443 servers name none, so nginx
    makes no context (an OpenSSL SSL_CTX) for each, which is most of the memory and start time
    that grew with the number of hosts; a server with client certificates keeps its own (the
    CA and verification are per context). SNI still picks each request's server; the map
    matches names as server_name does (exact, then wildcards)."""
    groups: dict[str, list[str]] = {}
    for host in sorted(certificate_of):
        group = hashlib.sha256(host.encode()).hexdigest()[:_MAP_GROUP_DIGITS]
        key = "\\" + host if host in _MAP_KEYWORDS else host
        groups.setdefault(group, []).append(f"{key} {certificate_of[host]};\n")
    entries = {f"{CERTIFICATE_MAP_DIR}/{group}.conf": "".join(lines)
               for group, lines in sorted(groups.items())}  # fmt: skip
    room = 1 << (max(1024, 2 * len(set(certificate_of.values()))) - 1).bit_length()
    return (
        f"""
    # Certificates are read by a worker at first use, by the name the client sent (see
    # certificate-map/): one handshake context serves every host (edge/certificates.py).
    map $ssl_server_name {CERTIFICATE_VARIABLE} {{
        hostnames;
        default "{default}";
        include {CERTIFICATE_MAP_DIR}/*.conf;
    }}
    # Room for every certificate's chain and key; one unused for {_CACHE_INACTIVE} is read again.
    ssl_certificate_cache max={room} inactive={_CACHE_INACTIVE} valid={_CACHE_VALID};
""",
        entries,
    )


def certificate_check_files(pairs: Mapping[str, CertFiles]) -> dict[str, str]:
    """For `nginx -t -c CERTIFICATE_CHECK_CONF` in the edge image: a configuration that loads
    every pair (certificate name → files) at once, as the edge did before it read them on first
    use; nginx -t then fails on a missing, unreadable or mismatched one (unreadable to the user
    it runs as: the edge's, root, in the edge image's check). Servers are grouped by
    the hash of their certificate's name, so one new certificate changes one file."""
    groups: dict[str, list[str]] = {}
    for name in sorted(pairs):
        files = pairs[name]
        group = hashlib.sha256(name.encode()).hexdigest()[:_CHECK_GROUP_DIGITS]
        # One address (nginx -t binds it: the job's own network), a server name per certificate.
        groups.setdefault(group, []).append(f"""server {{
    listen {CHECK_LISTEN} ssl;
    server_name {name};
    ssl_certificate {files.fullchain};
    ssl_certificate_key {files.privkey};
}}
""")
    parts = {f"{CERTIFICATE_CHECK_DIR}/{group}.conf": "".join(servers)
             for group, servers in sorted(groups.items())}  # fmt: skip
    return {CERTIFICATE_CHECK_CONF: _CHECK_MAIN.format(parts=CERTIFICATE_CHECK_DIR), **parts}


CHECK_LISTEN = "127.0.0.1:9"
_CHECK_GROUP_DIGITS = 1  # 16 files: 5,000 certificates make about 60 KiB each
_CHECK_MAIN = """\
# Rendered by certbotless: every certificate and key the edge reads on first use, loaded at once
# by `nginx -t -c` in the edge image before a roll. The edge's nginx.conf does not include it.
error_log stderr warn;
events {{
}}
http {{
    access_log off;
    server_names_hash_bucket_size 512;
    server_names_hash_max_size 65536;
    include {parts}/*.conf;
}}
"""
