"""Client certificates through Traefik's labels and dynamic configuration, asked of a real nginx
on loopback with a throwaway CA: TLS options' clientAuth (each clientAuthType) on a host's
server, passTLSClientCert's headers as Traefik writes them, the refusals (unknown options,
hosts whose routers ask different ones), and forwardAuth's TLS to its auth server. The info's
serial number, dates and SANs are njs's (edge/njs.py)."""

from __future__ import annotations

import ipaddress
import json
import shutil
import socket
import ssl
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote_plus

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from certbotless.edge.mounts import auth_tls_secret_target
from certbotless.labels.settle import discover
from certbotless.labels.traefik.dynamic import read_dynamic_config
from certbotless.labels.traefik.labels import traefik_claims
from certbotless.labels.traefik.middlewares.options import FileMiddlewares
from certbotless.model import Discovery, ServiceInfo
from tests.support.client_ca import (
    CLIENT_SANS_WRITTEN,
    CLIENT_SUBJECT,
    Issued,
    auth_tls_secrets,
    client_certificate,
    throwaway_ca,
    tls_echo_port,
)
from tests.support.edge_nginx import (
    LOCAL_NGINX,
    Echo,
    NginxBinary,
    echo_upstream,
    serve_routes,
    stop,
)
from tests.support.factories import certs_for

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None, reason="needs nginx")
HOSTS = ("verify.test", "if-given.test", "request.test", "any.test", "none.test")
OPTIONS = {  # the host → its TLS options (clientAuthType; all with caFiles)
    "verify.test": "",  # caFiles alone: RequireAndVerifyClientCert
    "if-given.test": "VerifyClientCertIfGiven",
    "request.test": "RequestClientCert",
    "any.test": "RequireAnyClientCert",
    "none.test": "NoClientCert",
}
PASS_ALL = {
    "pem": "true",
    "info.serialnumber": "true",  # these three written by njs
    "info.notbefore": "true",
    "info.notafter": "true",
    "info.sans": "true",  # by njs too, from the certificate's DER
    **{f"info.subject.{o}": "true" for o in ("commonname", "country", "domaincomponent",
                                             "locality", "organization", "organizationalunit",
                                             "province", "serialnumber")},
    **{f"info.issuer.{o}": "true" for o in ("commonname", "country", "domaincomponent",
                                            "locality", "organization", "province",
                                            "serialnumber")},
}  # fmt: skip


def dynamic_config(tmp_path: Path) -> FileMiddlewares:
    options = {}
    for host, kind in OPTIONS.items():
        auth: dict[str, object] = {"caFiles": [str(tmp_path / "ca.pem")]}
        if kind:
            auth["clientAuthType"] = kind
        options[host.split(".")[0]] = {"clientAuth": auth}
    (tmp_path / "ca.pem").write_text(throwaway_ca().cert_pem)
    path = tmp_path / "dynamic.yml"
    path.write_text(json.dumps({"tls": {"options": options}}))
    return read_dynamic_config([path])


def service(port: int, host: str, options: str, middleware: Mapping[str, str],
            name: str = "") -> ServiceInfo:  # fmt: skip
    router = "traefik.http.routers.r."
    labels = {
        "traefik.enable": "true",
        f"{router}rule": f"Host(`{host}`)",
        f"{router}tls": "true",
        "traefik.http.services.s.loadbalancer.server.port": str(port),
        **{f"traefik.http.middlewares.m.passtlsclientcert.{k}": v for k, v in middleware.items()},
    }
    if options:
        labels[f"{router}tls.options"] = options
    if middleware:
        labels[f"{router}middlewares"] = "m"
    return ServiceInfo(name or host.split(".")[0], labels)


def discovered(services: Sequence[ServiceInfo], files: FileMiddlewares) -> Discovery:
    found = discover(services, native=False, foreign=traefik_claims(services, files=files))
    return replace(found, routes=tuple(replace(r, service="127.0.0.1") for r in found.routes))


@pytest.fixture(scope="module", params=["this machine's nginx", "nginx 1.30"])
def edge(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[int, int]]:
    """On this machine's nginx (certificates loaded at start) and on the edge image's nginx
    generation (the rig's forky root: certificates read on first use through the default
    server's handshake, a host with client certificates keeping its own)."""
    binary = LOCAL_NGINX
    if request.param == "nginx 1.30":
        binary = NginxBinary(Path(request.getfixturevalue("rig_env")["CBL_NGINX_NEWEST_ROOT"]))
    scratch = tmp_path_factory.mktemp("client-certs")
    files = dynamic_config(scratch)
    with echo_upstream() as upstream:
        services = [service(upstream, h, f"{h.split('.')[0]}@file", PASS_ALL) for h in HOSTS]
        services.append(service(upstream, "open.test", "", {"pem": "true"}))
        found = discovered(services, files)
        assert found.problems == ()
        nginx, port, tls_port = serve_routes(found.routes, scratch / "nginx",
                                             certs=certs_for(*HOSTS, "open.test"),
                                             binary=binary)  # fmt: skip
        try:
            yield port, tls_port
        finally:
            stop(nginx)


def ask(port: int, host: str, client: Issued | None, headers: Sequence[tuple[str, str]] = (),
        sni: bool = True, tls: bool = True) -> tuple[int, dict[str, str]]:  # fmt: skip
    """(status, the headers that reached the service: empty when none did)."""
    marker = f"{host}-{len(Echo.seen)}-{id(headers)}"
    lines = ["GET / HTTP/1.1", f"Host: {host}", "Connection: close", f"X-Case: {marker}",
             *(f"{n}: {v}" for n, v in headers)]  # fmt: skip
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        connection: socket.socket = raw
        if tls:
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            if client is not None:
                cert, key = client.files(Path(f"/tmp/cbl-client-{id(client)}"), "client")
                context.load_cert_chain(cert, key)
            connection = context.wrap_socket(raw, server_hostname=host if sni else None)
        connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    seen = [got for _, got in Echo.seen if got.get("x-case") == marker]
    return status, seen[-1] if seen else {}


def traefik_pem(issued: Issued) -> str:
    """Traefik's sanitize: the PEM without its BEGIN/END lines and newlines."""
    return "".join(line for line in issued.cert_pem.splitlines() if not line.startswith("-----"))


def traefik_info(issued: Issued, issuer_pem: str, sans: str = "") -> str:
    """Traefik's getCertInfo for every subject and issuer name, the serial number (decimal),
    the validity dates (Unix seconds) and the SANs as Go writes them (`sans`, none when
    empty), url.QueryEscape'd."""
    order = [(NameOID.DOMAIN_COMPONENT, "DC"), (NameOID.COUNTRY_NAME, "C"),
             (NameOID.STATE_OR_PROVINCE_NAME, "ST"), (NameOID.LOCALITY_NAME, "L"),
             (NameOID.ORGANIZATION_NAME, "O"), (NameOID.ORGANIZATIONAL_UNIT_NAME, "OU"),
             (NameOID.SERIAL_NUMBER, "SN"), (NameOID.COMMON_NAME, "CN")]  # fmt: skip

    def names(name: x509.Name, skip: set[str]) -> str:
        return ",".join(f"{short}={a.value!s}" for oid, short in order if short not in skip
                        for a in name if a.oid == oid)  # fmt: skip

    cert = x509.load_pem_x509_certificate(issued.cert_pem.encode())
    info = f'Subject="{names(cert.subject, set())}";Issuer="{names(cert.issuer, {"OU"})}"'
    dates = int(cert.not_valid_before_utc.timestamp()), int(cert.not_valid_after_utc.timestamp())
    info += f';SerialNumber="{cert.serial_number}";NB="{dates[0]}";NA="{dates[1]}"'
    info += f';SAN="{sans}"' if sans else ""
    assert issuer_pem  # the issuer's names are the certificate's issuer field
    return quote_plus(info)


def test_caFiles_alone_require_and_verify_a_client_certificate(edge: tuple[int, int]) -> None:
    _, tls_port = edge
    assert ask(tls_port, "verify.test", None)[0] == 400  # Traefik: no handshake
    assert ask(tls_port, "verify.test", throwaway_ca("Other CA").issue(()))[0] == 400
    status, seen = ask(tls_port, "verify.test", client_certificate())
    assert status == 200
    assert seen["x-forwarded-tls-client-cert"] == traefik_pem(client_certificate())


def test_each_client_auth_type(edge: tuple[int, int]) -> None:
    _, tls_port = edge
    stranger = throwaway_ca("Other CA").issue(((NameOID.COMMON_NAME, "stranger"),))
    expected = {  # host → statuses without a certificate, with a stranger's, with the CA's
        "if-given.test": (200, 400, 200),
        "request.test": (200, 200, 200),
        "any.test": (400, 200, 200),
        "none.test": (200, 200, 200),
    }
    for host, statuses in expected.items():
        got = tuple(ask(tls_port, host, c)[0] for c in (None, stranger, client_certificate()))
        assert got == statuses, host
    # Not asked, a certificate is not sent: no header.
    assert "x-forwarded-tls-client-cert" not in ask(tls_port, "none.test", stranger)[1]
    assert ask(tls_port, "request.test", stranger)[1]["x-forwarded-tls-client-cert"] == (
        traefik_pem(stranger)
    )


def test_pass_tls_client_cert_info_as_traefik_writes_it(edge: tuple[int, int]) -> None:
    _, tls_port = edge
    _, seen = ask(tls_port, "verify.test", client_certificate())
    assert seen["x-forwarded-tls-client-cert-info"] == traefik_info(
        client_certificate(), throwaway_ca().cert_pem, CLIENT_SANS_WRITTEN
    )


def test_a_clients_own_headers_never_reach_the_service(edge: tuple[int, int]) -> None:
    _, tls_port = edge
    forged = [("X-Forwarded-Tls-Client-Cert", "forged"),
              ("X-Forwarded-Tls-Client-Cert-Info", "forged")]  # fmt: skip
    for status, seen in (ask(tls_port, "if-given.test", None, forged),
                         ask(tls_port, "open.test", None, forged)):  # fmt: skip
        assert status == 200
        assert "x-forwarded-tls-client-cert" not in seen
        assert "x-forwarded-tls-client-cert-info" not in seen


def test_a_request_without_a_name_is_misdirected(edge: tuple[int, int]) -> None:
    """Without SNI the handshake is the default server's, which asked for no certificate."""
    _, tls_port = edge
    with pytest.raises(ssl.SSLError):  # no name: no handshake (no IP address is served)
        ask(tls_port, "verify.test", client_certificate(), sni=False)


def test_routers_of_one_host_asking_different_options_refuse_the_later(tmp_path: Path) -> None:
    files = dynamic_config(tmp_path)
    first = service(8000, "a.test", "verify@file", {}, name="first")
    first.labels["certbotless.share"] = "later,open"  # the host is first's
    later = service(8001, "a.test", "any@file", {}, name="later")
    later.labels["traefik.http.routers.r.rule"] = "Host(`a.test`) && PathPrefix(`/b`)"
    open_one = service(8002, "a.test", "", {}, name="open")
    open_one.labels["traefik.http.routers.r.rule"] = "Host(`a.test`) && PathPrefix(`/c`)"
    found = discovered([first, later, open_one], files)
    assert [r.path for r in found.routes if r.hosts] == ["/"]
    assert {p.service for p in found.problems} == {"later", "open"}
    assert all("same tls.options" in p.message for p in found.problems)


def test_options_that_cannot_be_applied_refuse_the_router(tmp_path: Path) -> None:
    files = dynamic_config(tmp_path)
    for options, words in (("missing@file", "defines no tls.options.missing"),
                           ("verify", "write verify@file"),
                           ("verify@file", "no Host")):  # fmt: skip
        router = service(8000, "a.test", options, {})
        if words == "no Host":
            router.labels["traefik.http.routers.r.rule"] = "PathPrefix(`/a`)"
        found = discovered([router], files)
        assert found.routes == ()
        assert any(words in p.message for p in found.problems), found.problems


def _ip(text: str) -> x509.IPAddress:
    return x509.IPAddress(ipaddress.ip_address(text))


# Traefik's SAN cases (pass_tls_client_cert_test.go: completeCheeseCrt's names in its order,
# Test_getSANs' "all Sans"), then IP addresses as Go's net.IP.String writes them and URIs as
# url.URL.String does: the certificate's names → Traefik's SAN="…".
SAN_CASES: dict[str, tuple[list[x509.GeneralName], str]] = {
    "completeCheeseCrt": (
        [x509.DNSName("*.cheese.org"), x509.DNSName("*.cheese.net"),
         x509.DNSName("*.cheese.com"), _ip("10.0.1.0"), _ip("10.0.1.2"),
         x509.RFC822Name("test@cheese.org"), x509.RFC822Name("test@cheese.net")],
        "*.cheese.org,*.cheese.net,*.cheese.com,test@cheese.org,test@cheese.net,10.0.1.0,"
        "10.0.1.2",
    ),
    "all Sans, kinds Go skips among them": (
        [x509.UniformResourceIdentifier("my.foo.com"), _ip("10.0.0.1"),
         x509.RFC822Name("test@test.com"), x509.DNSName("foo"),
         x509.DirectoryName(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dir")])),
         x509.RegisteredID(NameOID.COMMON_NAME), x509.DNSName("bar"),
         x509.OtherName(NameOID.COMMON_NAME, b"\x0c\x02hi"),
         x509.RFC822Name("test2@test.com"), _ip("10.0.0.2"),
         x509.UniformResourceIdentifier("my.bar.com")],
        "foo,bar,test@test.com,test2@test.com,10.0.0.1,10.0.0.2,my.foo.com,my.bar.com",
    ),
    "IPv6 as net.IP writes it": (
        [_ip("2001:db8:0:0:0:0:0:1"), _ip("::1"), _ip("::ffff:10.0.0.1"),
         _ip("2001:db8:0:0:1:0:0:1"), _ip("2001:0:0:1:0:0:0:1"), _ip("fe80::"), _ip("::"),
         _ip("1:2:3:4:5:6:7:8"), _ip("1:0:2:0:3:0:4:0"), _ip("0:0:0:0:0:0:a00:1")],
        "2001:db8::1,::1,10.0.0.1,2001:db8::1:0:0:1,2001:0:0:1::1,fe80::,::,1:2:3:4:5:6:7:8,"
        "1:0:2:0:3:0:4:0,::a00:1",
    ),
    "URIs as url.URL writes them": (
        [x509.UniformResourceIdentifier("SPIFFE://Example.org/ns/a"),
         x509.UniformResourceIdentifier("urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"),
         x509.UniformResourceIdentifier("https://ex.test:8443/a%2Fb!?x=1&y=%20#frag/?"),
         x509.UniformResourceIdentifier("https://ex.test/a#")],
        "spiffe://Example.org/ns/a,urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6,"
        "https://ex.test:8443/a%2Fb!?x=1&y=%20#frag/?,https://ex.test/a",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(SAN_CASES))
def test_pass_tls_client_cert_sans_as_traefik_writes_them(edge: tuple[int, int], case: str) -> None:
    names, written = SAN_CASES[case]
    client = throwaway_ca().issue(CLIENT_SUBJECT, sans=names)
    _, seen = ask(edge[1], "verify.test", client)
    assert seen["x-forwarded-tls-client-cert-info"] == traefik_info(
        client, throwaway_ca().cert_pem, written
    )


def test_a_san_go_would_write_otherwise_sends_no_info(edge: tuple[int, int]) -> None:
    """Go's url.URL writes `/a b` as `/a%20b`: no info header rather than another than
    Traefik's; the PEM still goes."""
    client = throwaway_ca().issue(
        CLIENT_SUBJECT, sans=[x509.UniformResourceIdentifier("https://ex.test/a b")]
    )
    status, seen = ask(edge[1], "verify.test", client)
    assert status == 200 and "x-forwarded-tls-client-cert-info" not in seen
    assert seen["x-forwarded-tls-client-cert"] == traefik_pem(client)


FORWARD_AUTH = "traefik.http.middlewares.a.forwardauth."


def _https_auth_labels(upstream: int) -> dict[str, str]:
    """A router to `upstream` behind forward auth `a` at the HTTPS echo server."""
    return {
        "traefik.enable": "true",
        "traefik.http.routers.r.rule": "Host(`a.test`)",
        "traefik.http.routers.r.middlewares": "a",
        "traefik.http.services.s.loadbalancer.server.port": str(upstream),
        f"{FORWARD_AUTH}address": f"https://127.0.0.1:{tls_echo_port()}/auth",
    }


def test_forward_auth_over_tls_verifies_the_auth_server_and_shows_the_certificate(
    tmp_path: Path,
) -> None:
    """forwardAuth.tls: the auth server's certificate checked against tls.ca (another CA's: no
    answer, 500 as from Traefik), the edge's certificate shown to it."""
    auth = FORWARD_AUTH
    secrets = auth_tls_secrets()
    other_ca = {auth_tls_secret_target("other_ca"): throwaway_ca("Other CA").cert_pem}
    with echo_upstream() as upstream:
        labels = _https_auth_labels(upstream)
        for ca, shown, status in (("auth_ca", "edge.test", 200), ("other_ca", None, 500)):
            asked = {**labels, f"{auth}tls.ca": f"/run/secrets/{ca}",
                     f"{auth}tls.cert": "/run/secrets/auth_cert",
                     f"{auth}tls.key": "/run/secrets/auth_key"}  # fmt: skip
            found = discovered([ServiceInfo("svc", asked)], FileMiddlewares())
            assert found.problems == ()
            nginx, port, _ = serve_routes(found.routes, tmp_path / ca, {**secrets, **other_ca})
            try:
                got, _ = ask(port, "a.test", None, tls=False)
            finally:
                stop(nginx)
            assert got == status
            noted = [h.get("x-test-client-cert") for _, h in Echo.seen if "x-test-client-cert" in h]
            assert (noted[-1] if shown else None) == shown


def test_an_https_auth_server_without_tls_options_is_verified_against_the_image_cas(
    tmp_path: Path,
) -> None:
    """forwardAuth with an https address and no tls.*: Go's default client in Traefik verifies
    the auth server against the system's CAs; one signed by a throwaway CA gets no request
    through (500), never an unverified yes."""
    with echo_upstream() as upstream:
        found = discovered([ServiceInfo("svc", _https_auth_labels(upstream))], FileMiddlewares())
        assert found.problems == ()
        nginx, port, _ = serve_routes(found.routes, tmp_path / "edge")
        try:
            got, _ = ask(port, "a.test", None, tls=False)
        finally:
            stop(nginx)
    assert got == 500


@pytest.mark.parametrize(
    ("client_auth", "words"),
    [
        ({"clientAuthType": "Sometimes"}, "unknown clientAuthType 'Sometimes'"),
        ({"clientAuthType": "VerifyClientCertIfGiven"}, "needs caFiles"),
        ({"caFiles": ["/nowhere/ca.pem"]}, "caFiles /nowhere/ca.pem cannot be read"),
        (
            {"caFiles": ["-----BEGIN CERTIFICATE-----\nnot one\n-----END CERTIFICATE-----"]},
            "holds no valid PEM certificate",
        ),
    ],
)
def test_client_auth_a_file_cannot_give_refuses_its_routers(
    tmp_path: Path, client_auth: dict[str, object], words: str
) -> None:
    path = tmp_path / "dynamic.yml"
    path.write_text(json.dumps({"tls": {"options": {"bad": {"clientAuth": client_auth}}}}))
    found = discovered([service(8000, "a.test", "bad@file", {})], read_dynamic_config([path]))
    assert found.routes == ()
    (problem,) = found.problems
    assert words in problem.message and "never served without" in problem.message


def test_info_with_a_value_the_maps_cannot_write_is_not_sent(edge: tuple[int, int]) -> None:
    """`Acme, Inc` comes escaped in nginx's RFC 2253 name (`Acme\\, Inc`): no info header
    rather than another than Traefik's; the PEM still goes."""
    _, tls_port = edge
    odd = throwaway_ca().issue(((NameOID.ORGANIZATION_NAME, "Acme, Inc"),
                                (NameOID.COMMON_NAME, "odd")))  # fmt: skip
    status, seen = ask(tls_port, "verify.test", odd)
    assert status == 200
    assert "x-forwarded-tls-client-cert-info" not in seen
    assert seen["x-forwarded-tls-client-cert"] == traefik_pem(odd)
