"""The seams of a pass: what the pass needs from the world, as Protocols.

Each has a real implementation (named in its docstring) passed in by `app.py`, and an in-memory
fake in `tests/unit/fakes.py` with which the whole pass runs without Docker or a CA. Only types
from `model` cross a seam.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from certbotless.acme.errors import AcmeError
from certbotless.model import (
    CertificateStatus,
    CertSpec,
    Challenge,
    DnsRecord,
    IssuedCert,
    LabelProblem,
    PastOrder,
    RenewalTime,
    RevocationReason,
    RolloutResult,
    Route,
    ServiceInfo,
    StoredCert,
    StoredObject,
)

Progress = Callable[[str], None]


class ServiceSource(Protocol):
    """The swarm's services as discovery sees them (`swarm.Swarm`)."""

    def services(self) -> list[ServiceInfo]: ...

    def secret_names(self) -> frozenset[str]:
        """The names of every secret in the swarm (basic-auth labels name one)."""
        ...


class Solver(Protocol):
    """Proves control of a name. HTTP-01 through the edge (`acme.http01.EdgeHttp01Solver`,
    which owns the self-check through the edge), DNS-01 by TXT records (`acme.dns01.
    Dns01Solver`), and `acme.solvers.ChallengeSolvers`, which hands each challenge to the one
    for its `challenge_type` (the certificate's spec chooses it per name)."""

    def present(self, challenge: Challenge) -> None:
        """Publish what the CA will look for; raise AcmeError (BadRequest) for a challenge
        type it does not answer."""

    def wait_until_visible(
        self, challenge: Challenge, deadline: float, stop: threading.Event
    ) -> None:
        """Return once the CA would see it; raise AcmeError (ChallengeNotServed) when it is
        still not visible at `deadline` (time.monotonic()), Abandoned when `stop` is set."""

    def clean_up(self, challenge: Challenge) -> None:
        """Withdraw it (never before the CA has decided)."""


class Issuer(Protocol):
    """Orders certificates from the CAs of CERTBOTLESS_ACME_ISSUERS, in order
    (`acme.issuer_chain.IssuerChain` over one `acme.issuer.AcmeIssuer` per CA)."""

    directory_url: str  # the first issuer's

    def directories(self, spec: CertSpec) -> tuple[str, ...]:
        """The CAs whose versions of `spec` count as its own (not reordered elsewhere before
        they come due): every issuer's, or the one its label pins it to."""
        ...

    def issue_many(
        self,
        specs: Iterable[CertSpec],
        progress: Progress,
        solver: Solver | None = None,
        replaces: Mapping[str, StoredCert] | None = None,
    ) -> Iterator[tuple[CertSpec, IssuedCert | AcmeError]]:
        """Each spec's outcome as it completes; closing early cancels orders not started.
        `solver` None: the issuer's own. `replaces`: spec name → the version each order renews
        (ARI's `replaces` names it only to the CA that issued it)."""

    def renewal_times(self, certs: Iterable[StoredCert]) -> dict[str, RenewalTime]:
        """The CA's renewal window per name, where it gives one (ARI), asked of the CA that
        issued each version."""

    def unreachable(self) -> str | None:
        """Why a CA cannot be reached right now, or None."""

    def revoke(self, chain_pem: bytes, reason: RevocationReason, directory_url: str = "") -> None:
        """Revoke through the CA at `directory_url` (the one that issued it)."""


class CertificateStore(Protocol):
    """Certificate versions kept in the swarm (`store.CertStore`): a chain config and a key
    secret each."""

    def inventory(self) -> list[StoredCert]: ...

    def save(self, issued: IssuedCert) -> StoredCert: ...

    def mark_refused(self, cert: StoredCert, reason: str) -> None:
        """Swarm rolled back the update that mounted this version."""

    def collectable_objects(self) -> list[StoredObject]: ...

    def remove(self, target: StoredObject) -> None: ...

    def chain_pem(self, cert: StoredCert) -> bytes: ...

    def untrusted(self) -> list[LabelProblem]:
        """Objects carrying the store's labels that certbotless cannot tell it made (no valid
        MAC): ignored by every other call, and never removed."""
        ...

    def adopt(self, mounted: Collection[str]) -> list[str]:
        """Of those `untrusted` found, sign the ones without any MAC that the edge mounts now
        (made by a release before objects were signed); their names."""
        ...


class EdgeDeployer(Protocol):
    """Everything about the nginx edge (`edge.deployer.SwarmEdgeDeployer`): rendered or the
    operator's own nginx.conf, the references it mounts, `nginx -t`, the roll and the check
    that every task serves what was rolled."""

    def deploy(
        self,
        edge: str,
        routes: Sequence[Route],
        current: Mapping[str, StoredCert],
        wanted_names: Iterable[str],
        progress: Progress,
    ) -> RolloutResult:
        """Roll `edge` onto these routes and certificates if its spec differs. Raises
        RolloutError (RolledBack when Swarm rolled it back) or NginxConfigError."""

    def render(
        self, edge: str | None, routes: Sequence[Route], current: Mapping[str, StoredCert],
        wanted_names: Iterable[str],
    ) -> str:  # fmt: skip
        """What `deploy` would mount as configuration, as text."""

    def mounted_object_ids(self, edge: str) -> set[str] | None:
        """The secrets and configs the edge's spec mounts (None: no such service)."""

    def referenced_object_ids(self) -> set[str]:
        """Every object any service's current or previous spec names (gc keeps them)."""


class StatusStore(Protocol):
    """One status record per certificate name, kept in the swarm (`status.SwarmStatusStore`)."""

    def load(self) -> dict[str, CertificateStatus]: ...

    def save(self, records: Mapping[str, CertificateStatus]) -> None:
        """Make `records` the whole set (writes only what changed)."""


class OrderHistory(Protocol):
    """The orders this account placed in the last week, for the CA's rate limits
    (`status.SwarmOrderHistory`)."""

    def load(self) -> list[PastOrder]: ...

    def save(self, orders: Sequence[PastOrder]) -> None: ...


class DnsProvider(Protocol):
    """Publishes and withdraws TXT records in one DNS service (`acme.dns_providers`: RFC 2136
    with TSIG, or one of dns-lexicon's provider APIs). Either raises `acme.errors.
    DnsUpdateRefused` when the service refused and changed nothing, or any error when it is
    unknown what happened."""

    def add_txt(self, record: DnsRecord) -> None:
        """Add `record.value` to the TXT values at `record.fqdn` (others stay)."""

    def remove_txt(self, record: DnsRecord) -> None:
        """Remove that one value (nothing when it is not there)."""


class DnsRecordLedger(Protocol):
    """The TXT records DNS-01 published and has not withdrawn yet, kept in the swarm beside the
    status records (`status.SwarmDnsRecordLedger`): a restarted sidecar withdraws them."""

    def load(self) -> list[DnsRecord]: ...

    def save(self, records: Sequence[DnsRecord]) -> None: ...


class ClaimLedger(Protocol):
    """Who first claimed each certificate name, host, host and path and middleware name
    (`labels.claims`), kept in the swarm beside the status records, authenticated
    (`swarm.claims.SwarmClaimLedger`)."""

    def load(self) -> dict[str, str]:
        """Claim key → the claimant's Swarm ID; empty when none is recorded or it is forged."""

    def save(self, claims: Mapping[str, str]) -> None:
        """Make `claims` the whole ledger (writes only what changed)."""


class PassLock(Protocol):
    """One pass at a time (`locks.FilePassLock`: per container; the hardening issue makes it
    swarm-wide)."""

    def hold(self) -> AbstractContextManager[None]: ...


@dataclass(frozen=True)
class PassParts:
    """The seams a pass works through, built once (app.py) and faked in unit tests."""

    services: ServiceSource
    store: CertificateStore
    statuses: StatusStore
    orders: OrderHistory
    claims: ClaimLedger
    edge: EdgeDeployer
    lock: PassLock
    issuer: Callable[[], Issuer]  # called once, on first use: it needs the account key
    # The challenge solver for a pass, checking through this edge (None: no self-check) and
    # telling the pass's progress what it does.
    solver_for: Callable[[str | None, Progress], Solver]
