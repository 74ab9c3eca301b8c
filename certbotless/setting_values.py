"""Single CERTBOTLESS_* values → what they mean, or a SettingsError naming the variable, its
value and the form expected. `settings` reads each variable with these; nothing of certbotless
is imported here.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import ssl
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import TypeVar
from urllib.parse import SplitResult, urlsplit

PREFIX = "CERTBOTLESS_"
_SERVICE_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?")
# A host name, or a Swarm service's (which may hold '_', e.g. edge_certbotless).
_HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*")  # fmt: skip
ADDRESS = re.compile(r"[^@\s:;,<>()\[\]\\\"]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
# Goes into nginx.conf and into Swarm's mount targets as it is.
_NGINX_PATH = re.compile(r"(?:/[A-Za-z0-9._-]+)+")


class SettingsError(ValueError):
    """A setting is wrong; the message names the variable, its value and the form expected."""


def invalid(name: str, value: str, expected: str) -> SettingsError:
    gap = "" if expected.startswith(":") else " "
    return SettingsError(f"{PREFIX}{name}={value!r}{gap}{expected}")


def url_parts(value: str, schemes: tuple[str, ...]) -> SplitResult | None:
    """`value` split, when it is a URL of one of `schemes` with a host and a valid port."""
    if not value.isprintable() or any(c.isspace() for c in value):
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises ValueError when it is not a port number)
    except ValueError:
        return None
    return parts if parts.scheme in schemes and parts.hostname else None


def is_base64url(value: str) -> bool:
    if not re.fullmatch(r"[A-Za-z0-9_-]+=*", value):
        return False
    try:
        base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except ValueError:
        return False
    return True


def one_line(value: str | None, name: str, expected: str = "", spaces: bool = True) -> str | None:
    """Free text on one line (no control characters; no spaces unless `spaces`)."""
    if value is None:
        return None
    if not value.isprintable() or (not spaces and any(c.isspace() for c in value)):
        raise invalid(name, value, expected or "must be text on one line")
    return value


def caa_identities(value: str | None, name: str) -> str | None:
    """`off`, or the CA's CAA identities: domain names, comma-separated."""
    value = one_line(value, name)
    if value is None or value.strip().lower() == "off":
        return value and "off"
    parts = [part.strip() for part in value.split(",")]
    if not all(_HOSTNAME.fullmatch(part) for part in parts):
        raise invalid(
            name,
            value,
            "the CA's CAA identities (domain names, comma-separated, e.g. letsencrypt.org), or off",
        )
    return ",".join(part.lower() for part in parts)


def email_address(value: str | None, name: str) -> str | None:
    if value is not None and not ADDRESS.fullmatch(value):
        raise invalid(name, value, "is not an e-mail address; write e.g. ops@example.com")
    return value


def service_name(value: str | None, name: str) -> str | None:
    if value is not None and not _SERVICE_NAME.fullmatch(value):
        raise invalid(name, value, "is not a service name: up to 63 letters, digits, '-' "
                      "and '_', as `docker service ls` shows it")  # fmt: skip
    return value


def path(value: str | None, name: str) -> Path | None:
    if value is None:
        return None
    if not value.startswith("/") or not value.isprintable():
        raise invalid(name, value, "must be an absolute path, e.g. /run/certbotless/…")
    return Path(value)


def paths(value: str | None, name: str) -> tuple[Path, ...]:
    """Absolute paths, comma-separated."""
    parts = [part.strip() for part in (value or "").split(",") if part.strip()]
    if not all(part.startswith("/") and part.isprintable() for part in parts):
        raise invalid(name, value or "", "must be absolute paths, comma-separated, e.g. "
                      "/etc/certbotless/traefik/dynamic.yml")  # fmt: skip
    return tuple(Path(part) for part in parts)


def certs_dir(value: str | None, name: str) -> str | None:
    """An absolute path nginx.conf can name unquoted (and Swarm mount under)."""
    if value is None:
        return None
    if not _NGINX_PATH.fullmatch(value.rstrip("/") or "/"):
        raise invalid(name, value, "must be an absolute path of letters, digits, '.', '_' "
                      "and '-' below /, e.g. /etc/nginx/certs")  # fmt: skip
    return value.rstrip("/")


def ca_bundle(value: str | None, name: str) -> Path | None:
    if value is None:
        return None
    bundle = Path(value)
    if not bundle.is_file():
        raise invalid(name, value, ": no such file; mount it or unset the variable")
    try:
        ssl.create_default_context(cafile=str(bundle))
    except (ssl.SSLError, ValueError, OSError) as error:
        raise invalid(name, value, f"is not a file of PEM certificates ({error}); give the "
                      "CA's root certificate in PEM") from None  # fmt: skip
    return bundle


def flag(value: str | None, name: str, default: bool) -> bool:
    if value is None:
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise invalid(name, value, "must be true or false")


Mode = TypeVar("Mode", bound=StrEnum)


def choice(value: str | None, name: str, default: Mode, meaning: str = "") -> Mode:
    """One of `default`'s enum, in any case. `meaning`: what each choice does, for the error."""
    modes = type(default)
    try:
        return modes((value or default).lower())
    except ValueError:
        choices = meaning or "one of: " + ", ".join(modes)
        raise invalid(name, value or "", f"must be {choices}") from None


def number(value: str | None, name: str, low: int, high: int, default: int) -> int:
    """A whole number in ASCII digits (int() would take '١٢' or '1_0'; '²'.isdigit() is True
    but int('²') fails) between `low` and `high`."""
    if value is None:
        return default
    if not (value.isascii() and value.isdigit()) or not low <= int(value) <= high:
        raise invalid(name, value, f"must be a whole number from {low} to {high}")
    return int(value)


def _port(value: str) -> int | None:
    if value.isascii() and value.isdigit() and 0 < int(value) < 65536:
        return int(value)
    return None


def listen_address(value: str | None, name: str, alternative: str = "") -> tuple[str, int] | None:
    """IPV4:PORT to listen on (an empty address: every interface)."""
    if value is None:
        return None
    host, _, port = value.rpartition(":")
    port_number = _port(port)
    try:
        ipaddress.IPv4Address(host or "0.0.0.0")
    except ValueError:
        port_number = None
    if port_number is None:
        raise invalid(
            name,
            value,
            "must look like IPV4:PORT, e.g. 0.0.0.0:8402 (HOST:PORT "
            f"with an IPv4 address and a port from 1 to 65535) {alternative}".strip(),
        )
    return (host or "0.0.0.0", port_number)


def resolvers(value: str | None, name: str) -> tuple[tuple[str, int], ...]:
    """IP[:PORT],… (port 53 unless given; an IPv6 address in brackets when with a port)."""
    if value is None:
        return ()
    found = []
    for item in value.split(","):
        text = item.strip()
        host, port = text, "53"
        if text.startswith("[") and "]:" in text:
            host, _, port = text[1:].partition("]:")
        elif text.count(":") == 1:
            host, _, port = text.partition(":")
        try:
            address = str(ipaddress.ip_address(host.strip("[]")))
        except ValueError:
            address = ""
        port_number = _port(port)
        if not address or port_number is None:
            raise invalid(
                name, value, "must be IP addresses with optional ports, separated by commas, "
                "e.g. 10.0.0.53,10.0.0.54:5353 or [2001:db8::53]:53",
            )  # fmt: skip
        found.append((address, port_number))
    return tuple(found)


def upstream(value: str | None, name: str) -> str | None:
    """HOST:PORT nginx reaches the responder at (written into nginx.conf as it is)."""
    if value is None:
        return None
    host, _, port = value.rpartition(":")
    if not _HOSTNAME.fullmatch(host) or _port(port) is None:
        raise invalid(name, value, "must look like HOST:PORT, e.g. certbotless:8402 (a "
                      "service or host name, and a port from 1 to 65535)")  # fmt: skip
    return value


def subnets(value: str | None, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """Comma-separated networks, or `none`."""
    if value is None:
        return default
    if value.lower() == "none":
        return ()
    networks = []
    expected = ("give the subnet of the L4 front's network (e.g. 10.222.0.0/24), or `none` "
                "when nginx publishes its own ports")  # fmt: skip
    for part in (p.strip() for p in value.split(",")):
        try:
            networks.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise invalid(name, value, f": {part!r} is not a network; {expected}") from None
    return tuple(networks)


# Traefik's default-rule templates (Go's text/template, with sprig's functions and Traefik's
# `normalize`): the actions {{ … }} certbotless evaluates. Functions: normalize, lower, upper,
# index; fields .Name and .Labels; "strings"; ( ) and | pipes.
_ACTION_RE = re.compile(r"\{\{-?(.*?)-?\}\}", re.DOTALL)
_TEMPLATE_TOKEN_RE = re.compile(r'\s*(?:(\.[A-Za-z]+)|([a-z][A-Za-z]*)|("(?:[^"\\]|\\.)*"|`[^`]*`)'
                                r"|([()|]))")  # fmt: skip
_TEMPLATE_FUNCTIONS = ("normalize", "lower", "upper", "index")
_Value = str | dict[str, str]


def normalize(name: str) -> str:
    """Traefik's provider.Normalize: runs of characters other than letters and digits become
    one '-', none at either end."""
    return "-".join(part for part in re.split(r"[^\w]|_", name) if part)


class RuleTemplate:
    """A default rule such as Host(`{{ normalize .Name }}.example.com`), checked when read."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.render("service", {})  # raises ValueError on what it cannot evaluate

    def render(self, name: str, labels: dict[str, str]) -> str:
        """The rule for a Swarm service: .Name is its normalized name, .Labels its labels."""
        fields: dict[str, _Value] = {".Name": normalize(name), ".Labels": labels}

        def action(match: re.Match[str]) -> str:
            tokens = _template_tokens(match.group(1))
            value, rest = _pipeline(tokens, fields)
            if rest or not isinstance(value, str):
                raise ValueError(f"cannot evaluate {{{{{match.group(1)}}}}}")
            return value

        if "{{" in _ACTION_RE.sub("", self.text):
            raise ValueError("an action {{ is not closed")
        return _ACTION_RE.sub(action, self.text)


def _template_tokens(text: str) -> list[str]:
    tokens, position = [], 0
    while text[position:].strip():
        match = _TEMPLATE_TOKEN_RE.match(text, position)
        if match is None:
            raise ValueError(f"cannot read {text[position:].strip()!r}")
        tokens.append(match.group(match.lastindex or 0))
        position = match.end()
    return tokens


def _pipeline(tokens: list[str], fields: dict[str, _Value]) -> tuple[_Value, list[str]]:
    value, tokens = _command(tokens, fields, None)
    while tokens and tokens[0] == "|":
        value, tokens = _command(tokens[1:], fields, value)
    return value, tokens


def _command(
    tokens: list[str], fields: dict[str, _Value], piped: _Value | None
) -> tuple[_Value, list[str]]:
    if not tokens:
        raise ValueError("an action is empty")
    head, tokens = tokens[0], tokens[1:]
    if head not in _TEMPLATE_FUNCTIONS:
        if piped is not None:
            raise ValueError(f"{head} is not a function (read: normalize, lower, upper, index)")
        return _operand(head, tokens, fields)
    args: list[_Value] = []
    while tokens and tokens[0] not in ("|", ")"):
        arg, tokens = _operand(tokens[0], tokens[1:], fields)
        args.append(arg)
    args += [piped] if piped is not None else []
    return _call(head, args), tokens


def _operand(head: str, tokens: list[str], fields: dict[str, _Value]) -> tuple[_Value, list[str]]:
    if head == "(":
        value, tokens = _pipeline(tokens, fields)
        if not tokens or tokens[0] != ")":
            raise ValueError("a ( is not closed")
        return value, tokens[1:]
    if head in fields:
        return fields[head], tokens
    if head[:1] in ('"', "`"):
        return (head[1:-1] if head[0] == "`" else re.sub(r"\\(.)", r"\1", head[1:-1])), tokens
    if head.startswith("."):
        raise ValueError(f"{head} is not read (fields: .Name, .Labels)")
    raise ValueError(f"{head} is not a function certbotless reads (normalize, lower, upper, index)")


def _call(function: str, args: list[_Value]) -> _Value:
    if function == "index":
        if len(args) != 2 or not isinstance(args[0], dict) or not isinstance(args[1], str):
            raise ValueError('index takes .Labels and a "key"')
        return args[0].get(args[1], "")  # Go: a missing key is ""
    if len(args) != 1 or not isinstance(args[0], str):
        raise ValueError(f"{function} takes one string")
    return {"normalize": normalize, "lower": str.lower, "upper": str.upper}[function](args[0])


def name_pattern(value: str | None, name: str) -> re.Pattern[str] | None:
    """A regular expression whole names must match (None: unset, nothing matches)."""
    if not value:
        return None
    try:
        return re.compile(value)
    except re.error as error:
        raise invalid(name, value, f"must be a regular expression ({error})") from None


def rule_template(value: str | None, name: str) -> RuleTemplate | None:
    if value is None or not value.strip():
        return None
    try:
        return RuleTemplate(value.strip())
    except ValueError as error:
        raise invalid(name, value, f"is not a default rule certbotless can evaluate: {error} "
                      '(it reads {{ normalize .Name }}, {{ index .Labels "key" }}, lower, '
                      "upper, ( ) and |)") from None  # fmt: skip


# Traefik's server.url schemes certbotless proxies to (h2c: HTTP/2 without TLS).
SERVER_URL_SCHEMES = ("http", "https", "h2c")


@dataclass(frozen=True)
class ServerUrlPrefix:
    """Where services' `server.url` labels may send the edge's traffic: this scheme and host
    (`*.example.com`: any name under it), this port (None: any), under this path."""

    scheme: str
    host: str
    port: int | None
    path: str  # "" or /a/b: the URL's path is it, or starts with it and a `/`

    def allows(self, url: SplitResult) -> bool:
        host = (url.hostname or "").lower()
        wildcard = self.host.startswith("*.") and host.endswith(self.host[1:])
        if url.scheme != self.scheme or not (host == self.host or wildcard):
            return False
        if self.port is not None and (url.port or _DEFAULT_PORTS[url.scheme]) != self.port:
            return False
        path = url.path or "/"
        return not self.path or path == self.path or path.startswith(self.path + "/")


_DEFAULT_PORTS = {"http": 80, "https": 443, "h2c": 80}


def server_url_prefixes(value: str | None, name: str) -> tuple[ServerUrlPrefix, ...]:
    """Comma-separated URL prefixes (SCHEME://HOST[:PORT][/PATH]); none: server.url refused."""
    found = []
    for part in (p.strip() for p in (value or "").split(",") if p.strip()):
        host = part.partition("://")[2].partition("/")[0].rpartition("@")[2]
        parts = url_parts(part.replace("://*.", "://wildcard.", 1), SERVER_URL_SCHEMES)
        if parts is None or parts.query or parts.fragment or "@" in parts.netloc:
            expected = (
                "comma-separated SCHEME://HOST[:PORT][/PATH] (scheme http, https or "
                "h2c; HOST may start with `*.`), e.g. http://legacy.internal:8080"
            )
            raise invalid(name, value or "", f": {part!r} is not a URL prefix; give {expected}")
        bare = host.rsplit(":", 1)[0] if parts.port is not None else host
        found.append(ServerUrlPrefix(parts.scheme, bare.lower().strip("[]"), parts.port,
                                     parts.path.rstrip("/")))  # fmt: skip
    return tuple(found)


@dataclass(frozen=True)
class OrderShare:
    """Each claimant's share of the CA's orders: `orders` new orders per `window` (None: no
    limit), a failed order counting `failed_weight` times, so that a claimant whose orders fail
    backs off by itself."""

    orders: int | None = 30
    window: timedelta = timedelta(hours=3)
    failed_weight: int = 3

    def words(self) -> str:
        if self.orders is None:
            return "no limit"
        hours = self.window.total_seconds() / 3600
        return (f"{self.orders} per {hours:g} h, a failed order counting "
                f"{self.failed_weight}")  # fmt: skip


_PER_WINDOW = re.compile(r"([0-9]{1,6})/([0-9]{1,4})([mhd])")
_UNIT = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}


def order_share(value: str | None, weight: int, name: str, default: OrderShare) -> OrderShare:
    """N/DURATION (`30/3h`, `10/30m`, `100/1d`; within 7 days) or `off`."""
    if value is None:
        return OrderShare(default.orders, default.window, weight)
    if value.lower() == "off":
        return OrderShare(None, default.window, weight)
    found = _PER_WINDOW.fullmatch(value)
    window = _UNIT[found[3]] * int(found[2]) if found else timedelta(0)
    if found is None or int(found[1]) < 1 or not timedelta(0) < window <= timedelta(days=7):
        raise invalid(name, value, "must be ORDERS/DURATION (a duration in m, h or d, at most "
                      "7 days), e.g. 30/3h, or off")  # fmt: skip
    return OrderShare(int(found[1]), window, weight)


@dataclass(frozen=True)
class Dns01Grant:
    """Services whose names match `services` (a shell pattern whose `*` and `?` never stand for
    `_`: `shop_*` is stack shop's services, not stack shop_evil's `shop_evil_x`; `*` alone: any
    service) may prove names in `zones` (a zone and every name under it; `*`: any) by DNS-01."""

    services: str
    zones: tuple[str, ...]

    def allows(self, service: str, name: str) -> bool:
        if self.services != "*" and not _within_one_stack(self.services).fullmatch(service):
            return False
        host = name.removeprefix("*.").rstrip(".").lower()
        return any(zone == "*" or host == zone or host.endswith("." + zone) for zone in self.zones)


def _within_one_stack(pattern: str) -> re.Pattern[str]:
    """A service-name pattern whose wildcards stop at `_`, the separator `docker stack deploy`
    puts between a stack's name and its service's: a stack named `shop_evil` cannot match
    `shop_*`."""
    pieces = {"*": "[^_]*", "?": "[^_]"}
    return re.compile("".join(pieces.get(c, re.escape(c)) for c in pattern))


def dns01_grants(value: str | None, name: str) -> tuple[Dns01Grant, ...]:
    """`SERVICES=ZONE[,ZONE…]`, separated by `;` (unset: none, DNS-01 refused)."""
    grants = []
    for entry in (e.strip() for e in (value or "").split(";") if e.strip()):
        services, _, zones = entry.partition("=")
        listed = tuple(z.strip().rstrip(".").lower() for z in zones.split(",") if z.strip())
        if (
            not services.strip()
            or not listed
            or not all(z == "*" or _HOSTNAME.fullmatch(z) for z in listed)
        ):
            raise invalid(name, value or "", f": {entry!r} is not SERVICES=ZONE[,ZONE…]; give "
                          "e.g. shop_*=shop.example.com;ops_*=example.org,example.net, or *=* "
                          "for every service and zone")  # fmt: skip
        grants.append(Dns01Grant(services.strip(), listed))
    return tuple(grants)
