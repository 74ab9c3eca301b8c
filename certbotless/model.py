"""Plain data types shared by every stage. No I/O here."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class KeyType(StrEnum):
    EC256 = "ec256"
    EC384 = "ec384"
    RSA2048 = "rsa2048"
    RSA3072 = "rsa3072"
    RSA4096 = "rsa4096"


def is_ip_address(name: str) -> bool:
    """Whether a certificate name (an ACME identifier) is an IP address rather than a host."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class ServiceInfo:
    """What discovery needs to know about one swarm service."""

    name: str
    labels: dict[str, str]
    network_ids: tuple[str, ...] = ()
    network_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class ErrorPages:
    """Error responses replaced by pages from another service: `url` has `{status}` in it."""

    url: str
    statuses: tuple[int, ...]


@dataclass(frozen=True)
class Route:
    """One host+path served by the edge and proxied to a service."""

    service: str
    hosts: tuple[str, ...]
    port: int
    path: str = "/"
    redirect_to_https: bool = True
    max_body_size: str | None = None  # nginx size syntax: 20m, 512k
    auth_url: str | None = None  # forward auth: a 2xx from it lets the request through
    hsts: bool = False
    error_pages: ErrorPages | None = None
    timeout: str | None = None  # nginx time syntax (300s, 5m): proxy read and send timeouts


@dataclass(frozen=True)
class CertSpec:
    """A certificate that should exist. `name` is stable across renewals."""

    name: str
    domains: tuple[str, ...]
    key_type: KeyType = KeyType.EC256
    profile: str | None = None


@dataclass(frozen=True)
class LabelProblem:
    """A label that could not be used, in words an operator can act on."""

    service: str
    label: str
    value: str
    message: str

    def __str__(self) -> str:
        return f"service {self.service}: label {self.label}={self.value!r}: {self.message}"


@dataclass(frozen=True)
class Discovery:
    routes: tuple[Route, ...]
    specs: tuple[CertSpec, ...]
    problems: tuple[LabelProblem, ...]


@dataclass(frozen=True)
class IssuedCert:
    """A certificate fresh from the CA, with its private key (never logged)."""

    spec: CertSpec
    fullchain_pem: bytes
    key_pem: bytes = field(repr=False)
    directory_url: str = ""


@dataclass(frozen=True)
class StoredCert:
    """One stored version of a certificate: a chain config paired with a key secret."""

    name: str
    domains: tuple[str, ...]
    serial: str
    not_before: datetime
    not_after: datetime
    key_type: KeyType
    config_name: str
    config_id: str
    secret_name: str
    secret_id: str
    ari_id: str = ""
    directory_url: str = ""
    fingerprint: str = ""
    created_at: str = ""  # as Swarm reports it (RFC 3339); sorts by time
    # Where the labels disagree with the certificate itself (the certificate wins).
    mismatches: tuple[str, ...] = ()
    refused: str = ""  # why Swarm rolled back the update that mounted it, if it did


@dataclass(frozen=True)
class RenewalFailure:
    """The last failed attempt at a certificate, as recorded in the swarm until one succeeds."""

    at: datetime
    error: str

    def to_label(self) -> str:
        return json.dumps({"at": self.at.isoformat(), "error": self.error[:1000]})

    @classmethod
    def from_label(cls, text: str) -> RenewalFailure | None:
        try:
            value = json.loads(text)
            return cls(datetime.fromisoformat(value["at"]), str(value["error"]))
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True)
class FileReference:
    """A secret or config mounted into the edge service at `target`."""

    kind: str  # "secret" or "config"
    object_id: str
    object_name: str
    target: str
    mode: int
    # For a certificate chain: (the domains nginx serves it for, its serial), checked after a
    # roll.
    serves: tuple[tuple[str, ...], str] | None = None


@dataclass(frozen=True)
class StoredObject:
    """A secret or config certbotless made, as garbage collection sees it."""

    kind: str  # "secret" or "config"
    object_id: str
    name: str
    created_at: str
    role: str  # "chain", "key" or "nginx-conf"


@dataclass(frozen=True)
class Removal:
    target: StoredObject
    reason: str


@dataclass(frozen=True)
class Plan:
    """What one reconcile pass will do about certificates."""

    to_issue: tuple[CertSpec, ...]
    reasons: dict[str, str]
    current: dict[str, StoredCert]
    directory_url: str = ""  # the CA the renewals go to


@dataclass(frozen=True)
class PassReport:
    issued: tuple[str, ...] = ()
    failed: dict[str, str] = field(default_factory=dict)
    problems: tuple[LabelProblem, ...] = ()
    rolled: bool = False
    rollout_error: str | None = None
    removed: tuple[Removal, ...] = ()
    ca_unreachable: str | None = None  # the error, when the CA could not be reached at all
    certificates: tuple[StoredCert, ...] = ()  # the version in use of each wanted certificate
    next_renewal: datetime | None = None  # the earliest moment a certificate is due

    @property
    def ok(self) -> bool:
        return not self.failed and self.rollout_error is None


@dataclass(frozen=True)
class Listed:
    """One row of `certbotless list`."""

    name: str
    cert: StoredCert | None  # the version in use; None when none was ever stored
    in_use: bool | None  # whether the edge's spec mounts it (None: no edge to ask)
    wanted: bool  # whether a label asks for it (manual `issue`s are not renewed otherwise)
    failure: RenewalFailure | None
