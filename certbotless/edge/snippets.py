"""For an operator's own nginx.conf: the snippets it includes (ACME challenges, each
certificate's files) and a placeholder certificate until the real one is issued."""

from __future__ import annotations

from collections.abc import Iterable

from certbotless.edge.mounts import SNIPPETS_DIR, cert_files
from certbotless.edge.validation import stand_in_certificate
from certbotless.model import CHALLENGE_PREFIX


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
    # Named without the variable that reads them on first use (edge/certificates.py): that needs
    # an http-level map and cache in the operator's nginx.conf, and nginx >= 1.27.4 there.
    for name in sorted(cert_names):
        files = cert_files(name, certs_dir)
        snippets[cert_snippet_target(name)] = (
            f"# Managed by certbotless: certificate {name}.\n"
            f"ssl_certificate {files.fullchain};\nssl_certificate_key {files.privkey};\n"
        )
    return snippets


def placeholder_certificate() -> tuple[bytes, bytes]:
    """A self-signed pair for names whose certificate is not issued yet (own nginx.conf)."""
    return stand_in_certificate()
