"""What a route does with TLS beyond serving its host's certificate, for Traefik's TLS options
and middlewares: the client certificates its host asks for (mTLS, `tls.options` with
`clientAuth`), what of the client's certificate it passes to its service (passTLSClientCert),
and how it speaks TLS to its forward-auth server (forwardAuth `tls.*`). Imports nothing of
certbotless (a foundation: `model.Route` holds one `ClientTls`)."""

from __future__ import annotations

from dataclasses import dataclass

# Traefik's clientAuthType → nginx's ssl_verify_client, and whether a certificate is required
# though not verified (RequireAnyClientCert: nginx has no such mode, the edge checks it).
CLIENT_AUTH_TYPES: dict[str, tuple[str, bool]] = {
    "NoClientCert": ("off", False),
    "RequestClientCert": ("optional_no_ca", False),
    "RequireAnyClientCert": ("optional_no_ca", True),
    "VerifyClientCertIfGiven": ("optional", False),
    "RequireAndVerifyClientCert": ("on", False),
}
# The distinguished-name attributes passTLSClientCert's info can pass, in the order Traefik
# writes them, as (Traefik's option, the attribute's name in the header, OpenSSL's name in
# nginx's RFC 2253 DN). The issuer has no organizationalUnit in Traefik.
DN_ATTRIBUTES: tuple[tuple[str, str, str], ...] = (
    ("domaincomponent", "DC", "DC"),
    ("country", "C", "C"),
    ("province", "ST", "ST"),
    ("locality", "L", "L"),
    ("organization", "O", "O"),
    ("organizationalunit", "OU", "OU"),
    ("serialnumber", "SN", "serialNumber"),
    ("commonname", "CN", "CN"),
)


@dataclass(frozen=True)
class ClientAuth:
    """The client certificates a host's HTTPS server asks for: `verify` is nginx's
    ssl_verify_client (off, optional_no_ca, optional, on); `required`: a certificate must be
    sent even though it is not verified; `ca_bundle`: the PEM of the CAs that sign them;
    `options`: the Traefik TLS options it comes from (`name@file`), which its host's routers
    must all name."""

    options: str
    verify: str
    required: bool = False
    ca_bundle: str = ""


@dataclass(frozen=True)
class PassClientCert:
    """passTLSClientCert: `pem` sends the client's certificate in X-Forwarded-Tls-Client-Cert;
    `subject` and `issuer` (header names of DN_ATTRIBUTES, in that order) and `njs_fields`
    (Traefik's names of the serial number, validity dates and subject alternative names:
    SerialNumber, NB, NA, SAN, in that order; njs writes them) make
    X-Forwarded-Tls-Client-Cert-Info."""

    pem: bool = False
    subject: tuple[str, ...] = ()
    issuer: tuple[str, ...] = ()
    njs_fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class AuthServerTls:
    """forwardAuth's `tls`: the Swarm secrets (mounted into the edge) holding the CAs that sign
    the auth server's certificate (empty: the edge's system CAs) and the certificate and key
    the edge shows it; `verify` False for insecureSkipVerify."""

    ca_secret: str = ""
    cert_secret: str = ""
    key_secret: str = ""
    verify: bool = True


@dataclass(frozen=True)
class ClientTls:
    client_auth: ClientAuth | None = None
    pass_cert: PassClientCert | None = None
    auth_server: AuthServerTls | None = None


NO_CLIENT_TLS = ClientTls()
