"""Traefik's TLS options (`tls.options.<name>` of a dynamic-configuration file) → the client
certificates a router's host asks for (`model.Route.client_tls.client_auth`), read as Traefik's
tlsmanager builds them: `clientAuth.caFiles` (paths or PEM contents) make the host require and
verify client certificates, `clientAuth.clientAuthType` says otherwise. A router picks them
with `tls.options=<name>@file` (`<name>` alone names a file's too, as Traefik looks up the
file's options first for a router of another provider).

Options certbotless cannot apply refuse the routers naming them: a host that asked for client
certificates is never served without asking for them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from certbotless.client_tls import CLIENT_AUTH_TYPES, ClientAuth

PEM_BEGIN = "-----BEGIN CERTIFICATE-----"
MAX_CA_BYTES = 256 * 1024
# Traefik's default options, for routers naming none: certbotless applies none of their fields.
DEFAULT = "default"


@dataclass(frozen=True)
class TlsOptions:
    """One `tls.options.<name>`: the client auth it asks (None: it could not be read, `error`
    says why), and its other fields (minVersion, cipherSuites…), which are not applied."""

    name: str
    client_auth: ClientAuth | None
    error: str = ""
    other_fields: tuple[str, ...] = ()


def parse_tls_options(options: Mapping[str, object], path: Path) -> dict[str, TlsOptions]:
    """Every `tls.options.<name>` of one file."""
    found = {}
    for name, body in options.items():
        found[str(name)] = _options(str(name), body, path)
    return found


def _options(name: str, body: object, path: Path) -> TlsOptions:
    where = f"{path.name}: tls.options.{name}"
    if body is None:
        body = {}
    if not isinstance(body, Mapping):
        return TlsOptions(name, None, f"{where} is not a mapping")
    other = tuple(sorted(str(key) for key in body if str(key).lower() != "clientauth"))
    client = next((v for k, v in body.items() if str(k).lower() == "clientauth"), None) or {}
    if not isinstance(client, Mapping):
        return TlsOptions(name, None, f"{where}.clientAuth is not a mapping", other)
    try:
        auth = _client_auth(f"{name}@file", client, path)
    except ValueError as error:
        return TlsOptions(name, None, f"{where}.clientAuth: {error}", other)
    return TlsOptions(name, auth, "", other)


def _client_auth(options: str, client: Mapping[str, object], path: Path) -> ClientAuth:
    fields = {str(key).lower(): value for key, value in client.items()}
    unknown = sorted(set(fields) - {"cafiles", "clientauthtype"})
    if unknown:
        raise ValueError(f"{', '.join(unknown)} is not an option of clientAuth")
    files = fields.get("cafiles") or []
    if isinstance(files, str):
        files = [files]
    if not isinstance(files, list):
        raise ValueError("caFiles must be a list of files or PEM contents")
    bundle = "".join(ca_pem(str(item), path) for item in files)
    kind = str(fields.get("clientauthtype") or "")
    if not kind:
        return ClientAuth(options, "on" if bundle else "off", False, bundle)
    if kind not in CLIENT_AUTH_TYPES:
        raise ValueError(f"unknown clientAuthType {kind!r} (Traefik refuses it too): one of "
                         f"{', '.join(CLIENT_AUTH_TYPES)}")  # fmt: skip
    verify, required = CLIENT_AUTH_TYPES[kind]
    if verify in ("optional", "on") and not bundle:
        raise ValueError(f"clientAuthType {kind} needs caFiles, as Traefik says")
    return ClientAuth(options, verify, required, bundle)


def ca_pem(item: str, path: Path, option: str = "caFiles") -> str:
    """One of caFiles (or a serversTransport's rootCAs, `option`): the PEM content itself,
    else a file the sidecar reads (mount it into the sidecar at the path Traefik reads it
    from, as the dynamic configuration itself)."""
    if item.lstrip().startswith(PEM_BEGIN):
        text = item.strip()
    else:
        try:
            data = Path(item).read_bytes()
        except OSError as error:
            raise ValueError(f"{option} {item} cannot be read by certbotless "
                             f"({error.strerror}): mount it into the certbotless service at "
                             "that path (a Swarm config, as the dynamic configuration), or "
                             f"write the PEM itself in {option}") from None  # fmt: skip
        if len(data) > MAX_CA_BYTES:
            raise ValueError(f"{option} {item} is over {MAX_CA_BYTES} bytes")
        text = data.decode("ascii", "replace").strip()
    try:  # what nginx would fail to load, failing the whole configuration
        x509.load_pem_x509_certificates(text.encode())
    except ValueError:
        raise ValueError(f"{option} {item if not item.startswith('-') else '(content)'} holds "
                         "no valid PEM certificate (Traefik refuses it too)") from None  # fmt: skip
    return text + "\n"


def router_client_auth(
    asked: str, defined: Mapping[str, TlsOptions], files_error: str, sources: str
) -> tuple[ClientAuth | None, str]:
    """The client auth of a router's `tls.options` (`asked`; "" for none: the file's `default`
    options, when it defines them, as Traefik applies them to every router naming none), and
    a note on fields of those options that are not applied ("" when none). Raises ValueError,
    saying why, when the options cannot be applied: the router is then refused."""
    bare, _, provider = asked.partition("@")
    if asked and provider != "file" and asked != DEFAULT:
        raise ValueError(f"TLS options come from Traefik's dynamic configuration here: write "
                         f"{bare}@file (defined under tls.options of a file given in "
                         "CERTBOTLESS_TRAEFIK_DYNAMIC_CONFIG)")  # fmt: skip
    name = bare or DEFAULT
    if files_error and asked:
        raise ValueError(files_error)
    options = defined.get(name)
    if options is None:
        if not asked or name == DEFAULT:
            return None, ""  # Traefik's built-in default: no client certificates
        where = (
            sources or "no Traefik dynamic-configuration file (CERTBOTLESS_TRAEFIK_DYNAMIC_CONFIG)"
        )
        raise ValueError(f"{where} defines no tls.options.{name}; Traefik refuses the router "
                         "too")  # fmt: skip
    if options.client_auth is None:
        raise ValueError(options.error)
    auth = None if options.client_auth.verify == "off" else options.client_auth
    note = ""
    if options.other_fields and asked:
        note = (f"tls.options.{name}: {', '.join(options.other_fields)} not applied (the edge "
                "serves TLS 1.2 and 1.3 with Mozilla's intermediate ciphers for every host); "
                "its clientAuth is")  # fmt: skip
    return auth, note
