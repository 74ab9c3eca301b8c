"""One CA as every order sees it: its directory and our account there, shared by all workers."""

from __future__ import annotations

import threading
from pathlib import Path

from acme import client, messages
from josepy.jwk import JWK

from certbotless.acme.account import (
    ExternalAccountBinding,
    account_client,
    find_existing,
    find_or_register,
)
from certbotless.acme.errors import AcmeError, unusable_answers_as_acme_errors
from certbotless.acme.network import AcmeNetwork, AcmeRequestObserver, RetryPolicy


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

    def unreachable(self) -> str | None:
        """Why the CA cannot be reached right now (its directory, fetched afresh), or None.
        Passes that order nothing ask this, so an outage is noticed before renewals are due."""
        try:
            self.net.get(self.directory_url)
        except AcmeError as error:
            return str(error)
        return None
