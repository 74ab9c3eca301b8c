"""Several issuers, in order (`seams.Issuer` over one `AcmeIssuer` per CA of
CERTBOTLESS_ACME_ISSUERS).

Each certificate is ordered from the first issuer; when that fails for a reason another CA could
fix (`passed_over`: the CA unreachable or answering 5xx, its rate limit, the name refused by its
policy, CAA allowing only another CA, an account it will not make), it is ordered from the next
in the same pass. Every pass starts again from the first, so renewals go back to it once it works.
A certificate pinned by its label (`certbotless.issuer`) is ordered from that issuer only.

ARI and `replaces` stay with the issuer whose directory issued the version in use.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Generic, Protocol, TypeVar

from certbotless.acme.caa import CaaForbids
from certbotless.acme.errors import (
    EXTERNAL_ACCOUNT_REQUIRED,
    REJECTED_IDENTIFIER,
    UNAUTHORIZED,
    AcmeError,
    BackingOff,
    BadRequest,
    CaProblem,
    CaUnreachable,
    RateLimited,
)
from certbotless.model import CertSpec, IssuedCert, RenewalTime, RevocationReason, StoredCert
from certbotless.seams import Progress, Solver

log = logging.getLogger(__name__)


class Member(Protocol):
    """One issuer of the chain (`acme.issuer.AcmeIssuer`)."""

    directory_url: str

    @property
    def name(self) -> str: ...

    def issue_many(
        self, specs: Iterable[CertSpec], progress: Progress, solver: Solver | None = None,
        replaces: Mapping[str, StoredCert] | None = None,
    ) -> Iterator[tuple[CertSpec, IssuedCert | AcmeError]]: ...  # fmt: skip

    def renewal_times(self, certs: Iterable[StoredCert]) -> dict[str, RenewalTime]: ...

    def unreachable(self) -> str | None: ...

    def revoke(self, chain_pem: bytes, reason: RevocationReason) -> None: ...


class OrderObserver(Protocol):
    """Told what came of each certificate asked of an issuer: `issued`, `passed_over` (the next
    issuer is asked) or `failed` (the daemon's metrics, passed in by the app)."""

    def order(self, issuer: str, outcome: str) -> None: ...


class UnobservedOrders:
    """No one is told: one-off commands and tests."""

    def order(self, issuer: str, outcome: str) -> None:
        pass


def passed_over(error: AcmeError) -> str | None:
    """Why another CA could issue what this one did not, in a few words (None: it could not,
    such as a failed validation, which fails the same with any CA)."""
    if isinstance(error, CaUnreachable):
        return "unreachable"
    if isinstance(error, RateLimited) or (isinstance(error, BackingOff) and error.rate_limited):
        return "rate limited"
    if isinstance(error, CaaForbids):
        return "CAA forbids it"
    if isinstance(error, CaProblem) and error.typ in (REJECTED_IDENTIFIER, UNAUTHORIZED):
        return "refuses the name"  # a challenge's `unauthorized` is a ValidationFailed
    if isinstance(error, CaProblem) and error.typ == EXTERNAL_ACCOUNT_REQUIRED:
        return "no account (External Account Binding required)"
    return None


def candidates(spec: CertSpec, names: Sequence[str]) -> tuple[int, ...]:
    """The issuers (their indexes, in order) `spec` may be ordered from."""
    if spec.issuer is None:
        return tuple(range(len(names)))
    return (names.index(spec.issuer),) if spec.issuer in names else ()


M = TypeVar("M", bound=Member)


class IssuerChain(Generic[M]):
    """`seams.Issuer` over several issuers, tried in order for each certificate."""

    def __init__(self, members: Sequence[M], observer: OrderObserver | None = None) -> None:
        if not members:
            raise ValueError("an issuer chain needs at least one issuer")
        self.members = tuple(members)
        self.observer = observer or UnobservedOrders()
        self.names = tuple(member.name for member in members)
        self.directory_url = members[0].directory_url  # the first: where orders go first

    def directories(self, spec: CertSpec) -> tuple[str, ...]:
        """The CAs whose versions of `spec` count as its own (a pinned one: its issuer's)."""
        return tuple(self.members[index].directory_url
                     for index in candidates(spec, self.names))  # fmt: skip

    def issue_many(
        self,
        specs: Iterable[CertSpec],
        progress: Progress,
        solver: Solver | None = None,
        replaces: Mapping[str, StoredCert] | None = None,
    ) -> Iterator[tuple[CertSpec, IssuedCert | AcmeError]]:
        """Each spec's outcome: issued by the first issuer that could, with why those before it
        were passed over; or the error of the last one tried, naming the others'."""
        replaces = {name: self._attributed(old) for name, old in (replaces or {}).items()}
        skipped: dict[str, list[str]] = {}
        waiting: dict[str, CertSpec] = {}
        for spec in specs:
            tried = candidates(spec, self.names)
            if not tried:
                yield spec, self._unknown_issuer(spec)
            else:
                waiting[spec.name] = spec
        for index, member in enumerate(self.members):
            batch = [spec for spec in waiting.values()
                     if index in candidates(spec, self.names)
                     and len(skipped.get(spec.name, ())) == _position(spec, index)]  # fmt: skip
            if not batch:
                continue
            if index > 0:
                progress(f"ordering {', '.join(s.name for s in batch)} from issuer "
                         f"{member.name}")  # fmt: skip
            for spec, outcome in member.issue_many(batch, progress, solver, replaces):
                if isinstance(outcome, IssuedCert):
                    self.observer.order(member.name, "issued")
                    del waiting[spec.name]
                    yield spec, replace(outcome, issuer=member.name,
                                        skipped=tuple(skipped.get(spec.name, ())))  # fmt: skip
                    continue
                why = passed_over(outcome)
                last = _position(spec, index) == len(candidates(spec, self.names)) - 1
                self.observer.order(member.name, "failed" if why is None or last else "passed_over")
                if why is None or last:
                    del waiting[spec.name]
                    yield spec, _naming_others(outcome, member.name, skipped.get(spec.name, ()))
                    continue
                reason = f"{member.name}: {why} ({outcome})"
                log.warning("%s: passing over issuer %s", spec.name, reason)
                skipped.setdefault(spec.name, []).append(reason)

    def renewal_times(self, certs: Iterable[StoredCert]) -> dict[str, RenewalTime]:
        """Each version's renewal time, asked of the issuer that issued it (its directory)."""
        certs = [self._attributed(cert) for cert in certs]
        times: dict[str, RenewalTime] = {}
        for member in self.members:
            own = [cert for cert in certs if cert.directory_url == member.directory_url]
            times.update(member.renewal_times(own) if own else {})
        return times

    def unreachable(self) -> str | None:
        """Which issuers cannot be reached now, or None when each can."""
        down = [f"{member.name}: {why}" for member in self.members
                if (why := member.unreachable()) is not None]  # fmt: skip
        if not down:
            return None
        if len(down) < len(self.members):
            return "; ".join(down) + " (certificates go to the next issuer)"
        return "; ".join(down)

    def revoke(self, chain_pem: bytes, reason: RevocationReason, directory_url: str = "") -> None:
        """Revoked through the issuer of `directory_url` (the first when it is unknown)."""
        member = next((m for m in self.members if m.directory_url == directory_url),
                      self.members[0])  # fmt: skip
        member.revoke(chain_pem, reason)

    def _attributed(self, cert: StoredCert) -> StoredCert:
        """Versions stored before their CA was recorded came from the first issuer (the one of
        CERTBOTLESS_ACME_DIRECTORY, which keeps its account)."""
        return cert if cert.directory_url else replace(cert, directory_url=self.directory_url)

    def _unknown_issuer(self, spec: CertSpec) -> BadRequest:
        return BadRequest(
            f"{spec.name}: no issuer is named {spec.issuer!r} (certbotless.issuer); "
            f"CERTBOTLESS_ACME_ISSUERS names: {', '.join(self.names)}"
        )


def _position(spec: CertSpec, index: int) -> int:
    """How many issuers come before `index` among the spec's candidates (all, or its pin)."""
    return 0 if spec.issuer is not None else index


def _naming_others(error: AcmeError, issuer: str, skipped: Sequence[str]) -> AcmeError:
    """The error of the last issuer tried, its message naming it and those passed over."""
    if skipped:
        error.args = (f"{error} [issuer {issuer}; passed over: {'; '.join(skipped)}]",)
    return error
