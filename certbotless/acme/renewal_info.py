"""When to renew, as the CA says (ARI, RFC 9773) or else by lifetime, with the CA's answers kept
until its Retry-After."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from acme import messages
from josepy.errors import DeserializationError

from certbotless.acme.ari import (
    DEFAULT_ARI_RECHECK,
    lifetime_renewal_time,
    time_in_window,
)
from certbotless.acme.errors import AcmeError
from certbotless.acme.network import retry_after
from certbotless.acme.session import CaSession
from certbotless.model import RenewalTime, StoredCert

log = logging.getLogger(__name__)

# However long the CA says, ask again within a week.
_LONGEST_RECHECK = timedelta(days=7)


@dataclass
class _AriEntry:
    window: tuple[datetime, datetime]
    renewal: RenewalTime


class RenewalInfoClient:
    def __init__(self, session: CaSession) -> None:
        self.session = session
        self._cache: dict[str, _AriEntry] = {}
        self._lock = threading.Lock()

    def renewal_times(self, certs: Iterable[StoredCert]) -> dict[str, RenewalTime]:
        """When to renew each certificate: in the CA's ARI window if it offers one, else at 1/3
        of the lifetime left. Never raises: a CA that cannot be asked means renewal by
        lifetime."""
        certs = list(certs)
        with self._lock:  # answers about versions no longer asked about are of no more use
            asked = {cert.ari_id for cert in certs}
            self._cache = {key: entry for key, entry in self._cache.items() if key in asked}
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
            base = self.session.renewal_info_url
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
            cached = self._cache.get(cert.ari_id)
        if cached and cached.renewal.check_again_at > now:
            return cached.renewal
        try:
            response = self.session.net.get(f"{base}/{cert.ari_id}")
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
            now + min(wait, _LONGEST_RECHECK),
            "ari",
            response.json().get("explanationURL"),
        )
        with self._lock:
            self._cache[cert.ari_id] = _AriEntry(window, renewal)
        return renewal
