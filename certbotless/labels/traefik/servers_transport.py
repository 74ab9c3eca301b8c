"""Traefik's serversTransport: a service's `loadbalancer.serversTransport` names one of the
dynamic configuration's `http.serversTransports` (`<name>@file`), which says how Traefik
reaches the service's servers. nginx honours, for an https service: `insecureSkipVerify` (no
verification), `rootCAs` (verified against them), `serverName` (the name sent and verified),
and otherwise verifies against the image's CAs as Go does; for any service,
`forwardingTimeouts.dialTimeout` and `.responseHeaderTimeout`. A name Traefik does not find
makes its service fail to build, and its routers answer 404: such a router is not routed.

Traefik qualifies a bare name with the service's provider (`<name>@swarm`), which defines no
serversTransports: only `<name>@file` (and `default@internal`, Traefik's default) can be
found."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from certbotless.labels.traefik.middlewares.options import ReadTransport
from certbotless.labels.traefik.tls_options import ca_pem
from certbotless.upstream_options import DEFAULT_TRANSPORT, ServersTransport

KEY = "loadbalancer.serverstransport"
# Options nginx cannot honour: the router is not routed (each narrows whom Traefik trusts or
# how it speaks to the service).
_REFUSED = {
    "certificates": "a client certificate for the service (mTLS) is not shown by the edge yet: "
    "let the service accept the edge without one",
    "ciphersuites": "the edge's nginx offers its own ciphers to services",
    "minversion": "the edge's nginx speaks TLS 1.2 and 1.3 to services, not chosen per service",
    "maxversion": "the edge's nginx speaks TLS 1.2 and 1.3 to services, not chosen per service",
    "peercerturi": "nginx verifies a service's certificate by its name only (serverName), not "
    "by a URI or other SANs",
    "peercertsans": "nginx verifies a service's certificate by its name only (serverName), not "
    "by other SANs",
    "spiffe": "nginx has no SPIFFE workload API: give the service a certificate from rootCAs",
}
# Options that change only how connections are kept or checked: reported, the rest applied.
_NOT_APPLIED = {
    "maxidleconnsperhost": "the edge keeps its own pool of idle connections per service",
    "forwardingtimeouts.idleconntimeout": "the edge closes idle connections to a service after 1 s",
    "forwardingtimeouts.readidletimeout": "nginx speaks HTTP/1.1 to services: there is no "
    "HTTP/2 connection to ping",
    "forwardingtimeouts.pingtimeout": "nginx speaks HTTP/1.1 to services: there is no HTTP/2 "
    "connection to ping",
}
# Read as Traefik does, with nothing to do: nginx speaks HTTP/1.1 to services anyway.
_SAME = {"disablehttp2"}
_KNOWN = {"servername", "insecureskipverify", "rootcas", "forwardingtimeouts.dialtimeout",
          "forwardingtimeouts.responseheadertimeout", *_NOT_APPLIED, *_SAME}  # fmt: skip
_GO_DURATION_RE = re.compile(r"([0-9]+(?:\.[0-9]*)?)(ns|us|µs|ms|s|m|h)")
_MILLISECONDS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1, "s": 1e3, "m": 6e4, "h": 3.6e6}


class TransportError(ValueError):
    pass


def parse_servers_transports(
    section: Mapping[str, object], path: Path
) -> dict[str, ReadTransport | str]:
    """`http.serversTransports` of one file: each transport, or why nginx cannot apply it."""
    found: dict[str, ReadTransport | str] = {}
    for name, body in section.items():
        try:
            found[str(name)] = _transport(body, path)
        except TransportError as error:
            found[str(name)] = f"{path.name}: http.serversTransports.{name}: {error}"
    return found


def _fields(body: object, prefix: str = "") -> dict[str, object]:
    if body is None:
        return {}
    if not isinstance(body, Mapping):
        raise TransportError("is not a mapping")
    flat: dict[str, object] = {}
    for key, value in body.items():
        name = f"{prefix}{str(key).lower()}"
        if isinstance(value, Mapping) and name == "forwardingtimeouts":
            flat |= _fields(value, name + ".")
        else:
            flat[name] = value
    return flat


def _transport(body: object, path: Path) -> ReadTransport:
    fields = _fields(body)
    for name, why in _REFUSED.items():
        if name in fields:
            raise TransportError(f"{name}: {why}")
    unknown = sorted(set(fields) - _KNOWN)
    if unknown:
        raise TransportError(f"{', '.join(unknown)} is not an option of a serversTransport")
    skip = _flag(fields.get("insecureskipverify"), "insecureSkipVerify")
    roots = fields.get("rootcas") or []
    if isinstance(roots, str):
        roots = [roots]
    if not isinstance(roots, list):
        raise TransportError("rootCAs must be a list of files or PEM contents")
    try:
        bundle = "".join(ca_pem(str(item), path, "rootCAs") for item in roots)
    except ValueError as error:
        raise TransportError(str(error)) from None
    server_name = str(fields.get("servername") or "").strip()
    if server_name and not re.fullmatch(r"[A-Za-z0-9.-]{1,253}", server_name):
        raise TransportError(f"serverName {server_name!r} is not a host name")
    _flag(fields.get("disablehttp2"), "disableHTTP2")
    transport = ServersTransport(
        verify=not skip, ca_pem=bundle, server_name=server_name,
        connect_timeout=_timeout(fields, "forwardingtimeouts.dialtimeout"),
        response_timeout=_timeout(fields, "forwardingtimeouts.responseheadertimeout"),
    )  # fmt: skip
    return transport, tuple(f"{name}: {why}" for name, why in _NOT_APPLIED.items()
                            if name in fields)  # fmt: skip


def _flag(value: object, option: str) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    if str(value).strip().lower() in ("true", "false"):
        return str(value).strip().lower() == "true"
    raise TransportError(f"{option} must be true or false")


def _timeout(fields: Mapping[str, object], key: str) -> str:
    """A Go duration (or whole seconds, as Traefik's Duration reads a number) in nginx's
    syntax; "" when absent. Zero, no limit in Traefik, has no nginx counterpart."""
    value = fields.get(key)
    if value is None:
        return ""
    text = str(value).strip()
    if re.fullmatch(r"[0-9]+", text):
        milliseconds = int(text) * 1000.0
    else:
        parts = _GO_DURATION_RE.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise TransportError(f"{key.partition('.')[2]} {text!r} is not a duration (10s, "
                                 "1m30s)")  # fmt: skip
        milliseconds = sum(float(n) * _MILLISECONDS[u] for n, u in parts)
    if milliseconds < 1:
        raise TransportError(f"{key.partition('.')[2]} {text!r}: no limit (0) or less than a "
                             "millisecond, which nginx cannot wait; give a duration")  # fmt: skip
    return f"{round(milliseconds)}ms"


def named_transport(
    name: str, transports: Mapping[str, ReadTransport | str], files_error: str
) -> ReadTransport:
    """The transport `name` (the label's value) names, as Traefik finds it, and its options
    not applied; TransportError says why none is applied (the router is then not routed)."""
    if name in ("", "default@internal"):
        return DEFAULT_TRANSPORT, ()
    bare, _, provider = name.partition("@")
    if provider != "file":
        qualified = f"{bare}@{provider or 'swarm'}"
        raise TransportError(f"Traefik looks for the serversTransport {qualified}, which no "
                             "provider defines (Swarm's labels define none): its service "
                             "fails to build (\"servers transport not found\") and its routers "
                             f"answer 404; define it in a dynamic configuration file and name "
                             f"it {bare}@file")  # fmt: skip
    if files_error:
        raise TransportError(files_error)
    found = transports.get(bare)
    if found is None:
        raise TransportError(f"the dynamic configuration defines no serversTransport {bare}: "
                             "Traefik's service fails to build (\"servers transport not "
                             "found\") and its routers answer 404")  # fmt: skip
    if isinstance(found, str):
        raise TransportError(found)
    return found
