"""In-memory fakes of every seam (certbotless/seams.py), so that a whole pass runs without Docker
or a CA. Each records what it was asked, for the tests to assert on."""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from certbotless.acme.errors import AcmeError, DnsUpdateRefused
from certbotless.edge.rollout import RolledBack
from certbotless.model import (
    CertificateStatus,
    CertSpec,
    Challenge,
    DnsRecord,
    IssuedCert,
    LabelProblem,
    ObjectKind,
    ObjectRole,
    PastOrder,
    RenewalTime,
    RevocationReason,
    RolloutResult,
    Route,
    ServiceInfo,
    StoredCert,
    StoredObject,
)
from certbotless.seams import PassParts
from certbotless.settings import Settings
from certbotless.swarm.api import Json

DIRECTORY = "https://ca.test/directory"
# certbotless as stacks/edge.yml runs it: its own service named, in the stack `edge`.
SETTINGS = Settings(own_service="edge_certbotless")


@dataclass
class FakeServices:
    listed: list[ServiceInfo] = field(default_factory=list)
    secrets: frozenset[str] = frozenset()

    def services(self) -> list[ServiceInfo]:
        return list(self.listed)

    def secret_names(self) -> frozenset[str]:
        return self.secrets


@dataclass
class FakeStore:
    """Stores each issued certificate as a version valid `lifetime` from `now`, as a chain config
    and a key secret. Like the real store, refused versions stay listed (marked) and only gc
    removes objects; a version whose chain or key is gone is not listed."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))
    lifetime: timedelta = timedelta(days=90)
    versions: list[StoredCert] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # config IDs
    removed: list[str] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def inventory(self) -> list[StoredCert]:
        gone = set(self.removed)
        return [c for c in self.versions if not {c.config_id, c.secret_id} & gone]

    def save(self, issued: IssuedCert) -> StoredCert:
        number = next(self._ids)
        cert = StoredCert(
            name=issued.spec.name,
            domains=issued.spec.domains,
            serial=f"{number:04x}",
            not_before=self.now,
            not_after=self.now + self.lifetime,
            key_type=issued.spec.key_type,
            config_name=f"cbl-{issued.spec.name}-{number}",
            config_id=f"config-{number}",
            secret_name=f"cbl-{issued.spec.name}-{number}",
            secret_id=f"secret-{number}",
            directory_url=issued.directory_url,
            # Swarm's CreatedAt: later for each version saved, even within one second.
            created_at=(self.now + timedelta(microseconds=number)).isoformat(),
        )
        self.versions.append(cert)
        return cert

    def mark_refused(self, cert: StoredCert, reason: str) -> None:
        self.refused.append(cert.config_id)
        self.versions = [replace(c, refused=reason) if c == cert else c for c in self.versions]

    def collectable_objects(self) -> list[StoredObject]:
        gone = set(self.removed)
        objects = []
        for cert in self.versions:
            for kind, object_id, role in (
                (ObjectKind.CONFIG, cert.config_id, ObjectRole.CHAIN),
                (ObjectKind.SECRET, cert.secret_id, ObjectRole.KEY),
            ):
                if object_id not in gone:
                    objects.append(
                        StoredObject(kind, object_id, cert.config_name, cert.created_at, role)
                    )
        return objects

    def remove(self, target: StoredObject) -> None:
        self.removed.append(target.object_id)

    def chain_pem(self, cert: StoredCert) -> bytes:
        return b"chain of " + cert.serial.encode()

    def untrusted(self) -> list[LabelProblem]:
        return []  # the fake holds only what the pass saved

    def adopt(self, mounted: Collection[str]) -> list[str]:
        return []


@dataclass
class FakeStatusStore:
    records: dict[str, CertificateStatus] = field(default_factory=dict)
    saves: int = 0

    def load(self) -> dict[str, CertificateStatus]:
        return dict(self.records)

    def save(self, records: Mapping[str, CertificateStatus]) -> None:
        self.saves += 1
        self.records = dict(records)


@dataclass
class FakeClaims:
    """The claims ledger, as the last pass saved it."""

    claims: dict[str, str] = field(default_factory=dict)

    def load(self) -> dict[str, str]:
        return dict(self.claims)

    def save(self, claims: Mapping[str, str]) -> None:
        self.claims = dict(claims)


@dataclass
class FakeOrders:
    orders: list[PastOrder] = field(default_factory=list)

    def load(self) -> list[PastOrder]:
        return list(self.orders)

    def save(self, orders: Sequence[PastOrder]) -> None:
        self.orders = list(orders)


@dataclass
class FakeEdge:
    """Rolls whenever the mounted versions change; `roll_back_next` makes the next roll one that
    Swarm rolls back. Like Swarm, it remembers the previous spec: after a roll the spec before
    it, after a rollback the spec it refused."""

    mounted: frozenset[str] = frozenset()  # chain config IDs
    references: frozenset[str] = frozenset()  # chains and keys the spec names
    previous_references: frozenset[str] = frozenset()
    rolls: int = 0
    roll_back_next: bool = False

    def deploy(
        self,
        edge: str,
        routes: Sequence[Route],
        current: Mapping[str, StoredCert],
        wanted_names: Iterable[str],
        progress: object,
    ) -> RolloutResult:
        certs = [current[name] for name in wanted_names if name in current]
        wanted = frozenset(cert.config_id for cert in certs)
        references = frozenset(i for cert in certs for i in (cert.config_id, cert.secret_id))
        if wanted == self.mounted:
            return RolloutResult(changed=False)
        if self.roll_back_next:
            self.roll_back_next = False
            self.previous_references = references
            refused = RolledBack(f"{edge}: Swarm rolled the update back")
            refused.rotated = tuple(wanted - self.mounted)
            raise refused
        self.previous_references, self.references = self.references, references
        self.mounted, self.rolls = wanted, self.rolls + 1
        return RolloutResult(changed=True, seconds=0.1)

    def render(self, edge: str | None, routes: Sequence[Route],
               current: Mapping[str, StoredCert], wanted_names: Iterable[str]) -> str:  # fmt: skip
        return "".join(f"server {name}\n" for name in sorted(current))

    def mounted_object_ids(self, edge: str) -> set[str] | None:
        return set(self.references)

    def referenced_object_ids(self) -> set[str]:
        return set(self.references | self.previous_references)


@dataclass
class FakeIssuer:
    """Issues at once; `failing` maps a name to the error its orders end with."""

    directory_url: str = DIRECTORY
    failing: dict[str, AcmeError] = field(default_factory=dict)
    ordered: list[str] = field(default_factory=list)
    revoked: list[bytes] = field(default_factory=list)
    replaced: dict[str, str] = field(default_factory=dict)

    def issue_many(
        self,
        specs: Iterable[CertSpec],
        progress: object = None,
        solver: object = None,
        replaces: Mapping[str, StoredCert] | None = None,
    ) -> Iterator[tuple[CertSpec, IssuedCert | AcmeError]]:
        for spec in specs:
            self.ordered.append(spec.name)
            self.replaced.update(
                {k: v.ari_id for k, v in (replaces or {}).items() if k == spec.name}
            )
            if spec.name in self.failing:
                yield spec, self.failing[spec.name]
            else:
                yield spec, IssuedCert(spec, b"chain", b"key", directory_url=self.directory_url)

    def directories(self, spec: CertSpec) -> tuple[str, ...]:
        return (self.directory_url,)

    def renewal_times(self, certs: Iterable[StoredCert]) -> dict[str, RenewalTime]:
        return {}

    def unreachable(self) -> str | None:
        return None

    def revoke(self, chain_pem: bytes, reason: RevocationReason, directory_url: str = "") -> None:
        self.revoked.append(chain_pem)


class FakeSolver:
    challenge_type = "http-01"

    def present(self, challenge: Challenge) -> None:
        pass

    def wait_until_visible(
        self, challenge: Challenge, deadline: float, stop: threading.Event
    ) -> None:
        pass

    def clean_up(self, challenge: Challenge) -> None:
        pass


class FakeDnsProvider:
    """DnsProvider in memory: name → TXT values; it can refuse updates, or fail removals."""

    def __init__(self, refuse: bool = False, fail_removal: bool = False) -> None:
        self.values: dict[str, set[str]] = {}
        self.refuse = refuse
        self.fail_removal = fail_removal
        self.calls: list[str] = []

    def add_txt(self, record: DnsRecord) -> None:
        self.calls.append(f"add {record.value}")
        if self.refuse:
            raise DnsUpdateRefused("ns1 answered REFUSED")
        self.values.setdefault(record.fqdn, set()).add(record.value)

    def remove_txt(self, record: DnsRecord) -> None:
        self.calls.append(f"remove {record.value}")
        if self.fail_removal:
            raise TimeoutError("no answer")
        self.values.get(record.fqdn, set()).discard(record.value)


class FakeDnsLedger:
    """DnsRecordLedger in memory; `saves` counts the writes."""

    def __init__(self) -> None:
        self.records: list[DnsRecord] = []
        self.saves = 0

    def load(self) -> list[DnsRecord]:
        return list(self.records)

    def save(self, records: Sequence[DnsRecord]) -> None:
        self.records = list(records)
        self.saves += 1


class NoLock:
    def hold(self) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()


@dataclass
class World:
    """Every fake, wired as app.py wires the real ones."""

    services: FakeServices = field(default_factory=FakeServices)
    store: FakeStore = field(default_factory=FakeStore)
    statuses: FakeStatusStore = field(default_factory=FakeStatusStore)
    orders: FakeOrders = field(default_factory=FakeOrders)
    claims: FakeClaims = field(default_factory=FakeClaims)
    edge: FakeEdge = field(default_factory=FakeEdge)
    issuer: FakeIssuer = field(default_factory=FakeIssuer)

    def parts(self) -> PassParts:
        return PassParts(
            services=self.services,
            store=self.store,
            statuses=self.statuses,
            orders=self.orders,
            claims=self.claims,
            edge=self.edge,
            lock=NoLock(),
            issuer=lambda: self.issuer,
            solver_for=lambda edge, progress: FakeSolver(),
        )

    def add_edge(self) -> None:
        """nginx and certbotless in the stack `edge`, as stacks/edge.yml deploys them (run the
        Reconciler with SETTINGS, which name certbotless's own service)."""
        self.services.listed += [
            ServiceInfo("edge_nginx", {"certbotless.edge": "true"}, ("net",),
                        ("certbotless-edge",), stack="edge"),
            ServiceInfo("edge_certbotless", {}, ("net",), ("certbotless-edge",), stack="edge"),
        ]  # fmt: skip

    def label(self, service: str, host: str) -> None:
        labels = {"certbotless.domains": host, "certbotless.port": "8000"}
        self.services.listed.append(ServiceInfo(service, labels, ("net",), ("certbotless-edge",)))

    def age(self, days: int) -> None:
        """Every stored version `days` older."""
        self.store.versions = [
            replace(c, not_before=c.not_before - timedelta(days=days),
                    not_after=c.not_after - timedelta(days=days))
            for c in self.store.versions
        ]  # fmt: skip

    def wait(self, delta: timedelta) -> None:
        """`delta` passes for the status records: their failures and next attempts move back."""

        def earlier(when: datetime | None) -> datetime | None:
            return None if when is None else when - delta

        self.statuses.records = {
            name: replace(r, last_failure=earlier(r.last_failure),
                          next_attempt=earlier(r.next_attempt))
            for name, r in self.statuses.records.items()
        }  # fmt: skip


class SecretsSwarm:
    """The part of the Docker API that the edge's own keys (TLS ticket keys, digest nonce key)
    use: secrets, their labels, created once; each key `key_bytes` long."""

    def __init__(self, key_bytes: int) -> None:
        self.key_bytes = key_bytes
        self.made: list[Json] = []

    def secrets(self, label_filter: str) -> list[Json]:
        key, _, value = label_filter.partition("=")
        return [s for s in self.made if s["Spec"]["Labels"].get(key) == value]

    def create_secret(self, name: str, data: bytes, labels: dict[str, str]) -> str:
        assert len(data) == self.key_bytes
        self.made.append({"ID": f"id-{name}", "Spec": {"Name": name, "Labels": labels}})
        return f"id-{name}"
