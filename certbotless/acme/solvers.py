"""The solver a pass hands the issuer: each challenge goes to the solver of its type (the
certificate's spec chose the type per name: HTTP-01, DNS-01, wildcards by DNS-01, or
TLS-ALPN-01)."""

from __future__ import annotations

import threading

from certbotless.acme.errors import BadRequest
from certbotless.model import Challenge, ChallengeType
from certbotless.seams import Solver


class ChallengeSolvers:
    """`seams.Solver` over one solver per challenge type. `dns01` None: DNS-01 is not set up,
    and a certificate that asks for it fails with a clear error (and harms no other)."""

    def __init__(
        self, http01: Solver, dns01: Solver | None = None, tls_alpn01: Solver | None = None
    ) -> None:
        self.http01 = http01
        self.dns01 = dns01
        self.tls_alpn01 = tls_alpn01

    def present(self, challenge: Challenge) -> None:
        self._solver(challenge).present(challenge)

    def wait_until_visible(
        self, challenge: Challenge, deadline: float, stop: threading.Event
    ) -> None:
        self._solver(challenge).wait_until_visible(challenge, deadline, stop)

    def clean_up(self, challenge: Challenge) -> None:
        self._solver(challenge).clean_up(challenge)

    def _solver(self, challenge: Challenge) -> Solver:
        if challenge.challenge_type is ChallengeType.HTTP01:
            return self.http01
        if challenge.challenge_type is ChallengeType.TLS_ALPN01:
            if self.tls_alpn01 is None:
                raise BadRequest(
                    f"{challenge.domain}: TLS-ALPN-01 is asked for, but this process has no "
                    "TLS-ALPN-01 responder (CERTBOTLESS_TLS_ALPN_LISTEN is off)"
                )
            return self.tls_alpn01
        if self.dns01 is None:
            raise BadRequest(
                f"{challenge.domain}: DNS-01 is asked for, but no DNS provider is set up: set "
                "CERTBOTLESS_DNS01_PROVIDER, or the certbotless.dns-provider label"
            )
        return self.dns01
