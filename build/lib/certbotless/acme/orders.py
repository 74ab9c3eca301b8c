"""Orders: one CertSpec in, one IssuedCert out, over HTTP-01."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import requests
from acme import challenges, client, crypto_util, errors, messages
from josepy.jwa import ES256, RS256
from josepy.jwk import JWK, JWKEC

from certbotless import __version__
from certbotless.acme.challenges import ChallengeNotServed, EdgeSelfCheck, TokenStore
from certbotless.acme.keys import generate_private_key, private_key_pem
from certbotless.model import CertSpec, IssuedCert

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

_FIRST_POLL = 0.1
_MAX_POLL = 2.0


class IssuanceError(Exception):
    """An order that failed, with the CA's own words."""


class AcmeIssuer:
    def __init__(
        self,
        directory_url: str,
        account_key: JWK,
        tokens: TokenStore,
        email: str | None = None,
        ca_bundle: Path | None = None,
        order_timeout: float = 90.0,
    ) -> None:
        alg = ES256 if isinstance(account_key, JWKEC) else RS256
        self.net = client.ClientNetwork(
            account_key, alg=alg, user_agent=f"certbotless/{__version__}"
        )
        if ca_bundle is not None:
            # ClientNetwork passes verify_ssl to requests as `verify`, which takes a bundle path.
            self.net.verify_ssl = str(ca_bundle)  # type: ignore[assignment]
        self.directory_url = directory_url
        self.tokens = tokens
        self.email = email
        self.order_timeout = order_timeout
        self._acme: client.ClientV2 | None = None
        self._account: messages.RegistrationResource | None = None

    @property
    def acme(self) -> client.ClientV2:
        if self._acme is None:
            directory = client.ClientV2.get_directory(self.directory_url, self.net)
            self._acme = client.ClientV2(directory, self.net)
        return self._acme

    def ensure_account(self) -> messages.RegistrationResource:
        if self._account is None:
            registration = messages.NewRegistration.from_data(
                email=self.email, terms_of_service_agreed=True
            )
            try:
                self._account = self.acme.new_account(registration)
            except errors.ConflictError as existing:
                self._account = self.acme.query_registration(
                    messages.RegistrationResource(uri=existing.location)
                )
                self.net.account = self._account
        return self._account

    def issue(
        self,
        spec: CertSpec,
        progress: Progress = log.info,
        self_check: EdgeSelfCheck | None = None,
    ) -> IssuedCert:
        deadline = time.monotonic() + self.order_timeout
        key_pem = private_key_pem(generate_private_key(spec.key_type))
        csr_pem = crypto_util.make_csr(key_pem, list(spec.domains))
        progress(f"{spec.name}: ordering {', '.join(spec.domains)}")
        try:
            self.ensure_account()
            order = self.acme.new_order(csr_pem, profile=spec.profile)
            tokens: list[str] = []
            try:
                self._answer_challenges(order, tokens, progress, self_check)
                self._wait_for_authorizations(order, deadline)
            finally:
                for token in tokens:
                    self.tokens.remove(token)
            progress(f"{spec.name}: validated, finalizing")
            order = self._finalize(order, deadline)
        except messages.Error as problem:
            raise IssuanceError(f"{spec.name}: the CA refused: {_describe(problem)}") from problem
        except (errors.Error, requests.RequestException, ChallengeNotServed) as failure:
            raise IssuanceError(f"{spec.name}: {failure}") from failure
        assert order.fullchain_pem is not None
        return IssuedCert(spec=spec, fullchain_pem=order.fullchain_pem.encode(), key_pem=key_pem)

    def _answer_challenges(
        self,
        order: messages.OrderResource,
        tokens: list[str],
        progress: Progress,
        self_check: EdgeSelfCheck | None,
    ) -> None:
        """Publish every token (recorded in `tokens` for cleanup), check the edge serves each,
        and only then ask the CA to validate."""
        pending = []
        for authz in order.authorizations:
            if authz.body.status == messages.STATUS_VALID:
                continue
            http01 = next(
                (c for c in authz.body.challenges if isinstance(c.chall, challenges.HTTP01)), None
            )
            domain = authz.body.identifier.value
            if http01 is None:
                raise IssuanceError(f"{domain}: the CA offers no HTTP-01 challenge")
            response, validation = http01.response_and_validation(self.net.key)
            token = http01.chall.encode("token")
            self.tokens.put(token, validation)
            tokens.append(token)
            pending.append((domain, token, validation, http01, response))
        for domain, token, validation, http01, response in pending:
            if self_check is not None:
                progress(f"{domain}: checking the edge serves the challenge")
                self_check.wait_until_served(domain, token, validation)
            progress(f"{domain}: asking the CA to validate")
            self.acme.answer_challenge(http01, response)

    def _wait_for_authorizations(self, order: messages.OrderResource, deadline: float) -> None:
        for authz in order.authorizations:
            delay = _FIRST_POLL
            while authz.body.status in (messages.STATUS_PENDING, messages.STATUS_PROCESSING):
                _sleep_before(deadline, delay, f"{authz.body.identifier.value}: validation")
                authz, response = self.acme.poll(authz)
                delay = _next_delay(delay, response)
            if authz.body.status != messages.STATUS_VALID:
                details = [_describe(c.error) for c in authz.body.challenges if c.error]
                raise IssuanceError(
                    f"{authz.body.identifier.value}: validation failed: "
                    + ("; ".join(details) or str(authz.body.status))
                )

    def _finalize(self, order: messages.OrderResource, deadline: float) -> messages.OrderResource:
        order = self.acme.begin_finalization(order)
        delay = _FIRST_POLL
        while order.body.status != messages.STATUS_VALID or order.body.certificate is None:
            if order.body.status == messages.STATUS_INVALID:
                raise IssuanceError(f"order failed: {_describe(order.body.error)}")
            _sleep_before(deadline, delay, "finalization")
            response = self.acme._post_as_get(order.uri)
            order = order.update(body=messages.Order.from_json(response.json()))
            delay = _next_delay(delay, response)
        chain = self.acme._post_as_get(order.body.certificate)
        finalized: messages.OrderResource = order.update(fullchain_pem=chain.text)
        return finalized


def _sleep_before(deadline: float, delay: float, what: str) -> None:
    if time.monotonic() + delay > deadline:
        raise IssuanceError(f"{what} did not finish before the order deadline")
    time.sleep(delay)


def _next_delay(delay: float, response: requests.Response) -> float:
    retry_after = response.headers.get("Retry-After", "")
    if retry_after.isdigit():
        return min(float(retry_after), 30.0)
    return min(delay * 2, _MAX_POLL)


def _describe(problem: messages.Error | None) -> str:
    if problem is None:
        return "no details from the CA"
    text = f"{problem.typ}: {problem.detail}" if problem.detail else str(problem.typ)
    subproblems = getattr(problem, "subproblems", None) or []
    for sub in subproblems:
        text += f"; {sub.identifier.value if sub.identifier else ''}: {sub.detail}"
    return text
