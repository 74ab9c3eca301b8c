"""Plain data types shared by every stage. No I/O here."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum, StrEnum

from certbotless.client_tls import NO_CLIENT_TLS, ClientTls
from certbotless.forward_auth_options import ASKED_AS_TRAEFIK_DOES, ForwardAuthOptions
from certbotless.request_conditions import RequestCondition
from certbotless.rewrite_phase import NOTHING, RewritePhase
from certbotless.upstream_options import DEFAULT_UPSTREAM, UpstreamOptions

# Every secret and config certbotless makes is named so (its account key among them).
OBJECT_NAME_PREFIX = "cbl-"

# Where the CA fetches HTTP-01 tokens (RFC 8555 §8.3): served by the responder, forwarded by nginx,
# reserved from labelled routes.
CHALLENGE_PREFIX = "/.well-known/acme-challenge/"


class ChallengeType(StrEnum):
    """The ACME challenge a name is proved with."""

    HTTP01 = "http-01"
    DNS01 = "dns-01"
    TLS_ALPN01 = "tls-alpn-01"


class ChallengeMode(StrEnum):
    """How a certificate's names are proved (the `certbotless.challenge` label)."""

    HTTP01 = "http-01"  # every name through the edge
    DNS01 = "dns-01"  # every name by a TXT record
    MIXED = "mixed"  # wildcards by DNS-01, the other names by HTTP-01
    TLS_ALPN01 = "tls-alpn-01"  # every name on port 443, through the front (RFC 8737)


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


def host_form(name: str) -> str:
    """A certificate name as a Host header and nginx's `server_name` write it: an IPv6 address
    in brackets (RFC 3986), anything else as it is."""
    return f"[{name}]" if ":" in name and is_ip_address(name) else name


@dataclass(frozen=True)
class ServiceInfo:
    """What discovery needs to know about one swarm service."""

    name: str
    labels: dict[str, str]
    network_ids: tuple[str, ...] = ()
    network_names: tuple[str, ...] = ()
    stack: str = ""  # com.docker.stack.namespace, as the service says: it decides no ownership
    created_at: datetime | None = None  # Swarm's CreatedAt: orders new claims of one pass
    id: str = ""  # Swarm's ID, which claims record ("": not known, as in lint)
    trusted_stack: str = ""  # `stack`, where the operator trusts it (labels.claims.may_join)
    secret_mounts: tuple[tuple[str, str], ...] = ()  # (target under /run/secrets/, secret name)


@dataclass(frozen=True)
class ErrorPages:
    """Error responses replaced by pages from another service: `url`, where `{status}` is
    the answer's status and `{url}` the request's URL, query-escaped. `client_host`: the page is
    asked with the client's Host, as Traefik's errors middleware asks its service (which passes
    the Host on unless told not to). `request_headers`: only these request headers reach it
    (None: all). `nginx_headers` (name, value): sent with ingress-nginx's X-Code, X-Format,
    X-Original-Uri and X-Request-ID, and the answer keeps the page's status."""

    url: str
    statuses: tuple[int, ...]
    client_host: bool = False
    request_headers: tuple[str, ...] | None = None
    nginx_headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class BasicAuth:
    """HTTP basic auth: `users` are htpasswd lines (`name:hash`, apr1, SHA1 or bcrypt), or
    `secret` names the Swarm secret that holds them (the edge mounts it; nobody reads it)."""

    users: tuple[str, ...] = ()
    realm: str = "restricted"
    remove_header: bool = False  # the service does not see the Authorization header
    secret: str = ""
    user_header: str = ""  # a request header that tells the service the user's name
    digest: bool = False  # digest auth instead (digestAuth by njs): htdigest lines


@dataclass(frozen=True)
class RateLimit:
    """Requests per client address: `per_minute` on average, `burst` more at once; over it, 429."""

    per_minute: int
    burst: int = 1
    key: str = ""  # per: "" client address, "subnet:<N>", "host", "header:<name>", "one": all


@dataclass(frozen=True)
class Cors:
    """Cross-origin answers (Traefik's accessControl* headers): `origins` are exact origins
    (`https://app.example.com`) or `*`; preflight requests are answered by the edge."""

    origins: tuple[str, ...]
    methods: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    credentials: bool = False
    max_age: int | None = None  # seconds a browser may keep a preflight's answer
    vary: bool = False  # send `Vary: Origin`
    origin_regexes: tuple[str, ...] = ()  # PCRE searched in the Origin: a match is echoed


@dataclass(frozen=True)
class CircuitBreaker:
    """Traefik's circuitBreaker, kept by njs at the edge (edge/njs.py): `program` is its
    expression compiled to JSON (labels/traefik/middlewares/breaker_expression.py); durations in
    milliseconds; `status` and `text` the answer while it is open."""

    expression: str
    program: str
    check_period_ms: int = 100
    fallback_ms: int = 10_000
    recovery_ms: int = 10_000
    status: int = 503
    text: str = "Service Unavailable"
    label: str = ""  # the expression's, for problems


# The request media types Traefik's compress never compresses answers for.
GRPC_TYPES = ("application/grpc",)


@dataclass(frozen=True)
class Route:
    """One host+path served by the edge and proxied to a service."""

    service: str
    hosts: tuple[str, ...]
    port: int
    path: str = "/"
    redirect_to_https: bool = True
    max_body_size: str | None = None  # nginx size syntax: 20m, 512k
    body_buffer_size: int | None = None  # bytes of a request body kept in memory, the rest on disk
    auth_url: str | None = None  # forward auth: a 2xx from it lets the request through
    hsts: bool = False
    error_pages: ErrorPages | None = None
    timeout: str | None = None  # nginx time syntax (300s, 5m): proxy read and send timeouts
    exact_path: bool = False  # `path` alone (Traefik's Path), not every path under it
    upstream_scheme: str = "http"  # or https, or h2c (HTTP/2 without TLS: nginx's grpc_pass)
    basic_auth: BasicAuth | None = None
    allow_from: tuple[str, ...] = ()  # client networks (CIDR) let through; empty: everyone
    allow_reject_status: int = 403  # the answer to other clients
    rate_limit: RateLimit | None = None
    strip_prefixes: tuple[str, ...] = ()  # removed from the path before it reaches the service
    add_prefix: str = ""  # put before the path (after stripping)
    request_headers: tuple[tuple[str, str], ...] = ()  # set on the request; "" removes it
    response_headers: tuple[tuple[str, str], ...] = ()  # set on the answer; "" removes it
    compress: bool = False  # gzip the answers
    compress_min_bytes: int | None = None  # Traefik's: any type from that size (None: text)
    compress_encodings: tuple[str, ...] = ()  # Traefik's, in its order (empty: not Traefik's)
    compress_types: tuple[str, ...] = ()  # Traefik's includedContentTypes (empty: any type)
    compress_skipped_types: tuple[str, ...] = ()  # request media types not compressed (GRPC_TYPES…)
    # Served only if the method (any when empty), headers and conditions match; others get 404.
    methods: tuple[str, ...] = ()
    match_headers: tuple[tuple[str, str], ...] = ()  # (lowercase name, exact value)
    conditions: tuple[RequestCondition, ...] = ()
    max_connections: int | None = None  # requests in flight per client address; over it, 429
    connection_key: str = ""  # what max_connections counts per, as RateLimit.key
    retries: int = 0  # tries on the service's other addresses after a connection error
    retry_on: str = "error timeout"  # nginx's proxy_next_upstream: when to try the next
    retry_timeout: str | None = None  # nginx time syntax: no further tries after it
    # The path replaced before it reaches the service: (PCRE, replacement with $1…$9).
    replace_path: tuple[str, str] | None = None
    replace_path_everywhere: bool = False  # by njs, every match: see edge/njs.py
    cors: Cors | None = None
    dialect: str = "certbotless"  # the labels that asked for it: certbotless's or traefik's
    # Traefik's router priority (explicit, else the rule's length): a host's routes are tried in
    # its order; None (natives): nginx's. Not compared: the rendered configuration changes.
    priority: int | None = field(default=None, compare=False)
    # Strict-Transport-Security (headers.stsSeconds…), on HTTPS answers (and plain HTTP's: below)
    strict_transport: str = ""
    strict_transport_on_plain_http: bool = False
    public_key: str = ""  # Public-Key-Pins, sent where Strict-Transport-Security would be
    ssl_proxy_headers: tuple[tuple[str, str], ...] = ()  # header values that count as HTTPS
    redirect_statuses: tuple[int, int] = (308, 308)  # plain HTTP → HTTPS: for GET, for others
    redirect_port: int = 443
    auth_options: ForwardAuthOptions = ASKED_AS_TRAEFIK_DOES  # forward auth's, beside auth_url
    pass_host_header: bool = True  # False: the service gets its own name:port as Host
    rewrite_phase: RewritePhase = NOTHING  # allowedHosts, redirectRegex, stripPrefixRegex
    every_host: bool = False  # a router without a Host: its stack's hosts and unclaimed names
    client_tls: ClientTls = NO_CLIENT_TLS  # mTLS, passTLSClientCert, forward auth's TLS
    server_authority: str = ""  # a server.url's host[:port], proxied to instead of the tasks
    upstream: UpstreamOptions = DEFAULT_UPSTREAM  # strategy, sticky cookie, answer buffering
    circuit_breaker: CircuitBreaker | None = None  # by njs: see edge/breaker.py


@dataclass(frozen=True)
class StatusTarget:
    """Where the edge reaches certbotless's status page: the sidecar's service, the page's port,
    and the page's own protections, which its route repeats at the edge."""

    service: str
    port: int
    allow_from: tuple[str, ...] = ()
    auth_url: str | None = None


@dataclass(frozen=True)
class CertSpec:
    """A certificate that should exist. `name` is stable across renewals."""

    name: str
    domains: tuple[str, ...]
    key_type: KeyType = KeyType.EC256
    profile: str | None = None
    challenge: ChallengeMode = ChallengeMode.HTTP01
    dns_provider: str | None = None  # None: the sidecar's default provider
    dns_zone: str | None = None  # None: found by asking DNS
    issuer: str | None = None  # pinned to this issuer of CERTBOTLESS_ACME_ISSUERS (None: any)

    def challenge_for(self, wildcard: bool) -> ChallengeType:
        """The challenge that proves one of its names (`wildcard`: a `*.` name)."""
        mixed = self.challenge is ChallengeMode.MIXED
        if self.challenge is ChallengeMode.DNS01 or (mixed and wildcard):
            return ChallengeType.DNS01
        if self.challenge is ChallengeMode.TLS_ALPN01:
            return ChallengeType.TLS_ALPN01
        return ChallengeType.HTTP01


@dataclass(frozen=True)
class LabelProblem:
    """A label that could not be used, in words an operator can act on."""

    service: str
    label: str
    value: str
    message: str
    # The label is applied, and differs from what it asks only in the situation the message
    # names (a kind of request or answer): requests outside it are answered as asked.
    situational: bool = False

    def __str__(self) -> str:
        return f"service {self.service}: label {self.label}={self.value!r}: {self.message}"


@dataclass(frozen=True)
class DialectClaims:
    """What one service's labels in another dialect (Traefik's) ask for: its routes, the
    certificates with the label that asks for each, and what could not be used."""

    routes: tuple[Route, ...] = ()
    certificates: tuple[tuple[str, CertSpec], ...] = ()
    problems: tuple[LabelProblem, ...] = ()


@dataclass(frozen=True)
class Discovery:
    routes: tuple[Route, ...]
    specs: tuple[CertSpec, ...]
    problems: tuple[LabelProblem, ...]
    claims: Mapping[str, str] = field(default_factory=dict)  # key → owner's ID (labels.claims)


@dataclass(frozen=True)
class IssuedCert:
    """A certificate fresh from the CA, with its private key (never logged)."""

    spec: CertSpec
    fullchain_pem: bytes
    key_pem: bytes = field(repr=False)
    directory_url: str = ""
    issuer: str = ""  # the name of the issuer (CERTBOTLESS_ACME_ISSUERS) it came from
    skipped: tuple[str, ...] = ()  # why each issuer before it was passed over, in its words


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
    """The last failed attempt at a certificate (from its status record)."""

    at: datetime
    error: str


class ObjectKind(StrEnum):
    """Where Swarm keeps data: a secret's data can never be read back, a config's can."""

    SECRET = "secret"
    CONFIG = "config"


class ObjectRole(StrEnum):
    """What certbotless made a secret or config for: the value of its `certbotless.kind` label."""

    CHAIN = "chain"  # a certificate chain (config)
    KEY = "key"  # its private key (secret)
    NGINX_CONF = "nginx-conf"  # a rendered nginx.conf (config)
    ACCOUNT_KEY = "account-key"  # the ACME account key (secret)
    PLACEHOLDER = "placeholder"  # the self-signed stand-in for certificates not issued yet
    STATUS = "status"  # the certificates' status records (config)
    PASS_LEASE = "pass-lease"  # who holds the swarm-wide pass lease, until when (config)
    TICKET_KEY = "ticket-key"  # a TLS session ticket key every edge task shares (secret)
    STACK_FILE = "stack-file"  # a release's stack file made it (store.STACK_FILE_NAME)
    STORE_KEY = "store-key"  # the sidecar's key for the MACs of the objects it makes (secret)
    DIGEST_KEY = "digest-key"  # the key of digestAuth's nonces every edge task shares (secret)


@dataclass(frozen=True)
class FileReference:
    """A secret or config mounted into the edge service at `target`."""

    kind: ObjectKind
    object_id: str
    object_name: str
    target: str
    mode: int
    serves: tuple[tuple[str, ...], str] | None = None  # a chain's (domains, serial), after a roll
    gid: int | None = None  # the file's group (a secret's); None: as mounted before, else root


@dataclass(frozen=True)
class StoredObject:
    """A secret or config certbotless made, as garbage collection sees it."""

    kind: ObjectKind
    object_id: str
    name: str
    created_at: str
    role: ObjectRole  # CHAIN, KEY, NGINX_CONF, TICKET_KEY or STACK_FILE
    nginx_target: str = ""  # NGINX_CONF: where the edge mounts it ("": nginx.conf, made early)


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
    directory_url: str = ""  # the (first) CA the renewals go to
    # name → the CAs whose versions count as its own (CERTBOTLESS_ACME_ISSUERS, or its pin)
    accepted: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


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
    next_attempt: datetime | None = None  # the earliest retry of a failed certificate
    statuses: tuple[CertificateStatus, ...] = ()  # every wanted certificate's record
    roll_seconds: float = 0.0  # how long the roll took, when there was one
    orders: tuple[PastOrder, ...] = ()  # the last week's, this pass's included (rate limits)

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
    status: CertificateStatus | None = None


@dataclass(frozen=True)
class PastOrder:
    """An order this account placed: when, for which names, whether it got a certificate,
    whether it was a renewal naming what it replaces (exempt from the CA's limits), and for
    whom (the claimant whose share it used, `passes.budget.claimant_of`; "": the operator's)."""

    at: datetime
    names: tuple[str, ...]  # sorted
    issued: bool
    renewal: bool = False
    claimant: str = ""


@dataclass(frozen=True)
class Deferred:
    """An order held back to stay within the CA's rate limits."""

    reason: str
    until: datetime  # when the order would fit


@dataclass(frozen=True)
class RenewalTime:
    renew_at: datetime
    check_again_at: datetime
    source: str  # "ari" (the CA's window) or "lifetime" (1/3 of the lifetime left)
    explanation_url: str | None = None


class RevocationReason(IntEnum):
    """RFC 5280 §5.3.1 reason codes that an ACME subscriber may use."""

    unspecified = 0
    keyCompromise = 1
    affiliationChanged = 3
    superseded = 4
    cessationOfOperation = 5


@dataclass(frozen=True)
class Challenge:
    """One challenge a Solver answers: for `domain`, publish `key_authorization` under `token`."""

    domain: str
    token: str
    key_authorization: str
    challenge_type: ChallengeType = ChallengeType.HTTP01
    dns_provider: str | None = None  # DNS-01: the spec's provider (None: the default)
    dns_zone: str | None = None  # DNS-01: the spec's zone (None: found by asking DNS)


@dataclass(frozen=True)
class DnsRecord:
    """A TXT record certbotless published for DNS-01 and must withdraw (tracked in the swarm
    until it is, so that a restarted sidecar withdraws what its predecessor left)."""

    fqdn: str  # absolute, with the trailing dot; the CNAME target when delegated
    value: str
    zone: str  # absolute, with the trailing dot
    provider: str

    def to_json(self) -> dict[str, str]:
        return {"fqdn": self.fqdn, "value": self.value, "zone": self.zone,
                "provider": self.provider}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, str]) -> DnsRecord:
        return cls(data["fqdn"], data["value"], data["zone"], data["provider"])


@dataclass(frozen=True)
class RolloutResult:
    changed: bool
    seconds: float = 0.0
    left_out: tuple[LabelProblem, ...] = ()  # services whose part of nginx's config fails it


@dataclass(frozen=True)
class PassRequest:
    """What one pass is asked to do. `force`: renew every wanted certificate now (True) or
    these names; `extra_specs`: certificates no label asks for (`certbotless issue`), ordered
    now; `dry_run`: order every wanted certificate but store nothing and roll nothing; `roll`:
    whether the edge may be rolled; `progress` receives a line per step."""

    force: bool | frozenset[str] = False
    extra_specs: tuple[CertSpec, ...] = ()
    dry_run: bool = False
    roll: bool = True
    progress: Callable[[str], None] = print

    def forced(self, wanted: frozenset[str]) -> frozenset[str]:
        """The wanted names to order now whatever their state."""
        if self.force is True or self.dry_run:
            return wanted
        extra = frozenset(spec.name for spec in self.extra_specs)
        return extra | (self.force or frozenset())

    @property
    def rolls(self) -> bool:
        return self.roll and not self.dry_run


class Condition(StrEnum):
    """A certificate's state, in cert-manager's spirit."""

    READY = "Ready"  # a usable version is stored (and served, if routed)
    ISSUING = "Issuing"  # wanted but never issued yet, or due and being renewed
    FAILING = "Failing"  # the last attempt failed; `reason` and `message` say why


class FailureReason(StrEnum):
    """Why a certificate is Failing, for machines (alerts, metrics, the status page)."""

    CA_UNREACHABLE = "CAUnreachable"
    RATE_LIMITED = "RateLimited"
    VALIDATION_FAILED = "ValidationFailed"  # the CA could not validate a challenge
    CHALLENGE_NOT_SERVED = "ChallengeNotServed"  # our self-check failed: the CA was not asked
    DNS_PROBLEM = "DnsProblem"  # DNS-01: no zone, or the provider refused: the CA was not asked
    BAD_REQUEST = "BadRequest"  # the CA refused the order as asked (names, profile)
    BACKING_OFF = "BackingOff"  # not tried: waiting after earlier failures
    OVER_BUDGET = "OverBudget"  # not tried: it would exceed one of the CA's rate limits
    NOT_STORED = "NotStored"  # issued, but the swarm did not store it
    ROLLED_BACK = "RolledBack"  # Swarm rolled back the roll that mounted it
    ORDER_FAILED = "OrderFailed"  # anything else the CA or the network said


@dataclass(frozen=True)
class CertificateStatus:
    """Everything certbotless knows and remembers about one certificate name. Persisted in the
    swarm by a StatusStore; every reader (list, alerts, metrics, doctor, the status page) reads
    it, and nothing else keeps per-certificate memory."""

    name: str
    domains: tuple[str, ...] = ()
    key_type: KeyType = KeyType.EC256
    profile: str | None = None
    wanted: bool = True  # a label (or a manual issue being renewed) asks for it
    serial: str = ""  # the version in use
    not_after: datetime | None = None
    condition: Condition = Condition.ISSUING
    reason: FailureReason | None = None
    message: str = ""  # the CA's (or Swarm's) words for the last failure
    failures: int = 0  # consecutive failed attempts
    last_failure: datetime | None = None
    failing_since: datetime | None = None  # the first failure of this run of failures
    next_attempt: datetime | None = None  # not retried before this
    abandoned: bool = False  # failed for 30 days: not ordered again until the request changes
    refused: tuple[str, ...] = ()  # serials Swarm rolled back
    renew_at: datetime | None = None  # when the version in use comes due
    renew_source: str = ""  # "ari" (inside the CA's window) or "lifetime" (1/3 left)
    last_roll: str = ""  # "ok at …" or the roll's error
    updated: datetime | None = None
    issuer: str = ""  # the issuer that issued the version in use ("": not known)
    pinned: str | None = None  # the issuer a label pins it to (certbotless.issuer)
    skipped: tuple[str, ...] = ()  # why the issuers before it were passed over for that version

    def same_request(self, spec: CertSpec) -> bool:
        """Whether this record is about the certificate `spec` asks for (a failure for other
        names, key type or profile says nothing about this request)."""
        return (self.domains, self.key_type, self.profile, self.pinned) == (
            spec.domains, spec.key_type, spec.profile, spec.issuer)  # fmt: skip

    def waiting(self, spec: CertSpec, now: datetime) -> bool:
        """Whether `spec` failed before and must not be ordered yet."""
        if self.condition is not Condition.FAILING or not self.same_request(spec):
            return False
        return self.abandoned or (self.next_attempt is not None and self.next_attempt > now)
