"""In-memory fakes of every seam (certbotless/seams.py), so that a whole pass runs without Docker
or a CA. Each records what it was asked, for the tests to assert on."""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from certbotless.acme.ari import RenewalTime
from certbotless.acme.errors import AcmeError
from certbotless.model import (
    CertificateStatus,
    CertSpec,
    Challenge,
    IssuedCert,
    PastOrder,
    RevocationReason,
    RolloutResult,
    Route,
    ServiceInfo,
    StoredCert,
    StoredObject,
)
from certbotless.rollout import RolledBack
from certbotless.seams import PassParts

DIRECTORY = "https://ca.test/directory"


@dataclass
class FakeServices:
    listed: list[ServiceInfo] = field(default_factory=list)

    def services(self) -> list[ServiceInfo]:
        return list(self.listed)


@dataclass
class FakeStore:
    """Stores each issued certificate as a version valid 90 days from `now`."""

    now: datetime = datetime(2026, 12, 1, tzinfo=UTC)
    versions: list[StoredCert] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # config IDs
    removed: list[str] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def inventory(self) -> list[StoredCert]:
        return [cert for cert in self.versions if cert.config_id not in self.refused]

    def save(self, issued: IssuedCert) -> StoredCert:
        number = next(self._ids)
        cert = StoredCert(
            name=issued.spec.name,
            domains=issued.spec.domains,
            serial=f"{number:04x}",
            not_before=self.now,
            not_after=self.now + timedelta(days=90),
            key_type=issued.spec.key_type,
            config_name=f"cbl-{issued.spec.name}-{number}",
            config_id=f"config-{number}",
            secret_name=f"cbl-{issued.spec.name}-{number}",
            secret_id=f"secret-{number}",
            directory_url=issued.directory_url,
            created_at=f"{self.now.isoformat()}#{number:06d}",
        )
        self.versions.append(cert)
        return cert

    def mark_refused(self, cert: StoredCert, reason: str) -> None:
        self.refused.append(cert.config_id)

    def collectable_objects(self) -> list[StoredObject]:
        return []

    def remove(self, target: StoredObject) -> None:
        self.removed.append(target.object_id)

    def chain_pem(self, cert: StoredCert) -> bytes:
        return b"chain of " + cert.serial.encode()


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
class FakeOrders:
    orders: list[PastOrder] = field(default_factory=list)

    def load(self) -> list[PastOrder]:
        return list(self.orders)

    def save(self, orders: Sequence[PastOrder]) -> None:
        self.orders = list(orders)


@dataclass
class FakeEdge:
    """Rolls whenever the mounted versions change; `roll_back_next` makes the next roll one that
    Swarm rolls back."""

    mounted: frozenset[str] = frozenset()
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
        wanted = frozenset(current[name].config_id for name in wanted_names if name in current)
        if wanted == self.mounted:
            return RolloutResult(changed=False)
        if self.roll_back_next:
            self.roll_back_next = False
            refused = RolledBack(f"{edge}: Swarm rolled the update back")
            refused.rotated = tuple(wanted - self.mounted)
            raise refused
        self.mounted, self.rolls = wanted, self.rolls + 1
        return RolloutResult(changed=True, seconds=0.1)

    def render(self, edge: str | None, routes: Sequence[Route],
               current: Mapping[str, StoredCert], wanted_names: Iterable[str]) -> str:  # fmt: skip
        return "".join(f"server {name}\n" for name in sorted(current))

    def mounted_object_ids(self, edge: str) -> set[str] | None:
        return set(self.mounted)

    def referenced_object_ids(self) -> set[str]:
        return set(self.mounted)


@dataclass
class FakeIssuer:
    """Issues at once; `failing` maps a name to the error its orders end with."""

    directory_url: str = DIRECTORY
    failing: dict[str, AcmeError] = field(default_factory=dict)
    ordered: list[str] = field(default_factory=list)
    replaced: dict[str, str] = field(default_factory=dict)

    def issue_many(
        self,
        specs: Iterable[CertSpec],
        progress: object = None,
        solver: object = None,
        replaces: Mapping[str, str] | None = None,
    ) -> Iterator[tuple[CertSpec, IssuedCert | AcmeError]]:
        for spec in specs:
            self.ordered.append(spec.name)
            self.replaced.update({k: v for k, v in (replaces or {}).items() if k == spec.name})
            if spec.name in self.failing:
                yield spec, self.failing[spec.name]
            else:
                yield spec, IssuedCert(spec, b"chain", b"key", directory_url=self.directory_url)

    def renewal_times(self, certs: Iterable[StoredCert]) -> dict[str, RenewalTime]:
        return {}

    def unreachable(self) -> str | None:
        return None

    def revoke(self, chain_pem: bytes, reason: RevocationReason) -> None:
        pass


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
    edge: FakeEdge = field(default_factory=FakeEdge)
    issuer: FakeIssuer = field(default_factory=FakeIssuer)

    def parts(self) -> PassParts:
        return PassParts(
            services=self.services,
            store=self.store,
            statuses=self.statuses,
            orders=self.orders,
            edge=self.edge,
            lock=NoLock(),
            issuer=lambda: self.issuer,
            solver_for=lambda edge, progress: FakeSolver(),
        )

    def edge_service(self) -> ServiceInfo:
        return ServiceInfo("edge_nginx", {"certbotless.edge": "true"}, ("net",),
                           ("certbotless-edge",))  # fmt: skip

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
