"""One certificate, start to finish: checks, a fresh key and CSR, the order, its challenges, the
finalization and the download; per-name back-off kept on the way."""

from __future__ import annotations

import ipaddress
import threading
import time

from acme import crypto_util, messages

from certbotless.acme.authorizations import ChallengeAnswers
from certbotless.acme.backoff import IdentifierBackoff
from certbotless.acme.caa import CaaPolicy
from certbotless.acme.errors import (
    Abandoned,
    AcmeError,
    BadRequest,
    RateLimited,
    describe_problem,
)
from certbotless.acme.keys import generate_private_key, private_key_pem
from certbotless.acme.orders import CaOrders
from certbotless.acme.session import CaSession
from certbotless.model import CertSpec, IssuedCert, is_ip_address
from certbotless.seams import Progress, Solver


class CertificateIssuance:
    def __init__(
        self,
        session: CaSession,
        orders: CaOrders,
        answers: ChallengeAnswers,
        backoff: IdentifierBackoff,
        stopping: threading.Event,
        max_names: int,
        caa: CaaPolicy | None = None,
    ) -> None:
        self.session = session
        self.orders = orders
        self.answers = answers
        self.backoff = backoff
        self.stopping = stopping
        self.max_names = max_names
        self.caa = caa

    def issue(
        self, spec: CertSpec, solver: Solver, progress: Progress, replaces: str | None
    ) -> IssuedCert:
        """Leaves (Abandoned) when `stopping` is set before the CA is asked to validate, or
        before finalization; never after: an issued certificate is never thrown away."""
        deadline = time.monotonic() + self.orders.order_timeout
        self._unless_stopping()
        self._check_request(spec)
        self.backoff.check(spec.domains)
        if self.caa is not None:
            self.caa.check(spec, lambda: str(self.session.ensure_account().uri))
        key_pem = private_key_pem(generate_private_key(spec.key_type))
        csr_pem = _csr(spec, key_pem)
        progress(f"{spec.name}: ordering {', '.join(spec.domains)}")
        try:
            order = self.orders.place(spec, csr_pem, replaces)
            with self.answers.answered(order, spec, solver, progress, deadline):
                progress(f"{spec.name}: waiting for the CA to validate")
                # Not stoppable: the CA is fetching the challenges, and withdrawing them now
                # would turn a good name into a failed validation that counts against its limits.
                order = self.orders.wait(
                    order, deadline, "validation", self.answers.challenge_failed
                )
            if order.body.status != messages.STATUS_READY:
                raise self.answers.why_validation_failed(order)
            # The last way out: once finalization is asked for, the CA may issue.
            self._unless_stopping()
            progress(f"{spec.name}: validated, finalizing")
            order = self.orders.wait(self.orders.finalize(order), deadline, "finalization")
            if order.body.status != messages.STATUS_VALID or not order.body.certificate:
                raise AcmeError(
                    f"the order ended {order.body.status}: " + describe_problem(order.body.error)
                )
            fullchain = self.orders.download(order.body.certificate)
        except RateLimited as limited:
            self.backoff.rate_limited(spec.domains, limited.retry_at)
            raise
        self.backoff.succeeded(spec.domains)
        return IssuedCert(
            spec, fullchain.encode(), key_pem, directory_url=self.session.directory_url
        )

    def _unless_stopping(self) -> None:
        if self.stopping.is_set():
            raise Abandoned()

    def _check_request(self, spec: CertSpec) -> None:
        if len(spec.domains) > self.max_names:
            raise BadRequest(
                f"{len(spec.domains)} names in one certificate, but the CA allows at most "
                f"{self.max_names}; split the domains over several certbotless.name values"
            )
        offered = self.session.offered_profiles() if spec.profile else {}
        if spec.profile and offered and spec.profile not in offered:
            raise BadRequest(
                f"the CA has no profile {spec.profile!r}; it offers: "
                + ", ".join(f"{name} ({about})" for name, about in sorted(offered.items()))
            )


def _csr(spec: CertSpec, key_pem: bytes) -> bytes:
    return crypto_util.make_csr(
        key_pem,
        [name for name in spec.domains if not is_ip_address(name)],
        ipaddrs=[ipaddress.ip_address(name) for name in spec.domains if is_ip_address(name)],
    )
