"""Where the edge mounts each file of its configuration: nginx.conf, the hosts' and locations'
files it includes, basic-auth users, forward auth's TLS files, and each certificate's chain
and key."""

from __future__ import annotations

from dataclasses import dataclass

NGINX_CONF_TARGET = "/etc/nginx/nginx.conf"
SNIPPETS_DIR = "/etc/nginx/certbotless"
# The rendered configuration's server blocks, which nginx.conf includes (`hosts/*.conf`), and
# the locations of a host too large for one file, which its servers include.
HOSTS_DIR = f"{SNIPPETS_DIR}/hosts"
LOCATIONS_DIR = f"{SNIPPETS_DIR}/locations"
# The TLS session ticket keys (Swarm secrets): the current one encrypts, the previous decrypts.
TICKET_KEYS_DIR = f"{SNIPPETS_DIR}/tls-tickets"
# The services' upstream blocks (nginx >= 1.27.3), which nginx.conf includes.
UPSTREAMS_DIR = f"{SNIPPETS_DIR}/upstreams"
# Every certificate and key the rendered configuration reads on first use, loaded at once: the
# edge image's `nginx -t -c CERTIFICATE_CHECK_CONF` proves each pair before a roll.
CERTIFICATE_CHECK_CONF = f"{SNIPPETS_DIR}/certificate-check.conf"
CERTIFICATE_CHECK_DIR = f"{SNIPPETS_DIR}/certificate-check"
# Each host's certificate name, which nginx.conf's map of certificates read on first use
# includes.
CERTIFICATE_MAP_DIR = f"{SNIPPETS_DIR}/certificate-map"
HTPASSWD_DIR = f"{SNIPPETS_DIR}/htpasswd"  # basic-auth users, one file per set
# The edge's key for digestAuth's nonces (a Swarm secret every task mounts; njs reads it in
# nginx's workers, hence readable by them).
DIGEST_KEY_TARGET = f"{SNIPPETS_DIR}/digest-nonce/key"
# Basic-auth users an operator keeps in a Swarm secret (the labels name it), mounted here by
# its name: certbotless never reads them.
HTPASSWD_SECRETS_DIR = f"{SNIPPETS_DIR}/htpasswd-secrets"
CLIENT_CA_DIR = f"{SNIPPETS_DIR}/client-ca"  # the CAs of client certificates (TLS options)
UPSTREAM_CA_DIR = f"{SNIPPETS_DIR}/upstream-ca"  # the CAs of services' certificates (rootCAs)
# The Swarm secrets holding forward auth's CA, client certificate and key (forwardAuth.tls),
# mounted here by their names.
AUTH_TLS_SECRETS_DIR = f"{SNIPPETS_DIR}/auth-tls-secrets"
# The edge image's own CAs (Debian's and Alpine's nginx images), which Traefik's Go verifies
# an auth server with when no CA is given.
SYSTEM_CAS = "/etc/ssl/certs/ca-certificates.crt"


@dataclass(frozen=True)
class CertFiles:
    fullchain: str
    privkey: str


def cert_files(cert_name: str, certs_dir: str) -> CertFiles:
    return CertFiles(
        f"{certs_dir}/{cert_name}/fullchain.pem", f"{certs_dir}/{cert_name}/privkey.pem"
    )


def ticket_key_target(index: int) -> str:
    """Where the edge mounts its `index`-th ticket key (0: the current one)."""
    return f"{TICKET_KEYS_DIR}/{index}.key"


def htpasswd_secret_target(secret: str) -> str:
    return f"{HTPASSWD_SECRETS_DIR}/{secret}"


def auth_tls_secret_target(secret: str) -> str:
    return f"{AUTH_TLS_SECRETS_DIR}/{secret}"
