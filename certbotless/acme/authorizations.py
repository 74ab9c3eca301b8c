"""An order's authorizations: each name's challenge answered through a Solver, and, when
validation fails, why, name by name.

Every challenge is presented and visible before the CA is asked to look at any of them, and
withdrawn only once the CA has decided. A retried answer whose first try reached the CA finds
the challenge no longer pending: polling decides then, not the refusal.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from acme import challenges, messages

from certbotless.acme.backoff import IdentifierBackoff
from certbotless.acme.errors import (
    UNUSABLE_ANSWER,
    Abandoned,
    AcmeError,
    BadRequest,
    CaProblem,
    ValidationFailed,
    describe_problem,
)
from certbotless.acme.session import CaSession
from certbotless.acme.tls_alpn01 import TLSALPN01  # registers the type the library lacks
from certbotless.model import CertSpec, Challenge
from certbotless.seams import Progress, Solver


@dataclass(frozen=True)
class _Answer:
    """A presented challenge, and what to tell the CA about it."""

    authorization: messages.AuthorizationResource
    offered: messages.ChallengeBody
    response: challenges.ChallengeResponse
    challenge: Challenge


class ChallengeAnswers:
    def __init__(
        self, session: CaSession, backoff: IdentifierBackoff, stopping: threading.Event
    ) -> None:
        self.session = session
        self.backoff = backoff
        self.stopping = stopping

    @contextlib.contextmanager
    def answered(
        self,
        order: messages.OrderResource,
        spec: CertSpec,
        solver: Solver,
        progress: Progress,
        deadline: float,
    ) -> Iterator[None]:
        """Present every pending authorization's challenge (of the type `spec` chooses for the
        name), wait until each is visible, then ask the CA to validate them all. The challenges
        are withdrawn when the `with` block, which waits for the CA's decision, ends."""
        presented: list[Challenge] = []
        try:
            answers = self._present(order, spec, solver, presented)
            for answer in answers:
                solver.wait_until_visible(answer.challenge, deadline, self.stopping)
            # Leave before the CA looks: once it does, the challenges must stay until it has
            # decided.
            if self.stopping.is_set():
                raise Abandoned()
            for answer in answers:
                progress(f"{answer.challenge.domain}: asking the CA to validate")
                self._tell_the_ca(answer, answer.challenge.challenge_type)
            yield
        finally:
            for challenge in presented:
                solver.clean_up(challenge)

    def _present(
        self,
        order: messages.OrderResource,
        spec: CertSpec,
        solver: Solver,
        presented: list[Challenge],
    ) -> list[_Answer]:
        """Present each challenge, recording it in `presented` (for clean-up) as soon as it is."""
        key = self.session.net.key
        assert key is not None, "AcmeNetwork always has the account key"
        answers = []
        for authorization in order.authorizations:
            if authorization.body.status == messages.STATUS_VALID:
                continue
            challenge_type = spec.challenge_for(bool(authorization.body.wildcard))
            offered, chall = _offered(authorization, challenge_type)
            response = chall.response(key)
            challenge = Challenge(
                domain=authorization.body.identifier.value,
                token=chall.encode("token"),
                key_authorization=response.key_authorization,
                challenge_type=challenge_type,
                dns_provider=spec.dns_provider,
                dns_zone=spec.dns_zone,
            )
            solver.present(challenge)
            presented.append(challenge)
            answers.append(_Answer(authorization, offered, response, challenge))
        return answers

    def _tell_the_ca(self, answer: _Answer, challenge_type: str) -> None:
        try:
            self.session.client.answer_challenge(answer.offered, answer.response)
        except CaProblem:
            # A retried answer whose first try reached the CA finds the challenge no longer
            # pending; then polling decides. Any other refusal stands.
            if not self._under_way(answer.authorization, challenge_type):
                raise

    def _under_way(
        self, authorization: messages.AuthorizationResource, challenge_type: str
    ) -> bool:
        try:
            current, _ = self.session.client.poll(authorization)
        except (AcmeError, *UNUSABLE_ANSWER):
            return False
        started = (messages.STATUS_PROCESSING, messages.STATUS_VALID, messages.STATUS_INVALID)
        return any(
            c.chall.typ == challenge_type and c.status in started for c in current.body.challenges
        )

    def challenge_failed(self, order: messages.OrderResource) -> bool:
        """Whether a challenge of the order failed. Pebble and Boulder make its authorization
        (and the order) `invalid`; Caddy's and step-ca's CAs leave it `pending` with the
        challenge's `error` set, and the order pending until it expires. An authorization
        that cannot be read tells nothing: the order's own status still decides."""
        for authorization in order.authorizations:
            if authorization.body.status == messages.STATUS_VALID:
                continue
            try:
                current, _ = self.session.client.poll(authorization)
            except (AcmeError, *UNUSABLE_ANSWER):
                continue
            if _failed(current):
                return True
        return False

    def why_validation_failed(self, order: messages.OrderResource) -> ValidationFailed:
        """Why each name failed. Only names whose authorization is `invalid`, or whose challenge
        carries an error, back off: a pending one was never tried, so it did not count against
        the CA's limits."""
        failures = []
        for authorization in order.authorizations:
            name = authorization.body.identifier.value
            try:
                current, _ = self.session.client.poll(authorization)
            except (AcmeError, *UNUSABLE_ANSWER) as error:
                failures.append(f"{name}: its authorization could not be read ({error})")
                continue
            status = current.body.status
            if status == messages.STATUS_VALID:
                continue
            if not _failed(current):
                failures.append(f"{name}: still {status.name}, not tried")
                continue
            retry_at = self.backoff.validation_failed(name)
            problems = [describe_problem(c.error) for c in current.body.challenges if c.error]
            failures.append(
                f"{name}: {'; '.join(problems) or status.name}"
                f" (next attempt after {retry_at:%H:%M:%S} UTC)"
            )
        if not failures:
            failures.append(
                f"the order is {order.body.status.name}: {describe_problem(order.body.error)}"
            )
        return ValidationFailed("validation failed: " + " | ".join(failures))


def _failed(authorization: messages.AuthorizationResource) -> bool:
    body = authorization.body
    return body.status == messages.STATUS_INVALID or (
        body.status == messages.STATUS_PENDING and any(c.error for c in body.challenges)
    )


def _offered(
    authorization: messages.AuthorizationResource, challenge_type: str
) -> tuple[messages.ChallengeBody, challenges.KeyAuthorizationChallenge]:
    for offered in authorization.body.challenges:
        chall = offered.chall
        if isinstance(chall, challenges.KeyAuthorizationChallenge) and chall.typ == challenge_type:
            return offered, chall
    domain = authorization.body.identifier.value
    if challenge_type == challenges.HTTP01.typ:
        raise BadRequest(
            f"{domain}: the CA offers no HTTP-01 challenge for this name "
            "(wildcards need DNS-01: set certbotless.challenge=dns-01 or mixed)"
        )
    if challenge_type == TLSALPN01.typ:
        raise BadRequest(
            f"{domain}: the CA offers no TLS-ALPN-01 challenge for this name (wildcards need "
            "DNS-01; otherwise use certbotless.challenge=http-01 or dns-01)"
        )
    raise BadRequest(f"{domain}: the CA offers no {challenge_type} challenge for this name")
