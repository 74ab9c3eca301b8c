"""HTTP-01 through the nginx edge: tokens go to the shared token store, which the responder
serves to nginx, which forwards the CA's requests to it; before the CA is asked, the token can
be fetched through every edge task, as the CA will (the self-check)."""

from __future__ import annotations

import http.client
import logging
import socket
import threading
import time

from certbotless.acme.challenges import TokenStore
from certbotless.acme.errors import Abandoned, AcmeError, BadRequest, UnexpectedAnswer
from certbotless.model import CHALLENGE_PREFIX, Challenge, ChallengeType, host_form
from certbotless.proxy_protocol import connect_to_edge_task
from certbotless.seams import Progress

log = logging.getLogger(__name__)


class ChallengeNotServed(AcmeError):
    """The edge does not hand our token back; telling the CA now would only burn its limits."""


class EdgeSelfCheck:
    """Fetches each token through every edge task, as the CA will, before the CA is told to look.

    `edge_dns_name` is `tasks.<edge service>`: Docker's DNS answers it with every task's address
    on the shared overlay network.
    """

    def __init__(
        self,
        edge_dns_name: str,
        timeout: float = 60.0,
        port: int = 80,
        proxy_protocol: bool = False,
    ) -> None:
        self.edge_dns_name = edge_dns_name
        self.timeout = timeout
        self.port = port
        # Behind the L4 front, each edge task expects a PROXY protocol header first.
        self.proxy_protocol = proxy_protocol

    def wait_until_served(
        self,
        domain: str,
        token: str,
        key_authorization: str,
        deadline: float | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        """Wait up to `timeout`, and never past `deadline` (a `time.monotonic()` value, such as
        the order's own deadline). Raises Abandoned as soon as `stop` is set."""
        started = time.monotonic()
        until = started + self.timeout
        if deadline is not None:
            until = min(until, deadline)
        pause = stop or threading.Event()  # a fresh Event is never set: a plain sleep
        problem = "no attempt"
        while time.monotonic() < until:
            problem = self._problem(domain, token, key_authorization)
            if not problem:
                return
            if pause.wait(0.25):
                raise Abandoned()
        raise ChallengeNotServed(
            f"{domain}: the edge ({self.edge_dns_name}:{self.port}) does not serve the HTTP-01 "
            f"token after {time.monotonic() - started:.0f} s ({problem}); check that nginx "
            f"forwards {CHALLENGE_PREFIX} to certbotless"
        )

    def _problem(self, domain: str, token: str, key_authorization: str) -> str:
        try:
            addresses = sorted(
                {a[4][0] for a in socket.getaddrinfo(self.edge_dns_name, self.port, socket.AF_INET)}
            )
        except OSError as error:
            return f"cannot resolve: {error}"
        for address in addresses:
            connection = http.client.HTTPConnection(str(address), self.port, timeout=3)
            try:
                connection.sock = connect_to_edge_task(
                    str(address), self.port, 3, self.proxy_protocol
                )
                connection.request(
                    "GET", CHALLENGE_PREFIX + token, headers={"Host": host_form(domain)}
                )
                response = connection.getresponse()
                body = response.read(4096).decode(errors="replace")
            except (OSError, http.client.HTTPException) as error:
                return f"{address}: {error}"
            finally:
                connection.close()
            if response.status != 200 or body.strip() != key_authorization:
                return f"{address}: HTTP {response.status}"
        return ""


class EdgeHttp01Solver:
    """`seams.Solver` for HTTP-01 through the edge. Without a self-check, a token counts as
    visible as soon as it is in the store. `progress` hears of each self-check before it runs."""

    challenge_type = ChallengeType.HTTP01

    def __init__(
        self,
        tokens: TokenStore,
        self_check: EdgeSelfCheck | None = None,
        progress: Progress = log.info,
    ) -> None:
        self.tokens = tokens
        self.self_check = self_check
        self.progress = progress

    def present(self, challenge: Challenge) -> None:
        if challenge.challenge_type is not ChallengeType.HTTP01:
            raise BadRequest(
                f"{challenge.domain}: the HTTP-01 solver got a {challenge.challenge_type}"
            )
        try:
            self.tokens.put(challenge.token, challenge.key_authorization)
        except ValueError as malformed:
            raise UnexpectedAnswer(
                f"{challenge.domain}: the CA sent an unusable HTTP-01 token: {malformed}"
            ) from malformed

    def wait_until_visible(
        self, challenge: Challenge, deadline: float, stop: threading.Event
    ) -> None:
        if self.self_check is None:
            return
        self.progress(f"{challenge.domain}: checking the edge serves the challenge")
        self.self_check.wait_until_served(
            challenge.domain, challenge.token, challenge.key_authorization, deadline, stop
        )

    def clean_up(self, challenge: Challenge) -> None:
        self.tokens.remove(challenge.token)
