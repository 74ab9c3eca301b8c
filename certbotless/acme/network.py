"""The wire: acme's ClientNetwork made safe to share between workers and patient with the CA.

badNonce is retried at once with a fresh nonce; connection errors and 5xx are retried with
jittered exponential back-off; a failed TLS verification fails at once; every other problem
document becomes a typed error. The nonce of every answer is kept, errors included.

This subclass overrides private hooks of acme's ClientNetwork; `protocol.py` lists them.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Protocol

import requests
from acme import client, errors, messages
from josepy.errors import DeserializationError
from josepy.jwa import ES256, ES384, ES512, RS256, JWASignature
from josepy.jwk import JWK, JWKEC, JWKRSA
from requests.adapters import HTTPAdapter

from certbotless import __version__
from certbotless.acme.errors import (
    BAD_NONCE,
    RATE_LIMITED,
    BadRequest,
    CaProblem,
    CaUnreachable,
    RateLimited,
)
from certbotless.acme.protocol import decoded_nonce

log = logging.getLogger(__name__)

_SERVER_INTERNAL = "urn:ietf:params:acme:error:serverInternal"


class AcmeRequestObserver(Protocol):
    """Told of every HTTP request to the CA and of every call's outcome (ok, bad_nonce,
    transient, problem, rate_limited): the daemon's metrics, passed in by the app."""

    def request(self, method: str, url: str, status: str, seconds: float) -> None: ...

    def outcome(self, outcome: str) -> None: ...


class Unobserved:
    """No one is told: one-off commands and tests."""

    def request(self, method: str, url: str, status: str, seconds: float) -> None:
        pass

    def outcome(self, outcome: str) -> None:
        pass


@dataclass(frozen=True)
class RetryPolicy:
    bad_nonce_attempts: int = 20
    transient_attempts: int = 6
    first_delay: float = 0.25
    max_delay: float = 8.0
    default_rate_limit_wait: timedelta = timedelta(hours=1)

    def delay(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, first·2^attempt)], so workers do not stampede."""
        return random.uniform(0, min(self.max_delay, self.first_delay * 2**attempt))


class ProblemReply(Exception):
    """A problem document, with the HTTP facts acme's own error type leaves out."""

    def __init__(self, problem: messages.Error, status: int, retry_after: str | None) -> None:
        super().__init__(str(problem))
        self.problem = problem
        self.status = status
        self.retry_after = retry_after


# RFC 7518 §3.4: each curve has exactly one ECDSA algorithm.
_EC_ALGORITHMS = {"secp256r1": ES256, "secp384r1": ES384, "secp521r1": ES512}


def signing_algorithm(key: JWK) -> JWASignature:
    """The JWS algorithm for the account key; a key the CA could not verify is refused here."""
    if isinstance(key, JWKRSA):
        return RS256
    if isinstance(key, JWKEC) and key.key.curve.name in _EC_ALGORITHMS:
        return _EC_ALGORITHMS[key.key.curve.name]
    kind = f"EC {key.key.curve.name}" if isinstance(key, JWKEC) else type(key).__name__
    raise BadRequest(
        f"the ACME account key is {kind}, which cannot sign ACME requests; use an RSA key or "
        "an EC key on P-256, P-384 or P-521 (CERTBOTLESS_ACCOUNT_KEY_FILE)"
    )


class AcmeNetwork(client.ClientNetwork):
    def __init__(
        self,
        key: JWK,
        ca_bundle: Path | None = None,
        pool_size: int = 10,
        policy: RetryPolicy | None = None,
        timeout: int = 30,
        observer: AcmeRequestObserver | None = None,
    ) -> None:
        super().__init__(
            key,
            alg=signing_algorithm(key),
            user_agent=f"certbotless/{__version__}",
            timeout=timeout,
        )
        self.ca_bundle = ca_bundle
        self.timeout = timeout
        if ca_bundle is not None:
            # ClientNetwork passes verify_ssl to requests as `verify`, which takes a bundle path.
            self.verify_ssl = str(ca_bundle)  # type: ignore[assignment]
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(pool_size, 4))
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.policy = policy or RetryPolicy()
        self.observer = observer or Unobserved()
        self._nonce_lock = threading.Lock()

    def sibling(self) -> AcmeNetwork:
        """A network of its own for the same key, CA bundle and policy, with no account set:
        account lookup signs with the bare key, which must not change what workers sign with."""
        assert self.key is not None, "AcmeNetwork always has the account key"
        return AcmeNetwork(
            self.key,
            self.ca_bundle,
            policy=self.policy,
            timeout=self.timeout,
            observer=self.observer,
        )

    # --- acme overrides -------------------------------------------------------------------------

    def _get_nonce(self, url: str, new_nonce_url: str) -> str:
        # Workers share the nonce pool; the check-then-pop in acme races between threads.
        while True:
            with self._nonce_lock:
                if self._nonces:
                    return self._nonces.pop()
            response = self.head(new_nonce_url or url)
            self._add_nonce(self._check_response(response, content_type=None))

    def _send_request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        started = time.monotonic()
        status = "error"  # no answer at all
        try:
            response = super()._send_request(method, url, *args, **kwargs)
            status = str(response.status_code)
        finally:
            self.observer.request(method, url, status, time.monotonic() - started)
        self._keep_nonce(response)
        return response

    def _keep_nonce(self, response: requests.Response) -> None:
        """acme keeps the nonce of successful POSTs only, but error answers (badNonce above all)
        carry a fresh one too: dropping it would cost a HEAD newNonce each time."""
        header = response.headers.get(self.REPLAY_NONCE_HEADER)
        if header is None:
            return
        try:
            nonce = decoded_nonce(header)
        except DeserializationError:
            log.debug("ignoring a malformed Replay-Nonce %r", header)
            return
        with self._nonce_lock:
            self._nonces.add(nonce)

    def _add_nonce(self, response: requests.Response) -> None:
        # _send_request kept the nonce as the answer arrived: adding it again could hand one nonce
        # to two requests if a worker popped it in between. Only acme's checks remain.
        header = response.headers.get(self.REPLAY_NONCE_HEADER)
        if header is None:
            raise errors.MissingNonce(response)
        try:
            decoded_nonce(header)
        except DeserializationError as error:
            raise errors.BadNonce(header, error) from error

    @classmethod
    def _check_response(
        cls, response: requests.Response, content_type: str | None = None
    ) -> requests.Response:
        if response.status_code == 409 and _is_problem(response):
            # acme reads every 409 as ACMEv1's "account exists"; RFC 9773 sends alreadyReplaced.
            raise ProblemReply(messages.Error.from_json(response.json()), 409, None)
        try:
            return super()._check_response(response, content_type=content_type)
        except messages.Error as problem:
            raise ProblemReply(
                problem, response.status_code, response.headers.get("Retry-After")
            ) from None

    def post(self, *args: Any, **kwargs: Any) -> requests.Response:
        url = str(args[0] if args else kwargs.get("url"))
        return self._with_retries(f"POST {url}", lambda: self._post_once(*args, **kwargs))

    def get(
        self, url: str, content_type: str = client.ClientNetwork.JSON_CONTENT_TYPE, **kwargs: Any
    ) -> requests.Response:
        parent_get = super().get
        return self._with_retries(
            f"GET {url}", lambda: parent_get(url, content_type=content_type, **kwargs)
        )

    # --- retries ------------------------------------------------------------------------------

    def _with_retries(self, what: str, send: Callable[[], requests.Response]) -> requests.Response:
        bad_nonces = 0
        transient = 0
        while True:
            try:
                response = send()
                self.observer.outcome("ok")
                return response
            except ProblemReply as reply:
                if reply.problem.typ == BAD_NONCE and bad_nonces < self.policy.bad_nonce_attempts:
                    self.observer.outcome("bad_nonce")
                    bad_nonces += 1
                    continue
                if reply.problem.typ == RATE_LIMITED:
                    self.observer.outcome("rate_limited")
                    raise RateLimited(
                        "the CA says", reply.problem, self._retry_at(reply.retry_after)
                    ) from None
                if not self._transient_problem(reply):
                    self.observer.outcome("problem")
                    raise CaProblem("the CA says", reply.problem) from None
                failure = f"HTTP {reply.status}: {reply.problem.detail}"
            except errors.ClientError as error:
                answer = _response_of(error)
                status = None if answer is None else answer.status_code
                if answer is not None and status == 429:
                    # A rate limit even without a problem document (a proxy or load balancer).
                    self.observer.outcome("rate_limited")
                    raise RateLimited(
                        "the CA says",
                        messages.Error.from_json(
                            {"type": RATE_LIMITED, "detail": "HTTP 429 Too Many Requests"}
                        ),
                        self._retry_at(answer.headers.get("Retry-After")),
                    ) from None
                if status is None or status < 500:
                    raise CaUnreachable(f"{what}: unexpected answer: {error}") from error
                failure = f"HTTP {status}"
            except requests.exceptions.SSLError as error:
                # Retrying cannot fix a certificate the bundle does not trust.
                raise CaUnreachable(
                    f"{what}: TLS verification of the CA failed ({error}); for a private CA, set "
                    "CERTBOTLESS_CA_BUNDLE to the file with its root certificate"
                ) from error
            except requests.RequestException as error:
                failure = f"{type(error).__name__}: {error}"
            self.observer.outcome("transient")
            transient += 1
            if transient >= self.policy.transient_attempts:
                raise CaUnreachable(
                    f"{what} failed {transient} times, last: {failure}; "
                    "check that the ACME directory URL is right and the CA is up"
                )
            delay = self.policy.delay(transient)
            log.info("%s: %s; retrying in %.2f s", what, failure, delay)
            time.sleep(delay)

    @staticmethod
    def _transient_problem(reply: ProblemReply) -> bool:
        return reply.status >= 500 or reply.problem.typ == _SERVER_INTERNAL

    def _retry_at(self, header: str | None) -> datetime:
        wait = retry_after(header)
        return datetime.now(UTC) + (self.policy.default_rate_limit_wait if wait is None else wait)


def retry_after(header: str | None) -> timedelta | None:
    """A Retry-After header (seconds or an HTTP date) as a wait from now; None if absent/bad."""
    if not header or not header.strip():
        return None
    header = header.strip()
    if header.isdigit():
        return timedelta(seconds=int(header))
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when - datetime.now(UTC), timedelta(0))


def _is_problem(response: requests.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and "type" in body


def _response_of(error: errors.ClientError) -> requests.Response | None:
    """The HTTP answer acme packed into a ClientError (alone, or with a parse error)."""
    response = error.args[0] if error.args else None
    if isinstance(response, tuple):
        response = response[0]
    return response if isinstance(response, requests.Response) else None
