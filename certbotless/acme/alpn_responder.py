"""The TLS server that answers TLS-ALPN-01 challenges (RFC 8737): the front routes to it the
ClientHellos offering ALPN `acme-tls/1`; it completes the handshake with the challenge
certificate of the name in the SNI, when that name has one pending in the store, and closes the
connection (the CA only looks at the certificate).

Refused: a ClientHello without an SNI, or naming no pending challenge (an `unrecognized_name`
alert, no certificate sent); a handshake that ends without `acme-tls/1` agreed (closed at once:
Python's ssl cannot see the client's ALPN offer before the certificate goes out, so such a
client has seen a challenge certificate, which carries only a digest of what the CA knows).

Bounded as the HTTP-01 responder is (`responder.py`, one event loop): the handshake within
`handshake_seconds` of the connection, beyond `max_waiting_per_client` a client's oldest
unfinished connection closed, beyond `max_waiting` the oldest anywhere.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass

from certbotless.acme.challenges import AlpnCertificates
from certbotless.acme.responder import LoopServer, client_address
from certbotless.acme.tls_alpn01 import ACME_TLS_1

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlpnResponderLimits:
    handshake_seconds: float = 10.0
    max_waiting: int = 1024
    max_waiting_per_client: int = 64


def _context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # RFC 8737 §4: TLS 1.2 or later
    context.set_alpn_protocols([ACME_TLS_1])
    return context


class AlpnResponder(LoopServer):
    """Serves the pending TLS-ALPN-01 certificates of `certificates`, and nothing else."""

    thread_name = "tls-alpn-responder"

    def __init__(
        self,
        certificates: AlpnCertificates,
        host: str,
        port: int,
        limits: AlpnResponderLimits = AlpnResponderLimits(),
    ) -> None:
        super().__init__(host, port, limits.max_waiting, limits.max_waiting_per_client)
        self._certificates = certificates
        self._limits = limits
        # No certificate of its own: a handshake the SNI callback does not take over fails.
        self._context = _context()
        self._context.sni_callback = self._choose_certificate

    def _choose_certificate(
        self, connection: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext
    ) -> int | None:
        """Switch the handshake to the challenge certificate of `server_name`; an alert when
        there is none. One small file read on the loop's thread: the CA connects a few times."""
        path = None if server_name is None else self._certificates.file_for(server_name)
        if path is None:
            log.info("tls-alpn responder: no challenge pending for SNI %r: refused", server_name)
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        challenge = _context()
        try:
            challenge.load_cert_chain(path)
        except (OSError, ssl.SSLError):  # withdrawn in the meantime
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        connection.context = challenge
        return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = client_address(writer)
        transport = writer.transport
        self.waiting.add(transport, client)
        try:
            async with asyncio.timeout(self._limits.handshake_seconds):
                # The loop's own upgrade, not the writer's: one closed mid-handshake (to make
                # room) leaves the writer its transport.
                tls = await asyncio.get_running_loop().start_tls(
                    transport, transport.get_protocol(), self._context, server_side=True
                )
            if tls is None:  # closed during the handshake
                return
            agreed = tls.get_extra_info("ssl_object").selected_alpn_protocol()
            if agreed != ACME_TLS_1:
                log.info("tls-alpn responder: %s did not offer %s: closed", client, ACME_TLS_1)
            else:
                log.debug("tls-alpn responder: %s was shown its challenge certificate", client)
        except (TimeoutError, ConnectionError, ssl.SSLError, OSError) as error:
            log.debug("tls-alpn responder: %s: %s", client, error or type(error).__name__)
        except asyncio.CancelledError:
            pass  # only `stop` cancels
        finally:
            self.waiting.discard(transport)
            transport.abort()
