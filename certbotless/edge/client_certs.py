"""Client certificates at the edge: what a host's HTTPS server asks of clients (Traefik's TLS
options' clientAuth: ssl_verify_client with the CAs mounted as a file of the configuration),
and what a route passes of the client's certificate to its service (passTLSClientCert: the
PEM and the subject's and issuer's names, in Traefik's header formats), built from nginx's
variables by http-level maps."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import replace

from certbotless.client_tls import DN_ATTRIBUTES, ClientAuth, PassClientCert
from certbotless.edge.mounts import CLIENT_CA_DIR
from certbotless.edge.njs import CLIENT_INFO
from certbotless.model import Route

PEM_HEADER = "X-Forwarded-Tls-Client-Cert"
INFO_HEADER = "X-Forwarded-Tls-Client-Cert-Info"
# Each step of a joining chain takes out up to 8 of a character: 20 steps take out at least
# 136, so a PEM body of 136 lines of 64 (a certificate of 6.5 KB) becomes one line.
_CHAIN_STEPS = 20
# A value Traefik's url.QueryEscape leaves as it is (a space becomes `+`, by a chain) and
# that OpenSSL's RFC 2253 names do not escape. Any other character: the header is not sent.
_PLAIN_VALUE = "[A-Za-z0-9_.~ -]*"
_UNSUPPORTED = "!"  # a name's value that the maps cannot write as Traefik does
_BACKSLASH = r"\\\\"  # one backslash, once nginx and PCRE have each read it
_PEM = "$certbotless_client_pem"
_ENCODED = {"=": "%3D", ",": "%2C", '"': "%22", ";": "%3B"}


def host_client_auth(routes: Iterable[Route]) -> ClientAuth | None:
    """The client certificates a host asks for (discovery lets its routes ask for one kind)."""
    return next((r.client_tls.client_auth for r in routes if r.client_tls.client_auth), None)


def client_ca_target(auth: ClientAuth) -> str:
    """Where the edge mounts the CAs of client certificates, named by their content."""
    digest = hashlib.sha256(auth.ca_bundle.encode()).hexdigest()[:16]
    return f"{CLIENT_CA_DIR}/{digest}.pem"


def client_ca_files(by_host: Mapping[str, list[Route]]) -> dict[str, str]:
    """The CA bundles the hosts' servers verify client certificates with (target → PEM)."""
    found = {}
    for routes in by_host.values():
        auth = host_client_auth(routes)
        if auth is not None and auth.ca_bundle:
            found[client_ca_target(auth)] = auth.ca_bundle
    return found


def client_auth_directives(auth: ClientAuth | None, default: bool) -> str:
    """A 443 server's client-certificate directives. A request whose Host is this server's but
    that came without a name (SNI) was not asked for a certificate: 421, as Traefik answers
    a Host whose TLS options differ from the connection's (nginx answers 421 itself when the
    names differ); the default server is the one such clients reach, so it is exempt."""
    if auth is None:
        return ""
    lines = [f"ssl_verify_client {auth.verify};", "ssl_verify_depth 100;"]
    if auth.ca_bundle:
        lines.append(f"ssl_client_certificate {client_ca_target(auth)};")
    if auth.required:  # RequireAnyClientCert: nginx requires only what it verifies
        lines.append('if ($ssl_client_verify = "NONE") { return 400; }')
    if not default:
        lines.append('if ($ssl_server_name = "") { return 421; }')
    return "".join(f"\n        {line}" for line in lines)


def pass_cert_directives(route: Route) -> str:
    """The route's passTLSClientCert headers, set from the maps (empty when the request
    brought no client certificate, or came over plain HTTP: then not sent, and a client's own
    header of that name is dropped, as Traefik's entry point drops it)."""
    passing = route.client_tls.pass_cert
    if passing is None:
        return ""
    pem = _PEM if passing.pem else '""'
    info = _info_variable(passing) if passing.subject or passing.issuer else '""'
    lines = [f"proxy_set_header {PEM_HEADER} {pem};", f"proxy_set_header {INFO_HEADER} {info};"]
    if passing.njs_fields:  # njs writes them after the names (clientCertInfo in the .js)
        asked = (("s", passing.subject), ("i", passing.issuer))
        parts = "".join(f"{_info_variable(passing)}_{dn}" for dn, names in asked if names)
        lines[1:] = [f'set $certbotless_cert_names "{info.strip(chr(34))}";',
                     f'set $certbotless_cert_name_parts "{parts}";',
                     f'set $certbotless_cert_fields "{" ".join(passing.njs_fields)}";',
                     f"proxy_set_header {INFO_HEADER} {CLIENT_INFO};"]  # fmt: skip
    return "".join(f"\n            {line}" for line in lines)


def pass_cert_maps(routes: Iterable[Route]) -> str:
    """The http-level maps the routes' passTLSClientCert headers read."""
    # The names' maps, once for each set of names (njs writes the rest).
    wanted = {replace(r.client_tls.pass_cert, njs_fields=()) for r in routes
              if r.client_tls.pass_cert is not None}  # fmt: skip
    if not wanted:
        return ""
    maps = []
    if any(passing.pem for passing in wanted):
        maps += _pem_maps()
    names = {("s", a) for p in wanted for a in p.subject} | {("i", a) for p in wanted
                                                              for a in p.issuer}  # fmt: skip
    maps += [_name_map(dn, attribute) for dn, attribute in sorted(names)]
    for passing in sorted(wanted, key=_info_variable):
        if passing.subject or passing.issuer:
            maps += _info_maps(passing)
    return "".join(maps)


def _map(source: str, variable: str, entries: list[tuple[str, str]], default: str) -> str:
    """A map of `source` by regexes (PCRE; the first that matches gives its value)."""
    body = "".join(f'\n        "~{pattern}" "{value}";' for pattern, value in entries)
    return f'\n    map "{source}" {variable} {{\n        default "{default}";{body}\n    }}'


def _joining_chain(source: str, stem: str, character: str, replacement: str) -> list[str]:
    """Maps taking every `character` (a regex of one character) of `source` out for
    `replacement`, up to 8 a step; `{stem}` is the result, empty when some remain."""
    maps, previous = [], source
    for step in range(1, _CHAIN_STEPS + 1):
        entries = []
        for count in (8, 4, 2, 1):
            pattern = "^" + f"([^{character[1:-1]}]*){character}" * count + r"([\s\S]*)$"
            value = replacement.join(f"${n}" for n in range(1, count + 2))
            entries.append((pattern, value))
        maps.append(_map(previous, f"{stem}_{step}", entries, previous))
        previous = f"{stem}_{step}"
    maps.append(_map(previous, stem, [(character, "")], previous))
    return maps


def _pem_maps() -> list[str]:
    """Traefik's PEM: the certificate's PEM without its BEGIN and END lines and newlines."""
    body = r"^-----BEGIN CERTIFICATE-----\n([\s\S]*?)\n?-----END CERTIFICATE-----\n?$"
    first = _map("$ssl_client_raw_cert", f"{_PEM}_0", [(body, "$1")], "")
    return [first, *_joining_chain(f"{_PEM}_0", _PEM, r"[\n]", "")]


def _name_map(dn: str, attribute: str) -> str:
    """One attribute of the subject's (`s`) or issuer's (`i`) name as Traefik writes it
    (`C=FR,`, url-escaped; each occurrence in the certificate's order, which is the reverse
    of RFC 2253's), `!` when a value has a character the maps do not write as Traefik does,
    or the attribute occurs more than twice; empty when absent."""
    name = next(openssl for _, header, openssl in DN_ATTRIBUTES if header == attribute)
    key, sep = f"(?:^|[,+]){name}=", _ENCODED["="]
    end, comma = "(?=[,+]|$)", _ENCODED[","]
    entries = [
        (_BACKSLASH, _UNSUPPORTED),  # an escaped character: the separators are unsure
        (f"{key}.*{key}.*{key}", _UNSUPPORTED),
        (f"{key}({_PLAIN_VALUE}){end}.*{key}({_PLAIN_VALUE}){end}",
         f"{attribute}{sep}$2{comma}{attribute}{sep}$1{comma}"),
        (f"{key}.*{key}", _UNSUPPORTED),
        (f"{key}({_PLAIN_VALUE}){end}", f"{attribute}{sep}$1{comma}"),
        (key, _UNSUPPORTED),
    ]  # fmt: skip
    return _map(f"$ssl_client_{dn}_dn", f"$certbotless_client_{dn}_{attribute.lower()}",
                entries, "")  # fmt: skip


def _info_variable(passing: PassClientCert) -> str:
    key = f"{passing.subject}|{passing.issuer}"
    return f"$certbotless_client_info_{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def _info_maps(passing: PassClientCert) -> list[str]:
    """Traefik's X-Forwarded-Tls-Client-Cert-Info for the names asked: `Subject="…"` and
    `Issuer="…"` joined with `;`, url-escaped; not sent when a value cannot be written."""
    variable = _info_variable(passing)
    maps, parts = [], []
    for dn, field, attributes in (("s", "Subject", passing.subject),
                                  ("i", "Issuer", passing.issuer)):  # fmt: skip
        if not attributes:
            continue
        joined = "".join(f"$certbotless_client_{dn}_{a.lower()}" for a in attributes)
        part = f"{variable}_{dn}"
        quote = _ENCODED['"']
        maps.append(_map(joined, part, [(_UNSUPPORTED, _UNSUPPORTED),
                                         (f"^(.*){_ENCODED[',']}$",
                                          f"{field}{_ENCODED['=']}{quote}$1{quote}")],
                         ""))  # fmt: skip
        parts.append(part)
    both = "|".join(parts)
    semicolon = _ENCODED[";"]
    entries = [(_UNSUPPORTED, ""), (r"^\|?([^|]*)\|?$", "$1"),
               (r"^([^|]+)\|([^|]+)$", f"$1{semicolon}$2")]  # fmt: skip
    if len(parts) == 2:
        entries = [entries[0], (r"^([^|]+)\|([^|]+)$", f"$1{semicolon}$2"),
                   (r"^\|?([^|]*)\|?$", "$1")]  # fmt: skip
    maps.append(_map(both, f"{variable}_raw", entries, ""))
    return maps + _joining_chain(f"{variable}_raw", variable, "[ ]", "+")
