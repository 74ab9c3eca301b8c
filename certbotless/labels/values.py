"""Label values every dialect checks alike: hostnames and IP addresses, paths, URLs, durations,
statuses, header names and values, secret names, client networks and flags.

A value that does not parse raises InvalidLabel, made by the caller's InvalidFactory: each
dialect names its own label and value in the LabelProblem.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from urllib.parse import urlsplit

import idna

from certbotless.model import CHALLENGE_PREFIX, OBJECT_NAME_PREFIX, LabelProblem, is_ip_address

# The native labels a host's problems name in every dialect: a host is reported under
# certbotless.domains, and the fix for wildcards names the challenge label. native.py holds the
# other labels.
LABEL_PREFIX = "certbotless."
DOMAINS = LABEL_PREFIX + "domains"
PROFILE = LABEL_PREFIX + "profile"
CHALLENGE = LABEL_PREFIX + "challenge"  # http-01 (default), dns-01, mixed

# ASCII only throughout: str.isdigit() and \d accept "²" and fullwidth digits, which int() or
# nginx refuse.
_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$", re.ASCII)
# Certificate names: lowercase letters, digits, '-' and dots, like a hostname.
CERTIFICATE_NAME_RE = re.compile(r"[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?", re.ASCII)


# The CA profile an IP address is ordered under when the labels name none: Let's Encrypt issues
# for addresses (RFC 8738) only under `shortlived` (6-day certificates).
IP_ADDRESS_PROFILE = "shortlived"


def certificate_name_for(host: str) -> str:
    """The certificate a first name names when no label does: a wildcard's is its domain's
    (`*.example.com` → wildcard.example.com), an IPv6 address's has `-` for its colons, and a
    `0` where it would begin or end with one (`::1` → 0--1)."""
    name = host.replace("*.", "wildcard.", 1).replace(":", "-")
    return ("0" if name.startswith("-") else "") + name + ("0" if name.endswith("-") else "")


def profile_for(hosts: tuple[str, ...], asked: str | None) -> str | None:
    """The CA profile of a certificate for `hosts`: the one the labels ask for, else
    IP_ADDRESS_PROFILE when a name is an IP address (no other profile issues for one at Let's
    Encrypt), else none (the CA's default)."""
    if asked:
        return asked
    return IP_ADDRESS_PROFILE if any(is_ip_address(host) for host in hosts) else None


_TIME_RE = re.compile(r"^([0-9]{1,8})(ms|s|m|h)?$", re.ASCII)
_STATUS_RANGE_RE = re.compile(r"^([0-9]{3})(?:-([0-9]{3}))?$", re.ASCII)
_IP_RE = re.compile(r"^[0-9.]+$", re.ASCII)
# No braces: nginx would read them as a block. `{status}` is replaced before nginx sees it.
_URL_SAFE_RE = re.compile(r"^[A-Za-z0-9._~:/?#\[\]@!&()*+,=%-]+$", re.ASCII)
_PATH_RE = re.compile(r"^/[A-Za-z0-9._~!&()*+,=:@%/-]*$", re.ASCII)
# A router's rule may also name a space, which requests send as %20 (it is only ever matched,
# in a quoted regex, never written into a rewrite).
_MATCHED_PATH_RE = re.compile(r"^/[A-Za-z0-9._~!&()*+,=:@%/ -]*$", re.ASCII)
HEADER_NAME_RE = re.compile(r"^[A-Za-z0-9-]{1,100}$", re.ASCII)
# Printable, and nothing nginx would read as a variable or the end of a quoted string.
HEADER_VALUE_RE = re.compile(r"^[\x20\x21\x23\x25-\x5b\x5d-\x7e]{0,2000}$", re.ASCII)
# Docker's own rule for secret names; nginx reads them as a path, unquoted.
SECRET_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", re.ASCII)
STATUS_PLACEHOLDER = "{status}"
INTERNAL_LOCATION = "/.certbotless/"  # the edge's forward-auth subrequests
# Locations the edge keeps for itself, so no route may use them.
RESERVED_PATHS = (CHALLENGE_PREFIX, INTERNAL_LOCATION)
# nginx reads its configuration in 4 KiB pieces and refuses a longer word ("too long
# parameter"), which would stop every roll: paths and URLs stay well below (a browser sends at
# most about 2,000 characters of URL anyway).
MAX_PATH_LENGTH = 1024
MAX_URL_LENGTH = 2048
_TIME_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}
MAX_TIMEOUT_MS = 86_400_000  # one day
TRUE_WORDS = {"true", "yes", "1", "on"}
_FALSE_WORDS = {"false", "no", "0", "off"}


class InvalidLabel(Exception):
    def __init__(self, problem: LabelProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


InvalidFactory = Callable[[str, str], InvalidLabel]


def parse_hosts(
    value: str, invalid: InvalidFactory, ip_allowed: bool = False, wildcards: bool = False
) -> tuple[str, ...]:
    return tuple(
        dict.fromkeys(parse_hostname(h, invalid, ip_allowed, wildcards) for h in value.split(","))
    )


def parse_hostname(
    raw: str, invalid: InvalidFactory, ip_allowed: bool = False, wildcard_allowed: bool = False
) -> str:
    """A hostname as the CA and nginx want it; an IP address only when `ip_allowed` (a name
    the service may have a certificate for, ordered under profile_for's profile); a wildcard
    (`*.` and a hostname) only when `wildcard_allowed` (the service asks for DNS-01)."""
    host = raw.strip().rstrip(".").lower()
    if not host:
        raise invalid(DOMAINS, "contains an empty name; separate hostnames with single commas")
    if host.startswith("*."):
        if not wildcard_allowed:
            raise invalid(
                DOMAINS,
                f"{host} is a wildcard: only DNS-01 proves wildcards; set {CHALLENGE}=dns-01 "
                "(or mixed: wildcards by DNS-01, the other names by HTTP-01) and a DNS provider, "
                "or list each hostname instead",
            )
        if "*" in host[2:]:
            raise invalid(
                DOMAINS, f"{host}: a wildcard stands for the leftmost label only (*.example.com)"
            )
        return "*." + parse_hostname(host[2:], invalid)
    if ":" in host:
        return _parse_ipv6_address(host, invalid, ip_allowed)
    if _IP_RE.match(host):
        return _parse_ip_address(host, invalid, ip_allowed)
    try:
        host = _to_ascii_hostname(host)
    except UnicodeError:  # idna's errors are UnicodeErrors
        raise invalid(
            DOMAINS,
            f"{raw.strip()} is not a valid hostname (letters, digits, '-', dots; labels of at "
            "most 63 characters, 253 in all)",
        ) from None
    labels = host.split(".")
    if len(host) > 253 or len(labels) < 2 or not all(_LABEL_RE.match(p) for p in labels):
        raise invalid(
            DOMAINS,
            f"{host} is not a fully qualified hostname (letters, digits, '-', dots; labels of "
            "at most 63 characters, 253 in all)",
        )
    if _IP_RE.match(labels[-1]):
        raise invalid(DOMAINS, f"{host} ends in a numeric label, as no DNS name does: use a "
                      "hostname, or an IP address as four numbers")  # fmt: skip
    return host


def _ip_address_problem(host: str) -> str:
    return f"{host} is an IP address, which is not accepted here: use a hostname"


def _parse_ip_address(host: str, invalid: InvalidFactory, ip_allowed: bool) -> str:
    try:
        address = ipaddress.IPv4Address(host)
    except ValueError:
        raise invalid(DOMAINS, f"{host} is neither a hostname nor an IPv4 address") from None
    if not ip_allowed:
        raise invalid(DOMAINS, _ip_address_problem(host))
    return str(address)


def _parse_ipv6_address(host: str, invalid: InvalidFactory, ip_allowed: bool) -> str:
    """An IPv6 address (brackets allowed), in RFC 5952's form: what the CA's identifier
    (RFC 8738) and a browser's Host header write."""
    try:
        address = ipaddress.IPv6Address(host.removeprefix("[").removesuffix("]"))
    except ValueError:
        raise invalid(
            DOMAINS,
            f"{host} is neither an IPv6 address nor a hostname (a name has no port: the edge "
            "serves ports 80 and 443)",
        ) from None
    if not ip_allowed:
        raise invalid(DOMAINS, _ip_address_problem(str(address)))
    return str(address)


def _to_ascii_hostname(host: str) -> str:
    """IDNA 2008 with UTS #46 mapping, as browsers do: `straße` is `xn--strae-oqa`, where Python's
    own IDNA 2003 codec would make it `strasse`. Plain ASCII labels are left to the LDH check
    (IDNA would refuse DNS-valid names such as `ab--cd`); an ASCII `xn--` label only has to be
    Punycode: IDNA 2008 refuses some (`xn--9t9h`, an emoji) that DNS, browsers and Traefik take."""
    mapped = idna.uts46_remap(host, std3_rules=False, transitional=False)
    labels = mapped.split(".")
    if "" in labels:
        raise UnicodeError("empty label")
    for label in labels:
        if label.isascii() and label.startswith("xn--"):
            label[4:].encode("ascii").decode("punycode")  # raises UnicodeError when it is not
    return ".".join(
        label if label.isascii() else idna.alabel(label).decode("ascii") for label in labels
    )


def check_path(path: str, label: str, invalid: InvalidFactory, matched_only: bool = False) -> None:
    """A path prefix nginx can take as a location and that is not the edge's own;
    `matched_only`: a path the edge only matches requests against (it may hold a space)."""
    if len(path) > MAX_PATH_LENGTH:
        raise invalid(label, f"is {len(path)} characters long; nginx takes at most "
                      f"{MAX_PATH_LENGTH} here: shorten the path prefix")  # fmt: skip
    if (
        not (_MATCHED_PATH_RE if matched_only else _PATH_RE).match(path)
        or "//" in path
        or "/../" in f"{path}/"
    ):
        raise invalid(label, "must start with / and hold only URL path characters, e.g. /api")
    reserved = next((r for r in RESERVED_PATHS if f"{path}/".startswith(r)), None)
    if reserved is not None:
        raise invalid(label, f"{reserved} is reserved for the edge itself; choose another path")


def check_url(
    url: str, label: str, invalid: InvalidFactory, example: str, placeholder: str = ""
) -> None:
    if len(url) > MAX_URL_LENGTH:
        raise invalid(label, f"is {len(url)} characters long; nginx takes at most "
                      f"{MAX_URL_LENGTH} here: use a shorter URL")  # fmt: skip
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a port that is not a number from 0 to 65535
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid(label, f"must be an http:// or https:// URL, e.g. {example}")
    if not _URL_SAFE_RE.match(url.replace(placeholder, "") if placeholder else url):
        raise invalid(
            label, "contains characters a URL cannot hold (spaces, quotes, ';', '{', '}')"
        )


def check_timeout(value: str, label: str, invalid: InvalidFactory) -> None:
    match = _TIME_RE.match(value)
    milliseconds = int(match.group(1)) * _TIME_UNIT_MS[match.group(2) or "s"] if match else 0
    if not 0 < milliseconds <= MAX_TIMEOUT_MS:
        raise invalid(
            label, "must be a duration like 300s, 5m or 1h (ms, s, m or h; at most 1 day)"
        )


def parse_statuses(value: str, invalid: InvalidFactory, label: str = "") -> tuple[int, ...]:
    """`label`: the label a problem names (none where `invalid` names its own)."""
    statuses: set[int] = set()
    for part in value.split(","):
        match = _STATUS_RANGE_RE.match(part.strip())
        low = int(match.group(1)) if match else 0
        high = int(match.group(2) or low) if match else 0
        if not match or not 300 <= low <= high <= 599:
            raise invalid(label, "must be statuses or ranges from 300 to 599, e.g. 400-599")
        statuses.update(range(low, high + 1))
    # 499 is nginx's own "client closed the connection": nothing to show, and error_page refuses it.
    return tuple(sorted(statuses - {499}))


def flag(value: str, label: str, invalid: InvalidFactory) -> bool:
    if value.lower() in TRUE_WORDS:
        return True
    if value.lower() in _FALSE_WORDS:
        return False
    raise invalid(label, "must be true or false")


def parse_networks(value: str, label: str, invalid: InvalidFactory) -> tuple[str, ...]:
    """Client addresses or networks (CIDR), comma-separated."""
    networks = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        try:
            networks.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise invalid(label, f"{part!r} is not an address or network (CIDR), e.g. "
                          "10.0.0.0/8,192.0.2.7") from None  # fmt: skip
    if value.strip() and not networks:
        raise invalid(label, "names no network")
    return tuple(dict.fromkeys(networks))


def refused_htpasswd_secret(secret: str) -> str | None:
    """Why the edge may not mount `secret` as a users file, if it may not: the edge would hold
    certbotless's own secrets (its ACME account key, certificate keys)."""
    if secret.startswith(OBJECT_NAME_PREFIX):
        return (f"{secret} is one of certbotless's own secrets ({OBJECT_NAME_PREFIX}…), never "
                "an htpasswd file: name a secret made from one")  # fmt: skip
    return None


# Secrets the docs have the operator make for certbotless (DNS-01 credentials, the status page's
# users) are named so: the Docker API proxy lets specs mount them, as certbotless's own.
OPERATOR_SECRET_PREFIX = "certbotless-"


def edge_may_mount(secret: str, user_secrets: re.Pattern[str] | None) -> bool:
    """Whether the Docker API proxy lets the edge mount `secret` (haproxy/docker-api-proxy.cfg):
    certbotless's, or one of yours that CERTBOTLESS_USER_SECRETS names."""
    if secret.startswith((OBJECT_NAME_PREFIX, OPERATOR_SECRET_PREFIX)):
        return True
    return user_secrets is not None and user_secrets.fullmatch(secret) is not None


# Why a secret that exists is not among those a label may name.
NOT_MOUNTABLE = ("(or the edge may not mount it: the Docker API proxy lets it mount only "
                 "secrets whose whole name CERTBOTLESS_USER_SECRETS matches)")  # fmt: skip


def check_secret_name(
    secret: str, label: str, invalid: InvalidFactory, secrets: frozenset[str] | None
) -> None:
    """A Swarm secret holding htpasswd lines, which must exist when the secrets are known."""
    if not SECRET_NAME_RE.match(secret):
        raise invalid(label, "must name a Swarm secret (letters, digits, '_', '.', '-')")
    if (refused := refused_htpasswd_secret(secret)) is not None:
        raise invalid(label, refused)
    if secrets is not None and secret not in secrets:
        raise invalid(
            label,
            f"no Swarm secret is named {secret} {NOT_MOUNTABLE}; create it from an htpasswd "
            f"file (`htpasswd -nB ops | docker secret create {secret} -`); until then the "
            "service is not routed, never served without its password",
        )
