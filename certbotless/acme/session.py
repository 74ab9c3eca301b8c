"""One CA as every order sees it: its directory and our account there, shared by all workers."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from acme import client, messages
from josepy.jwk import JWK

from certbotless.acme.account import (
    ExternalAccountBinding,
    account_client,
    change_key,
    find_existing,
    find_or_register,
)
from certbotless.acme.errors import (
    ACCOUNT_DOES_NOT_EXIST,
    AcmeError,
    CaProblem,
    CaUnreachable,
    unusable_answers_as_acme_errors,
)
from certbotless.acme.network import (
    AcmeNetwork,
    AcmeRequestObserver,
    RetryPolicy,
    signing_algorithm,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


class CaSession:
    """The directory is fetched once, on first use; the account is looked up (or registered) on
    first use and again after `forget_account`."""

    def __init__(
        self,
        directory_url: str,
        account_key: JWK,
        ca_bundle: Path | None = None,
        email: str | None = None,
        eab: ExternalAccountBinding | None = None,
        *,
        policy: RetryPolicy | None = None,
        pool_size: int = 16,
        observer: AcmeRequestObserver | None = None,
    ) -> None:
        self.directory_url = directory_url
        self.net = AcmeNetwork(
            account_key, ca_bundle, pool_size=pool_size, policy=policy, observer=observer
        )
        self.email = email
        self.eab = eab
        self._client: client.ClientV2 | None = None
        self._account: messages.RegistrationResource | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> client.ClientV2:
        with self._lock:
            if self._client is None:
                directory = client.ClientV2.get_directory(self.directory_url, self.net)
                self._client = client.ClientV2(directory, self.net)
            return self._client

    @property
    def renewal_info_url(self) -> str | None:
        """The CA's ARI endpoint, if it has one."""
        try:
            return str(self.client.directory["renewalInfo"]).rstrip("/")
        except KeyError:
            return None

    def offered_profiles(self) -> dict[str, str]:
        meta = getattr(self.client.directory, "meta", None)
        return dict(getattr(meta, "profiles", None) or {})

    def ensure_account(self) -> messages.RegistrationResource:
        with unusable_answers_as_acme_errors():
            acme = self.client
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
        with unusable_answers_as_acme_errors():
            account = find_existing(account_client(self.client.directory, self.net))
        return None if account is None else str(account.uri)

    def forget_account(self) -> None:
        """The CA no longer knows it: the next `ensure_account` looks it up again."""
        with self._lock:
            self._account = None

    def with_account(self, operation: Callable[[], T]) -> T:
        """`operation`, signed by the account; run once more, registered again with the same
        key, when the CA has lost the account. CAs say so differently: `accountDoesNotExist`
        (RFC 8555), or HTTP 500 to every request of it (Caddy's, restarted on a fresh
        database), so any refusal or outage is followed by asking the CA with the bare key."""
        self.ensure_account()
        try:
            return operation()
        except (CaProblem, CaUnreachable) as error:
            if isinstance(error, CaProblem) and error.typ != ACCOUNT_DOES_NOT_EXIST:
                raise
            if not self.account_lost():
                raise
            log.warning(
                "the CA no longer knows our account (%s); registering again with the same key",
                error,
            )
        self.ensure_account()
        return operation()

    def account_lost(self) -> bool:
        """Whether the CA no longer knows the account this session uses (then forgotten, so
        that the next `ensure_account` registers again). False when the CA cannot say."""
        with self._lock:
            known = None if self._account is None else str(self._account.uri)
        try:
            found = self.existing_account()
        except AcmeError:
            return False
        if found is not None and found == known:
            return False
        self.forget_account()
        return True

    def change_key(self, new_key: JWK) -> str:
        """Roll the account over to `new_key` (RFC 8555 §7.3.5); every later request signs with
        it. Returns the account's URL. For a one-off command: orders in flight on this session
        would sign with either key."""
        with unusable_answers_as_acme_errors():
            account = self.ensure_account()
            old_key = self.net.key
            assert old_key is not None, "AcmeNetwork always has the account key"
            change_key(self.client, str(account.uri), old_key, new_key)
            with self._lock:
                self.net.key = new_key
                self.net.alg = signing_algorithm(new_key)
        return str(account.uri)

    def unreachable(self) -> str | None:
        """Why the CA cannot be reached right now (its directory, fetched afresh), or None.
        Passes that order nothing ask this, so an outage is noticed before renewals are due."""
        try:
            self.net.get(self.directory_url)
        except AcmeError as error:
            return str(error)
        return None
