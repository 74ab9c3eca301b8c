"""The DNS services DNS-01 publishes through (`seams.DnsProvider`): RFC 2136 dynamic updates
signed with TSIG (BIND, Knot, PowerDNS and most self-hosted DNS), and dns-lexicon's provider
APIs (Cloudflare, Route 53, Gandi, OVH, Hetzner, DigitalOcean, PowerDNS and the rest).

Their options come from files, Swarm secrets: `certbotless-dns-<provider>-<option>` in the
secrets directory (/run/secrets), e.g. `certbotless-dns-rfc2136-key-secret` or
`certbotless-dns-cloudflare-auth-token`. A file's text, stripped, is the option's value.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dns.exception
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update

from certbotless.acme.errors import BadRequest, DnsUpdateRefused
from certbotless.model import DnsRecord
from certbotless.seams import DnsProvider
from certbotless.settings import DNS_SECRET_PREFIX

RFC2136 = "rfc2136"
RECORD_TTL = 60  # seconds; the record lives for minutes, and a resolver should not keep it
UPDATE_TIMEOUT = 10.0  # seconds for one dynamic update
# RFC 2136's options: (file suffix, needed).
RFC2136_OPTIONS = (("server", True), ("key-name", True), ("key-secret", True),
                   ("key-algorithm", False))  # fmt: skip


class Rfc2136Provider:
    """RFC 2136 dynamic updates, signed with a TSIG key, sent over TCP to the primary."""

    def __init__(
        self,
        server: str,
        port: int,
        key_name: str,
        key_secret: str,
        key_algorithm: str = "hmac-sha256",
    ) -> None:
        self.server = server
        self.port = port
        self.key_name = key_name
        self.key = dns.name.from_text(key_name)
        self.keyring = dns.tsigkeyring.from_text({key_name: key_secret})
        self.key_algorithm = key_algorithm

    def add_txt(self, record: DnsRecord) -> None:
        update = self._update(record)
        update.add(dns.name.from_text(record.fqdn), RECORD_TTL, "TXT", f'"{record.value}"')
        self._send(update, record)

    def remove_txt(self, record: DnsRecord) -> None:
        update = self._update(record)
        update.delete(dns.name.from_text(record.fqdn), "TXT", f'"{record.value}"')
        self._send(update, record)

    def _update(self, record: DnsRecord) -> dns.update.UpdateMessage:
        return dns.update.UpdateMessage(
            record.zone, keyring=self.keyring, keyname=self.key,
            keyalgorithm=self.key_algorithm,
        )  # fmt: skip

    def _send(self, update: dns.update.UpdateMessage, record: DnsRecord) -> None:
        where = f"{self.server} port {self.port}"
        try:
            address = socket.getaddrinfo(self.server, self.port, type=socket.SOCK_STREAM)[0][4][0]
        except OSError as error:
            raise DnsUpdateRefused(f"cannot resolve the RFC 2136 server {where}: {error}") from None
        try:
            response = dns.query.tcp(update, str(address), UPDATE_TIMEOUT, self.port)
        except dns.tsig.PeerError as error:
            raise DnsUpdateRefused(
                f"{where} refused TSIG key {self.key_name} ({type(error).__name__}: {error}); "
                "check the key's name, secret and algorithm"
            ) from None
        rcode = response.rcode()
        if rcode != dns.rcode.NOERROR:
            hint = {
                dns.rcode.NOTAUTH: "it is not authoritative for the zone, or the key may not "
                "update it",
                dns.rcode.NOTZONE: "the name is outside the zone",
                dns.rcode.REFUSED: "its update-policy does not allow this key to update it",
            }.get(rcode, "")
            raise DnsUpdateRefused(
                f"{where} answered {dns.rcode.to_text(rcode)} to the update of zone "
                f"{record.zone}" + (f" ({hint})" if hint else "")
            )


class LexiconProvider:
    """One of dns-lexicon's providers, by its name, with its options (`auth_token`, …)."""

    def __init__(self, name: str, options: Mapping[str, str]) -> None:
        self.name = name
        self.options = dict(options)

    def add_txt(self, record: DnsRecord) -> None:
        self._call(record, "create_record")

    def remove_txt(self, record: DnsRecord) -> None:
        self._call(record, "delete_record")

    def _call(self, record: DnsRecord, operation: str) -> None:
        # The provider class directly, not lexicon's Client: the Client guesses the zone from
        # the public suffix list (downloading it), while certbotless already asked the DNS.
        from lexicon._private.discovery import load_provider_module
        from lexicon.config import ConfigResolver

        config = ConfigResolver().with_dict(  # type: ignore[no-untyped-call]
            {"provider_name": self.name, "domain": record.zone.rstrip("."), "ttl": RECORD_TTL,
             self.name: self.options}
        )  # fmt: skip
        provider: Any = load_provider_module(self.name).Provider(config)
        try:
            provider.authenticate()
            getattr(provider, operation)(
                rtype="TXT", name=record.fqdn.rstrip("."), content=record.value
            )
        finally:
            provider.cleanup()


def lexicon_providers() -> list[str]:
    from lexicon._private.discovery import find_providers

    return sorted(name for name, available in find_providers().items() if available)


class ProvidersFromSecrets:
    """Builds each provider once, on first use, from its secret files."""

    def __init__(self, secrets_dir: Path, authoritative_port: int = 53) -> None:
        self.secrets_dir = secrets_dir
        self.default_port = authoritative_port
        self._built: dict[str, DnsProvider] = {}
        self._lock = threading.Lock()

    def __call__(self, name: str) -> DnsProvider:
        with self._lock:
            if name not in self._built:
                self._built[name] = self._build(name)
            return self._built[name]

    def _build(self, name: str) -> DnsProvider:
        options = self._options(name)
        if name == RFC2136:
            missing = [o for o, needed in RFC2136_OPTIONS if needed and o not in options]
            if missing:
                raise BadRequest(
                    "DNS provider rfc2136 needs the secrets "
                    + ", ".join(DNS_SECRET_PREFIX + f"rfc2136-{o}" for o in missing)
                    + f" (files in {self.secrets_dir})"
                )
            host, port = _host_and_port(options["server"], self.default_port)
            return Rfc2136Provider(
                host, port, options["key-name"], options["key-secret"],
                options.get("key-algorithm", "hmac-sha256"),
            )  # fmt: skip
        if name not in lexicon_providers():
            raise BadRequest(
                f"unknown DNS provider {name!r}: use rfc2136 or one of dns-lexicon's providers "
                "(see `lexicon --help`)"
            )
        return LexiconProvider(name, {k.replace("-", "_"): v for k, v in options.items()})

    def _options(self, name: str) -> dict[str, str]:
        prefix = f"{DNS_SECRET_PREFIX}{name}-"
        try:
            files = sorted(self.secrets_dir.glob(prefix + "*"))
        except OSError:
            files = []
        return {f.name[len(prefix) :]: f.read_text().strip() for f in files if f.is_file()}


def _host_and_port(server: str, default_port: int) -> tuple[str, int]:
    """HOST, HOST:PORT, an IPv6 address, or [IPv6]:PORT."""
    if server.startswith("["):
        host, _, rest = server[1:].partition("]")
        port = rest.removeprefix(":")
    elif server.count(":") == 1:
        host, _, port = server.partition(":")
    else:
        host, port = server, ""
    if port.isascii() and port.isdigit() and 0 < int(port) < 65536:
        return host, int(port)
    return host, default_port
