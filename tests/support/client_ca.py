"""A throwaway CA and the certificates it signs, for client certificates (mTLS) and TLS to a
forward-auth server in tests: each as PEM, and as files an `ssl` context loads; an echo server
over HTTPS (a forward-auth server) with a certificate from it, which notes the client
certificate it was shown; and the Swarm secrets forward-auth cases name (`/run/secrets/auth_ca`,
`auth_cert`, `auth_key`) as the edge would mount them."""

from __future__ import annotations

import ipaddress
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import wraps
from http.server import ThreadingHTTPServer
from pathlib import Path
from tempfile import mkdtemp
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certbotless.edge.mounts import auth_tls_secret_target
from tests.support.edge_nginx import Echo

_MAKING = threading.RLock()
T = TypeVar("T")


def once(make: Callable[..., T]) -> Callable[..., T]:
    """`functools.cache` that makes each value once even when threads (the Traefik cases run
    in a pool) ask at the same time: two CAs would not trust each other's certificates."""
    made: dict[tuple[object, ...], T] = {}

    @wraps(make)
    def cached(*args: object) -> T:
        with _MAKING:
            if args not in made:
                made[args] = make(*args)
            return made[args]

    return cached


# The client's names as the tests ask for them, in the certificate's order.
CLIENT_SUBJECT = (
    (NameOID.DOMAIN_COMPONENT, "org"),
    (NameOID.DOMAIN_COMPONENT, "cheese"),
    (NameOID.COUNTRY_NAME, "FR"),
    (NameOID.STATE_OR_PROVINCE_NAME, "Some-State"),
    (NameOID.LOCALITY_NAME, "TOULOUSE"),
    (NameOID.ORGANIZATION_NAME, "Cheese"),
    (NameOID.ORGANIZATION_NAME, "Cheese 2"),
    (NameOID.ORGANIZATIONAL_UNIT_NAME, "Simple Signing Section"),
    (NameOID.SERIAL_NUMBER, "12345"),
    (NameOID.COMMON_NAME, "client.cheese.org"),
)
CA_SUBJECT = (
    (NameOID.DOMAIN_COMPONENT, "org"),
    (NameOID.COUNTRY_NAME, "FR"),
    (NameOID.COUNTRY_NAME, "US"),
    (NameOID.STATE_OR_PROVINCE_NAME, "Signing State"),
    (NameOID.LOCALITY_NAME, "LYON"),
    (NameOID.ORGANIZATION_NAME, "Cheese"),
    (NameOID.SERIAL_NUMBER, "7"),
    (NameOID.COMMON_NAME, "Simple Signing CA"),
)


# The client's subject alternative names, and how Traefik's info writes them (SAN="…").
CLIENT_SANS = (x509.DNSName("client.cheese.org"), x509.RFC822Name("client@cheese.org"),
               x509.IPAddress(ipaddress.ip_address("10.0.1.2")))  # fmt: skip
CLIENT_SANS_WRITTEN = "client.cheese.org,client@cheese.org,10.0.1.2"


@dataclass(frozen=True)
class Issued:
    cert_pem: str
    key_pem: str

    def files(self, directory: Path, stem: str) -> tuple[Path, Path]:
        """The certificate and key written as `stem`.pem and `stem`.key under `directory`."""
        directory.mkdir(parents=True, exist_ok=True)
        cert, key = directory / f"{stem}.pem", directory / f"{stem}.key"
        cert.write_text(self.cert_pem)
        key.write_text(self.key_pem)
        return cert, key


def _name(attributes: tuple[tuple[x509.ObjectIdentifier, str], ...]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes])


def _pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()  # fmt: skip


def _sign(
    subject: x509.Name, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey, ca: bool, ip: str = "",
    sans: Sequence[x509.GeneralName] = (),
) -> x509.Certificate:  # fmt: skip
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )  # fmt: skip
    if ip:  # nginx checks an auth server's names (not its IP addresses) against its address
        sans = [x509.DNSName(ip), x509.IPAddress(ipaddress.ip_address(ip))]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass(frozen=True)
class TestCa:
    __test__ = False  # not a pytest class
    cert_pem: str
    key: ec.EllipticCurvePrivateKey

    def issue(self, subject: tuple[tuple[x509.ObjectIdentifier, str], ...],
              ip: str = "", sans: Sequence[x509.GeneralName] = ()) -> Issued:  # fmt: skip
        """A certificate for `subject`, naming `ip` (a server's) or with `sans`."""
        key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = x509.load_pem_x509_certificate(self.cert_pem.encode())
        cert = _sign(_name(subject), key, ca_cert.subject, self.key, False, ip, sans)
        return Issued(cert.public_bytes(serialization.Encoding.PEM).decode(), _pem(key))


@once
def throwaway_ca(common_name: str = "Simple Signing CA") -> TestCa:
    """A CA (one per name, for the session)."""
    subject = tuple((o, common_name if o == NameOID.COMMON_NAME else v) for o, v in CA_SUBJECT)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _sign(_name(subject), key, _name(subject), key, True)
    return TestCa(cert.public_bytes(serialization.Encoding.PEM).decode(), key)


@once
def client_certificate() -> Issued:
    """The client's certificate, signed by `throwaway_ca()`, with CLIENT_SANS."""
    return throwaway_ca().issue(CLIENT_SUBJECT, sans=CLIENT_SANS)


@once
def edge_client_certificate() -> Issued:
    """The certificate the edge shows a forward-auth server (forwardAuth.tls.cert/key)."""
    return throwaway_ca().issue(((NameOID.COMMON_NAME, "edge.test"),))


def auth_tls_secrets() -> dict[str, str]:
    """The secrets forward-auth cases name, at their mount targets in the edge (target → PEM)."""
    contents = {"auth_ca": throwaway_ca().cert_pem, "auth_cert": edge_client_certificate().cert_pem,
                "auth_key": edge_client_certificate().key_pem}  # fmt: skip
    return {auth_tls_secret_target(name): text for name, text in contents.items()}


CLIENT_CERT_HEADER = "X-Test-Client-Cert"  # added to what the TLS echo server saw: the CN shown


class _TlsEcho(Echo):
    def _noted(self) -> None:
        shown = self.request.getpeercert() or {}
        names = [v for rdn in shown.get("subject", ()) for k, v in rdn if k == "commonName"]
        self.headers[CLIENT_CERT_HEADER] = names[0] if names else "-"
        self._answer()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _noted


@once
def tls_echo_port() -> int:
    """An echo server over HTTPS on loopback (for the session): its certificate names
    127.0.0.1 and comes from `throwaway_ca()`; a client certificate from that CA is noted."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TlsEcho)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    directory = Path(mkdtemp(prefix="cbl-tls-echo-"))
    context.load_cert_chain(
        *throwaway_ca()
        .issue(((NameOID.COMMON_NAME, "auth"),), ip="127.0.0.1")
        .files(directory, "server")
    )
    (directory / "ca.pem").write_text(throwaway_ca().cert_pem)
    context.load_verify_locations(directory / "ca.pem")
    context.verify_mode = ssl.CERT_OPTIONAL
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return int(server.server_address[1])
