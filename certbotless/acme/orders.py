"""Orders at the CA: create one (with ARI's `replaces`), follow it, finalize it, download the
certificate in the preferred chain.

Polling is our own: a short first poll, then back-off or the CA's Retry-After, within the
order's deadline. A finalize that the network layer retried may have reached the CA the first
time: one the CA refuses is followed up by reading where the order stands.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import requests
from acme import messages
from cryptography import x509
from cryptography.x509.oid import NameOID
from josepy.json_util import field

from certbotless.acme import protocol
from certbotless.acme.errors import (
    ALREADY_REPLACED,
    ORDER_NOT_READY,
    CaProblem,
    OrderTimedOut,
    UnexpectedAnswer,
)
from certbotless.acme.network import retry_after
from certbotless.acme.session import CaSession
from certbotless.model import CertSpec, is_ip_address

log = logging.getLogger(__name__)

_FIRST_POLL = 0.05
_MAX_POLL = 2.0
_MAX_RETRY_AFTER_POLL = 30.0


class NewOrderWithReplaces(messages.NewOrder):
    """newOrder with RFC 9773's `replaces`, which the acme library does not have."""

    replaces: str | None = field("replaces", omitempty=True)


class CaOrders:
    def __init__(
        self, session: CaSession, order_timeout: float, preferred_chain: str | None = None
    ) -> None:
        self.session = session
        self.order_timeout = order_timeout
        self.preferred_chain = preferred_chain

    def place(self, spec: CertSpec, csr_pem: bytes, replaces: str | None) -> messages.OrderResource:
        """A new order for every name of `spec`, with its authorizations read. `replaces` (an
        ARI certificate id) is sent only to a CA that has ARI."""
        if replaces and not self.session.renewal_info_url:
            replaces = None
        response = self._post_new_order(spec, replaces)
        location = response.headers.get("Location")
        if not location:
            raise UnexpectedAnswer(
                "the CA created the order but sent no Location header, so it cannot be followed"
            )
        body = messages.Order.from_json(response.json())
        acme = self.session.client
        authorizations = [protocol.authorization_at(acme, url) for url in body.authorizations]
        return messages.OrderResource(
            body=body, uri=location, authorizations=authorizations, csr_pem=csr_pem
        )

    def _post_new_order(self, spec: CertSpec, replaces: str | None) -> requests.Response:
        identifiers = [
            messages.Identifier(
                typ=messages.IDENTIFIER_IP if is_ip_address(name) else messages.IDENTIFIER_FQDN,
                value=name,
            )
            for name in spec.domains
        ]

        def post() -> requests.Response:
            request = NewOrderWithReplaces(
                identifiers=identifiers, profile=spec.profile or None, replaces=replaces
            )
            acme = self.session.client
            return protocol.post(acme, acme.directory["newOrder"], request)

        try:
            return self.session.with_account(post)
        except CaProblem as problem:
            if problem.typ != ALREADY_REPLACED or not replaces:
                raise
        log.warning("%s: %s was already replaced; ordering without `replaces`", spec.name, replaces)
        replaces = None
        return self.session.with_account(post)

    def wait(
        self,
        order: messages.OrderResource,
        deadline: float,
        stage: str,
        failed: Callable[[messages.OrderResource], bool] | None = None,
    ) -> messages.OrderResource:
        """Poll until the order leaves pending/processing: the CA updates it when the
        authorizations are decided and again when the certificate is issued. Also returns,
        still pending, as soon as `failed` says the order cannot succeed (some CAs leave it
        pending after a failed challenge)."""
        waiting = (messages.STATUS_PENDING, messages.STATUS_PROCESSING)
        delay = _FIRST_POLL
        while order.body.status in waiting:
            if failed is not None and failed(order):
                return order
            if time.monotonic() + delay > deadline:
                raise OrderTimedOut(
                    f"{stage} did not finish within {self.order_timeout:.0f} s; the CA is slow "
                    "or stuck, the next pass tries again"
                )
            time.sleep(delay)
            order, response = self._fetch(order)
            delay = next_poll_delay(delay, response.headers.get("Retry-After"))
        return order

    def _fetch(
        self, order: messages.OrderResource
    ) -> tuple[messages.OrderResource, requests.Response]:
        response = protocol.post_as_get(self.session.client, order.uri)
        return order.update(body=messages.Order.from_json(response.json())), response

    def finalize(self, order: messages.OrderResource) -> messages.OrderResource:
        """Send the CSR. Once asked, the CA may issue."""
        try:
            return self.session.client.begin_finalization(order)
        except CaProblem as problem:
            if problem.typ != ORDER_NOT_READY:
                raise
            # A retried finalize whose first try reached the CA: the order is processing (or
            # done) already, so follow it. Still `ready` means the refusal was about something
            # else.
            current, _ = self._fetch(order)
            if current.body.status == messages.STATUS_READY:
                raise
            return current

    def download(self, url: str) -> str:
        """The certificate chain, the one issued by `preferred_chain` if the CA offers it."""
        acme = self.session.client
        response = protocol.post_as_get(acme, url)
        if not self.preferred_chain:
            return response.text
        chains = [response.text]
        for alternate in protocol.links(acme, response, "alternate"):
            chains.append(protocol.post_as_get(acme, alternate).text)
        for chain in chains:
            if _top_issuer_name(chain) == self.preferred_chain:
                return chain
        log.warning(
            "no chain is issued by %r (offered: %s); using the CA's default",
            self.preferred_chain,
            ", ".join(repr(_top_issuer_name(c)) for c in chains),
        )
        return response.text


def _top_issuer_name(chain_pem: str) -> str | None:
    try:
        certificates = x509.load_pem_x509_certificates(chain_pem.encode())
    except ValueError as error:
        raise UnexpectedAnswer(
            f"the CA sent a certificate chain that is not PEM: {error}"
        ) from error
    names = certificates[-1].issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


def next_poll_delay(delay: float, retry_after_header: str | None) -> float:
    """The wait before the next poll: the CA's Retry-After if it sends one (capped), else double
    the last wait (capped). Never under the first poll's wait: `Retry-After: 0` must not spin."""
    wait = retry_after(retry_after_header)
    if wait is not None:
        proposed = min(wait.total_seconds(), _MAX_RETRY_AFTER_POLL)
    else:
        proposed = min(delay * 2, _MAX_POLL)
    return max(proposed, _FIRST_POLL)
