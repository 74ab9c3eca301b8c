"""The issuer (`seams.Issuer`): CertSpecs in, IssuedCerts out, with up to `concurrency` orders in
flight; renewal times; revocation. A clean stop: orders not started are not started, orders in
flight are left before finalization (`stopping`).

It only assembles the engine: the CA session (`session.py`), orders (`orders.py`), challenges
through a Solver (`authorizations.py`), one certificate's steps (`issuance.py`) and ARI
(`renewal_info.py`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Generator, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path

from acme import client, messages
from cryptography import x509
from josepy.jwk import JWK

from certbotless.acme.account import ExternalAccountBinding
from certbotless.acme.authorizations import ChallengeAnswers
from certbotless.acme.backoff import IdentifierBackoff
from certbotless.acme.caa import CaaPolicy
from certbotless.acme.errors import (
    AcmeError,
    BadRequest,
    CaProblem,
    RateLimited,
    RevocationRefused,
    unusable_answers_as_acme_errors,
)
from certbotless.acme.issuance import CertificateIssuance
from certbotless.acme.network import AcmeRequestObserver, RetryPolicy
from certbotless.acme.orders import CaOrders
from certbotless.acme.renewal_info import RenewalInfoClient
from certbotless.acme.session import CaSession
from certbotless.model import CertSpec, IssuedCert, RenewalTime, RevocationReason, StoredCert
from certbotless.seams import Progress, Solver

log = logging.getLogger(__name__)

# Let's Encrypt's limit; CAs with another one reject the order with a clear problem anyway.
DEFAULT_MAX_NAMES = 100


@dataclass(frozen=True)
class IssuerOptions:
    eab: ExternalAccountBinding | None = None
    preferred_chain: str | None = None  # the top issuer's common name, if the CA offers it
    concurrency: int = 8  # orders in flight at once
    order_timeout: float = 90.0  # seconds per order, from ordering to download
    max_names: int = DEFAULT_MAX_NAMES
    policy: RetryPolicy | None = None
    observer: AcmeRequestObserver | None = None  # the daemon's metrics
    caa: CaaPolicy | None = None  # CAA checked before each order (None: not checked)
    name: str = ""  # its name in CERTBOTLESS_ACME_ISSUERS
    profile: str | None = None  # for certificates that ask for none


class AcmeIssuer:
    """`seams.Issuer` for one ACME CA and account."""

    def __init__(
        self,
        directory_url: str,
        account_key: JWK,
        solver: Solver,
        email: str | None = None,
        ca_bundle: Path | None = None,
        *,
        options: IssuerOptions | None = None,
        backoff: IdentifierBackoff | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        """`solver` answers the challenges of calls that do not bring their own. `stop`, once
        set, makes every order leave where it safely can (see `CertificateIssuance.issue`)."""
        options = options or IssuerOptions()
        self.options = options
        self.directory_url = directory_url
        self.session = CaSession(
            directory_url,
            account_key,
            ca_bundle=ca_bundle,
            email=email,
            eab=options.eab,
            policy=options.policy,
            pool_size=2 * options.concurrency,
            observer=options.observer,
        )
        self.net = self.session.net
        self.solver = solver
        self.backoff = backoff or IdentifierBackoff()
        self.stopping = stop if stop is not None else threading.Event()
        self._renewal_info = RenewalInfoClient(self.session)
        self._issuance = CertificateIssuance(
            self.session,
            CaOrders(self.session, options.order_timeout, options.preferred_chain),
            ChallengeAnswers(self.session, self.backoff, self.stopping),
            self.backoff,
            self.stopping,
            options.max_names,
            options.caa,
        )

    # --- the CA and the account ---------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.options.name

    @property
    def acme(self) -> client.ClientV2:
        """acme's client for this CA (its directory fetched on first use)."""
        return self.session.client

    def ensure_account(self) -> messages.RegistrationResource:
        return self.session.ensure_account()

    def existing_account(self) -> str | None:
        return self.session.existing_account()

    def offered_profiles(self) -> dict[str, str]:
        return self.session.offered_profiles()

    def unreachable(self) -> str | None:
        return self.session.unreachable()

    # --- issuance -----------------------------------------------------------------------------

    def issue(
        self,
        spec: CertSpec,
        progress: Progress = log.info,
        solver: Solver | None = None,
        replaces: str | None = None,
    ) -> IssuedCert:
        """One certificate for all of `spec.domains`, with a fresh private key. Every failure is
        an AcmeError whose message starts with the spec's name."""
        asked = replace(spec, profile=spec.profile or self.options.profile)
        try:
            with unusable_answers_as_acme_errors():
                issued = self._issuance.issue(asked, solver or self.solver, progress, replaces)
        except AcmeError as error:
            error.args = (f"{spec.name}: {error}",)
            raise
        return replace(issued, spec=spec, issuer=self.options.name)

    def issue_many(
        self,
        specs: Iterable[CertSpec],
        progress: Progress = log.info,
        solver: Solver | None = None,
        replaces: Mapping[str, StoredCert] | None = None,
    ) -> Generator[tuple[CertSpec, IssuedCert | AcmeError], None, None]:
        """Issue with up to `concurrency` orders in flight; yields each outcome as it completes.
        Closing the generator early cancels the orders not started yet. `replaces`: the version
        each order renews; ARI's `replaces` names it only if this CA issued it."""
        ari_ids = {
            name: old.ari_id for name, old in (replaces or {}).items()
            if old.ari_id and old.directory_url in ("", self.directory_url)
        }  # fmt: skip
        specs = list(specs)
        if not specs:
            return
        pool = ThreadPoolExecutor(self.options.concurrency, thread_name_prefix="acme-order")
        try:
            futures = {
                pool.submit(self._outcome, spec, progress, solver, ari_ids.get(spec.name)): spec
                for spec in specs
            }
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:
            # A consumer that stopped (storing failed, say) cannot take the certificates of
            # orders still queued: do not order them only to throw them away.
            pool.shutdown(wait=True, cancel_futures=True)

    def _outcome(
        self, spec: CertSpec, progress: Progress, solver: Solver | None, replaces: str | None
    ) -> IssuedCert | AcmeError:
        try:
            return self.issue(spec, progress, solver, replaces)
        except AcmeError as error:
            return error
        except Exception as error:  # one broken order must not sink the others
            log.exception("%s: unexpected error while ordering", spec.name)
            return AcmeError(f"{spec.name}: unexpected error: {error!r}")

    # --- renewal information and revocation ---------------------------------------------------

    def directories(self, spec: CertSpec) -> tuple[str, ...]:
        return (self.directory_url,)

    def renewal_times(self, certs: Iterable[StoredCert]) -> dict[str, RenewalTime]:
        return self._renewal_info.renewal_times(certs)

    def revoke(
        self, chain_pem: bytes, reason: RevocationReason = RevocationReason.unspecified,
        directory_url: str = "",
    ) -> None:  # fmt: skip
        try:
            certificate = x509.load_pem_x509_certificate(chain_pem)
        except ValueError as error:
            raise BadRequest(f"cannot revoke: not a PEM certificate ({error})") from error
        with unusable_answers_as_acme_errors():
            try:
                self.session.with_account(
                    lambda: self.session.client.revoke(certificate, int(reason))
                )
            except RateLimited:
                raise
            except CaProblem as problem:
                raise RevocationRefused(problem.problem) from None
