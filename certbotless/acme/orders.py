"""The issuer: CertSpecs in, IssuedCerts out, over HTTP-01; renewal times; revocation.

acme's ClientV2 builds and signs the messages; this module drives the order itself: its own
polling (short first poll, back-off, Retry-After), a deadline per order, a worker pool, per-name
back-off, ARI `replaces`, preferred-chain selection, and a clean stop (`stopping`).

Requests that the network layer retried may have reached the CA the first time: a repeated
challenge answer or finalize that the CA refuses is followed up by reading where things stand.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from pathlib import Path

import requests
from acme import challenges, client, crypto_util, errors, messages
from cryptography import x509
from cryptography.x509.oid import NameOID
from josepy.errors import DeserializationError
from josepy.json_util import field
from josepy.jwk import JWK

from certbotless.acme.account import (
    ExternalAccountBinding,
    account_client,
    find_existing,
    find_or_register,
)
from certbotless.acme.ari import (
    DEFAULT_ARI_RECHECK,
    RenewalTime,
    lifetime_renewal_time,
    time_in_window,
)
from certbotless.acme.backoff import IdentifierBackoff
from certbotless.acme.challenges import EdgeSelfCheck, TokenStore
from certbotless.acme.errors import (
    ACCOUNT_DOES_NOT_EXIST,
    ALREADY_REPLACED,
    ORDER_NOT_READY,
    Abandoned,
    AcmeError,
    BadRequest,
    CaProblem,
    OrderTimedOut,
    RateLimited,
    UnexpectedAnswer,
    ValidationFailed,
    describe_problem,
)
from certbotless.acme.keys import generate_private_key, private_key_pem
from certbotless.acme.network import AcmeNetwork, RetryPolicy, retry_after
from certbotless.model import CertSpec, IssuedCert, StoredCert, is_ip_address

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

_FIRST_POLL = 0.05
_MAX_POLL = 2.0
_MAX_RETRY_AFTER_POLL = 30.0
# What acme, josepy and requests raise for answers they cannot use.
_UNUSABLE_ANSWER = (errors.Error, DeserializationError, requests.JSONDecodeError)
# Let's Encrypt's limit; CAs with another one reject the order with a clear problem anyway.
DEFAULT_MAX_NAMES = 100


class RevocationReason(IntEnum):
    """RFC 5280 §5.3.1 reason codes that an ACME subscriber may use."""

    unspecified = 0
    keyCompromise = 1
    affiliationChanged = 3
    superseded = 4
    cessationOfOperation = 5


class NewOrderWithReplaces(messages.NewOrder):
    """newOrder with RFC 9773's `replaces`, which the acme library does not have."""

    replaces: str | None = field("replaces", omitempty=True)


@dataclass
class _AriEntry:
    window: tuple[datetime, datetime]
    renewal: RenewalTime


class AcmeIssuer:
    def __init__(
        self,
        directory_url: str,
        account_key: JWK,
        tokens: TokenStore,
        email: str | None = None,
        ca_bundle: Path | None = None,
        *,
        eab: ExternalAccountBinding | None = None,
        preferred_chain: str | None = None,
        concurrency: int = 8,
        order_timeout: float = 90.0,
        max_names: int = DEFAULT_MAX_NAMES,
        backoff: IdentifierBackoff | None = None,
        policy: RetryPolicy | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.net = AcmeNetwork(account_key, ca_bundle, pool_size=2 * concurrency, policy=policy)
        self.directory_url = directory_url
        self.tokens = tokens
        self.email = email
        self.eab = eab
        self.preferred_chain = preferred_chain
        self.concurrency = concurrency
        self.order_timeout = order_timeout
        self.max_names = max_names
        self.backoff = backoff or IdentifierBackoff()
        # Set on shutdown: orders not started are not started, and orders in flight are left
        # before finalization (see `_unless_stopping`).
        self.stopping = stop if stop is not None else threading.Event()
        self._acme: client.ClientV2 | None = None
        self._account: messages.RegistrationResource | None = None
        self._lock = threading.Lock()
        self._ari: dict[str, _AriEntry] = {}

    # --- directory and account ----------------------------------------------------------------

    @property
    def acme(self) -> client.ClientV2:
        with self._lock:
            if self._acme is None:
                directory = client.ClientV2.get_directory(self.directory_url, self.net)
                self._acme = client.ClientV2(directory, self.net)
            return self._acme

    @property
    def renewal_info_url(self) -> str | None:
        """The CA's ARI endpoint, if it has one."""
        try:
            return str(self.acme.directory["renewalInfo"]).rstrip("/")
        except KeyError:
            return None

    def offered_profiles(self) -> dict[str, str]:
        meta = getattr(self.acme.directory, "meta", None)
        return dict(getattr(meta, "profiles", None) or {})

    def ensure_account(self) -> messages.RegistrationResource:
        with _unusable_answers_as_acme_errors():
            acme = self.acme
            with self._lock:
                if self._account is None:
                    # Looked up on a network of its own; workers see the account only when set.
                    account = find_or_register(
                        account_client(acme.directory, self.net), self.email, self.eab
                    )
                    self.net.account = account
                    self._account = account
                return self._account

    def existing_account(self) -> str | None:
        """The URI of this key's account at the CA, if there is one (never registers, and never
        touches the network that orders sign with)."""
        with _unusable_answers_as_acme_errors():
            account = find_existing(account_client(self.acme.directory, self.net))
        return None if account is None else str(account.uri)

    def unreachable(self) -> str | None:
        """Why the CA cannot be reached right now (its directory, fetched afresh), or None.
        Passes that order nothing ask this, so an outage is noticed before renewals are due."""
        try:
            self.net.get(self.directory_url)
        except AcmeError as error:
            return str(error)
        return None

    def _forget_account(self) -> None:
        with self._lock:
            self._account = None

    # --- issuance -----------------------------------------------------------------------------

    def issue(
        self,
        spec: CertSpec,
        progress: Progress = log.info,
        self_check: EdgeSelfCheck | None = None,
        replaces: str | None = None,
    ) -> IssuedCert:
        """One certificate for all of `spec.domains`, with a fresh private key. Every failure is
        an AcmeError whose message starts with the spec's name."""
        try:
            with _unusable_answers_as_acme_errors():
                return self._issue(spec, progress, self_check, replaces)
        except AcmeError as error:
            error.args = (f"{spec.name}: {error}",)
            raise

    def issue_many(
        self,
        specs: Iterable[CertSpec],
        progress: Progress = log.info,
        self_check: EdgeSelfCheck | None = None,
        replaces: Mapping[str, str] | None = None,
    ) -> Generator[tuple[CertSpec, IssuedCert | AcmeError], None, None]:
        """Issue with up to `concurrency` orders in flight; yields each outcome as it completes.
        Closing the generator early cancels the orders not started yet."""
        replaces = replaces or {}
        specs = list(specs)
        if not specs:
            return
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="acme-order")
        try:
            futures = {
                pool.submit(
                    self._outcome, spec, progress, self_check, replaces.get(spec.name)
                ): spec
                for spec in specs
            }
            for future in as_completed(futures):
                yield futures[future], future.result()
        finally:
            # A consumer that stopped (storing failed, say) cannot take the certificates of
            # orders still queued: do not order them only to throw them away.
            pool.shutdown(wait=True, cancel_futures=True)

    def _outcome(
        self,
        spec: CertSpec,
        progress: Progress,
        self_check: EdgeSelfCheck | None,
        replaces: str | None,
    ) -> IssuedCert | AcmeError:
        try:
            return self.issue(spec, progress, self_check, replaces)
        except AcmeError as error:
            return error
        except Exception as error:  # one broken order must not sink the others
            log.exception("%s: unexpected error while ordering", spec.name)
            return AcmeError(f"{spec.name}: unexpected error: {error!r}")

    def _issue(
        self,
        spec: CertSpec,
        progress: Progress,
        self_check: EdgeSelfCheck | None,
        replaces: str | None,
    ) -> IssuedCert:
        deadline = time.monotonic() + self.order_timeout
        self._unless_stopping()
        self._check_request(spec)
        self.backoff.check(spec.domains)
        key_pem = private_key_pem(generate_private_key(spec.key_type))
        csr_pem = crypto_util.make_csr(
            key_pem,
            [name for name in spec.domains if not is_ip_address(name)],
            ipaddrs=[ipaddress.ip_address(name) for name in spec.domains if is_ip_address(name)],
        )
        progress(f"{spec.name}: ordering {', '.join(spec.domains)}")
        try:
            order = self._new_order(spec, csr_pem, replaces)
            published: list[str] = []
            try:
                self._answer_challenges(order, published, progress, self_check, deadline)
                progress(f"{spec.name}: waiting for the CA to validate")
                # Not stoppable: the CA is fetching the tokens, and removing them now would turn
                # a good name into a failed validation that counts against the CA's limits.
                order = self._poll_order(order, deadline, "validation")
            finally:
                for token in published:
                    self.tokens.remove(token)
            if order.body.status != messages.STATUS_READY:
                self._raise_validation_failure(order)
            # The last way out: once finalization is asked for, the CA may issue, and an issued
            # certificate is never thrown away.
            self._unless_stopping()
            progress(f"{spec.name}: validated, finalizing")
            order = self._begin_finalization(order)
            order = self._poll_order(order, deadline, "finalization")
            if order.body.status != messages.STATUS_VALID or not order.body.certificate:
                raise AcmeError(
                    f"the order ended {order.body.status}: " + describe_problem(order.body.error)
                )
            fullchain = self._download_chain(order.body.certificate)
        except RateLimited as limited:
            self.backoff.rate_limited(spec.domains, limited.retry_at)
            raise
        self.backoff.succeeded(spec.domains)
        return IssuedCert(spec, fullchain.encode(), key_pem, directory_url=self.directory_url)

    def _unless_stopping(self) -> None:
        if self.stopping.is_set():
            raise Abandoned()

    def _check_request(self, spec: CertSpec) -> None:
        if len(spec.domains) > self.max_names:
            raise BadRequest(
                f"{len(spec.domains)} names in one certificate, but the CA allows at most "
                f"{self.max_names}; split the domains over several certbotless.name values"
            )
        offered = self.offered_profiles() if spec.profile else {}
        if spec.profile and offered and spec.profile not in offered:
            raise BadRequest(
                f"the CA has no profile {spec.profile!r}; it offers: "
                + ", ".join(f"{name} ({about})" for name, about in sorted(offered.items()))
            )

    def _new_order(
        self, spec: CertSpec, csr_pem: bytes, replaces: str | None
    ) -> messages.OrderResource:
        identifiers = [
            messages.Identifier(
                typ=messages.IDENTIFIER_IP if is_ip_address(name) else messages.IDENTIFIER_FQDN,
                value=name,
            )
            for name in spec.domains
        ]
        if replaces and not self.renewal_info_url:
            replaces = None
        for attempt in range(3):
            self.ensure_account()
            request = NewOrderWithReplaces(
                identifiers=identifiers, profile=spec.profile or None, replaces=replaces
            )
            try:
                response = self.acme._post(self.acme.directory["newOrder"], request)
                break
            except CaProblem as problem:
                if problem.typ == ALREADY_REPLACED and replaces:
                    log.warning(
                        "%s: %s was already replaced; ordering without `replaces`",
                        spec.name,
                        replaces,
                    )
                    replaces = None
                elif problem.typ == ACCOUNT_DOES_NOT_EXIST and attempt == 0:
                    log.warning("the CA no longer knows our account; looking it up again")
                    self._forget_account()
                else:
                    raise
        else:
            raise AcmeError("the CA refused the order three times")
        location = response.headers.get("Location")
        if not location:
            raise UnexpectedAnswer(
                "the CA created the order but sent no Location header, so it cannot be followed"
            )
        body = messages.Order.from_json(response.json())
        authorizations = [
            self.acme._authzr_from_response(self.acme._post_as_get(url), uri=url)
            for url in body.authorizations
        ]
        return messages.OrderResource(
            body=body, uri=location, authorizations=authorizations, csr_pem=csr_pem
        )

    def _answer_challenges(
        self,
        order: messages.OrderResource,
        published: list[str],
        progress: Progress,
        self_check: EdgeSelfCheck | None,
        deadline: float,
    ) -> None:
        """Publish every token (recorded in `published` for cleanup), check the edge serves each,
        and only then ask the CA to validate any of them."""
        pending = []
        for authz in order.authorizations:
            if authz.body.status == messages.STATUS_VALID:
                continue
            domain = authz.body.identifier.value
            http01 = next(
                (c for c in authz.body.challenges if isinstance(c.chall, challenges.HTTP01)), None
            )
            if http01 is None:
                raise BadRequest(
                    f"{domain}: the CA offers no HTTP-01 challenge for this name "
                    "(wildcards need DNS-01, which certbotless does not do)"
                )
            response, validation = http01.response_and_validation(self.net.key)
            token = http01.chall.encode("token")
            try:
                self.tokens.put(token, validation)
            except ValueError as malformed:
                raise UnexpectedAnswer(
                    f"{domain}: the CA sent an unusable HTTP-01 token: {malformed}"
                ) from malformed
            published.append(token)
            pending.append((authz, domain, token, validation, http01, response))
        if self_check is not None:
            for _, domain, token, validation, _, _ in pending:
                progress(f"{domain}: checking the edge serves the challenge")
                self_check.wait_until_served(domain, token, validation, deadline, self.stopping)
        # Leave before the CA looks: once it does, the tokens must stay until it has decided.
        self._unless_stopping()
        for authz, domain, _, _, http01, response in pending:
            progress(f"{domain}: asking the CA to validate")
            self._answer_challenge(authz, http01, response)

    def _answer_challenge(
        self,
        authz: messages.AuthorizationResource,
        http01: messages.ChallengeBody,
        response: challenges.ChallengeResponse,
    ) -> None:
        try:
            self.acme.answer_challenge(http01, response)
        except CaProblem:
            # A retried answer whose first try reached the CA finds the challenge no longer
            # pending; then polling decides. Any other refusal stands.
            if not self._http01_under_way(authz):
                raise

    def _http01_under_way(self, authz: messages.AuthorizationResource) -> bool:
        try:
            current, _ = self.acme.poll(authz)
        except (AcmeError, *_UNUSABLE_ANSWER):
            return False
        started = (messages.STATUS_PROCESSING, messages.STATUS_VALID, messages.STATUS_INVALID)
        return any(
            isinstance(c.chall, challenges.HTTP01) and c.status in started
            for c in current.body.challenges
        )

    def _begin_finalization(self, order: messages.OrderResource) -> messages.OrderResource:
        try:
            return self.acme.begin_finalization(order)
        except CaProblem as problem:
            if problem.typ != ORDER_NOT_READY:
                raise
            # A retried finalize whose first try reached the CA: the order is processing (or
            # done) already, so follow it. Still `ready` means the refusal was about something
            # else.
            current, _ = self._fetch_order(order)
            if current.body.status == messages.STATUS_READY:
                raise
            return current

    def _fetch_order(
        self, order: messages.OrderResource
    ) -> tuple[messages.OrderResource, requests.Response]:
        response = self.acme._post_as_get(order.uri)
        return order.update(body=messages.Order.from_json(response.json())), response

    def _poll_order(
        self, order: messages.OrderResource, deadline: float, stage: str
    ) -> messages.OrderResource:
        """Poll until the order leaves pending/processing: the CA updates it when the
        authorizations are decided and again when the certificate is issued."""
        waiting = (messages.STATUS_PENDING, messages.STATUS_PROCESSING)
        delay = _FIRST_POLL
        while order.body.status in waiting:
            if time.monotonic() + delay > deadline:
                raise OrderTimedOut(
                    f"{stage} did not finish within {self.order_timeout:.0f} s; the CA is slow "
                    "or stuck, the next pass tries again"
                )
            time.sleep(delay)
            order, response = self._fetch_order(order)
            delay = next_poll_delay(delay, response.headers.get("Retry-After"))
        return order

    def _raise_validation_failure(self, order: messages.OrderResource) -> None:
        """Say why each name failed. Only names whose authorization is `invalid` back off: a
        pending one was never tried, so it did not count against the CA's limits."""
        failures = []
        for authz in order.authorizations:
            name = authz.body.identifier.value
            try:
                current, _ = self.acme.poll(authz)
            except (AcmeError, *_UNUSABLE_ANSWER) as error:
                failures.append(f"{name}: its authorization could not be read ({error})")
                continue
            status = current.body.status
            if status == messages.STATUS_VALID:
                continue
            if status != messages.STATUS_INVALID:
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
        raise ValidationFailed("validation failed: " + " | ".join(failures))

    def _download_chain(self, url: str) -> str:
        response = self.acme._post_as_get(url)
        if not self.preferred_chain:
            return response.text
        chains = [response.text]
        for alternate in self.acme._get_links(response, "alternate"):
            chains.append(self.acme._post_as_get(alternate).text)
        for chain in chains:
            if _top_issuer_name(chain) == self.preferred_chain:
                return chain
        log.warning(
            "no chain is issued by %r (offered: %s); using the CA's default",
            self.preferred_chain,
            ", ".join(repr(_top_issuer_name(c)) for c in chains),
        )
        return response.text

    # --- renewal information and revocation ---------------------------------------------------

    def renewal_times(self, certs: Iterable[StoredCert]) -> dict[str, RenewalTime]:
        """When to renew each certificate: in the CA's ARI window if it offers one, else at 1/3
        of the lifetime left. Answers are cached until the CA's Retry-After. Never raises: a CA
        that cannot be asked means renewal by lifetime."""
        certs = list(certs)
        with self._lock:  # answers about versions no longer asked about are of no more use
            asked = {cert.ari_id for cert in certs}
            self._ari = {ari_id: entry for ari_id, entry in self._ari.items() if ari_id in asked}
        if not certs:
            return {}
        now = datetime.now(UTC)
        times = {
            cert.name: RenewalTime(
                lifetime_renewal_time(cert.not_before, cert.not_after),
                now + DEFAULT_ARI_RECHECK,
                "lifetime",
            )
            for cert in certs
        }
        try:
            base = self.renewal_info_url
        except AcmeError as error:
            log.warning("ACME directory unavailable (%s); renewing by lifetime", error)
            return times
        for cert in certs:
            # RFC 9773 §4.3: never ask about an expired certificate.
            if base and cert.ari_id and cert.not_after > now:
                times[cert.name] = self._ari_renewal_time(base, cert, times[cert.name], now)
        return times

    def _ari_renewal_time(
        self, base: str, cert: StoredCert, by_lifetime: RenewalTime, now: datetime
    ) -> RenewalTime:
        with self._lock:
            cached = self._ari.get(cert.ari_id)
        if cached and cached.renewal.check_again_at > now:
            return cached.renewal
        try:
            response = self.net.get(f"{base}/{cert.ari_id}")
            info = messages.RenewalInfo.from_json(response.json())
        except (AcmeError, DeserializationError, ValueError) as error:
            log.warning(
                "%s: no renewal info from the CA (%s); renewing by lifetime", cert.name, error
            )
            return RenewalTime(by_lifetime.renew_at, now + timedelta(hours=1), "lifetime")
        window = (info.suggested_window.start, info.suggested_window.end)
        # Keep the moment already chosen while the window stays the same.
        renew_at = (
            cached.renewal.renew_at
            if cached and cached.window == window
            else time_in_window(*window)
        )
        wait = retry_after(response.headers.get("Retry-After"))
        if wait is None:
            wait = DEFAULT_ARI_RECHECK
        renewal = RenewalTime(
            renew_at,
            now + min(wait, timedelta(days=7)),
            "ari",
            response.json().get("explanationURL"),
        )
        with self._lock:
            self._ari[cert.ari_id] = _AriEntry(window, renewal)
        return renewal

    def revoke(
        self, fullchain_pem: bytes, reason: RevocationReason = RevocationReason.unspecified
    ) -> None:
        try:
            certificate = x509.load_pem_x509_certificate(fullchain_pem)
        except ValueError as error:
            raise BadRequest(f"cannot revoke: not a PEM certificate ({error})") from error
        with _unusable_answers_as_acme_errors():
            self.ensure_account()
            self.acme.revoke(certificate, int(reason))


def _top_issuer_name(chain_pem: str) -> str | None:
    try:
        certificates = x509.load_pem_x509_certificates(chain_pem.encode())
    except ValueError as error:
        raise UnexpectedAnswer(
            f"the CA sent a certificate chain that is not PEM: {error}"
        ) from error
    names = certificates[-1].issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


@contextlib.contextmanager
def _unusable_answers_as_acme_errors() -> Iterator[None]:
    """acme, josepy and requests have their own errors for answers they cannot use; callers of
    this module handle AcmeError only."""
    try:
        yield
    except errors.UnexpectedUpdate as error:
        raise UnexpectedAnswer(f"the CA answered about something else: {error}") from error
    except _UNUSABLE_ANSWER as error:
        raise UnexpectedAnswer(
            f"the CA's answer cannot be used ({type(error).__name__}: {error})"
        ) from error


def next_poll_delay(delay: float, retry_after_header: str | None) -> float:
    """The wait before the next poll: the CA's Retry-After if it sends one (capped), else double
    the last wait (capped). Never under the first poll's wait: `Retry-After: 0` must not spin."""
    wait = retry_after(retry_after_header)
    if wait is not None:
        proposed = min(wait.total_seconds(), _MAX_RETRY_AFTER_POLL)
    else:
        proposed = min(delay * 2, _MAX_POLL)
    return max(proposed, _FIRST_POLL)
