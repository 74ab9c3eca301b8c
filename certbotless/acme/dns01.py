"""DNS-01: a TXT record at `_acme-challenge.<name>` (or where its CNAME points), published
through a DNS provider (`dns_providers.py`), checked on every authoritative name server of its
zone before the CA is asked, and withdrawn once the CA has decided. Every record published is
noted in a ledger in the swarm first, so that one a crash left behind is withdrawn later."""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dns.exception
import dns.message
import dns.name
import dns.nameserver
import dns.query
import dns.rdatatype
import dns.resolver

from certbotless.acme.errors import Abandoned, AcmeError, BadRequest, DnsUpdateRefused
from certbotless.acme.http01 import ChallengeNotServed
from certbotless.model import Challenge, ChallengeType, DnsRecord
from certbotless.seams import DnsProvider, DnsRecordLedger, Progress

log = logging.getLogger(__name__)

CHALLENGE_LABEL = "_acme-challenge"
MAX_CNAME_HOPS = 8  # a longer chain is a loop, most likely
QUERY_TIMEOUT = 3.0  # seconds for one question to one name server


class DnsProblem(AcmeError):
    """A zone, a name server or a provider did not do what DNS-01 needs; the CA was not asked."""


class DnsZoneNotFound(DnsProblem):
    """No zone could be found for the record's name."""


class DnsUpdateFailed(DnsProblem):
    """The provider did not publish (or withdraw) the record."""


class DnsRecordNotServed(ChallengeNotServed):
    """An authoritative name server still does not serve the record: the CA might not see it."""


def txt_value(key_authorization: str) -> str:
    """RFC 8555 §8.4: base64url(SHA-256(key authorization)), unpadded."""
    digest = hashlib.sha256(key_authorization.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def absolute(name: str) -> str:
    return dns.name.from_text(name).to_text()


@dataclass(frozen=True)
class NameServer:
    name: str  # as the zone's NS record names it
    address: str


class DnsLookup:
    """The questions DNS-01 asks: through `resolver` (the system's, or the addresses given) for
    CNAMEs, zones and name servers; directly to each authoritative server, never through a
    cache, for the record itself. `authoritative_port` is 53 but in tests."""

    def __init__(
        self, resolvers: Sequence[tuple[str, int]] = (), authoritative_port: int = 53
    ) -> None:
        self.resolver = dns.resolver.Resolver(configure=not resolvers)
        if resolvers:
            self.resolver.nameservers = [
                dns.nameserver.Do53Nameserver(address, port) for address, port in resolvers
            ]
        self.resolver.lifetime = 2 * QUERY_TIMEOUT
        self.resolver.cache = None  # an answer from before the record changed would mislead
        self.authoritative_port = authoritative_port

    def where(self, domain: str) -> str:
        """Where `_acme-challenge.<domain>`'s record goes: that name, or the end of its CNAME
        chain (a zone without an API may delegate the record to one that has)."""
        name = absolute(f"{CHALLENGE_LABEL}.{domain}")
        for _ in range(MAX_CNAME_HOPS):
            try:
                answer = self.resolver.resolve(name, "CNAME", raise_on_no_answer=False)
            except dns.resolver.NXDOMAIN:
                return name
            except dns.exception.DNSException as error:
                raise DnsZoneNotFound(f"cannot look up {name} (CNAME): {error}") from None
            if answer.rrset is None:
                return name
            name = answer.rrset[0].target.to_text()
        raise DnsZoneNotFound(f"{domain}: more than {MAX_CNAME_HOPS} CNAMEs from {name}")

    def zone_for(self, fqdn: str) -> str:
        try:
            zone = dns.resolver.zone_for_name(fqdn, resolver=self.resolver)
            problem = "only the root zone holds it" if zone == dns.name.root else ""
        except dns.exception.DNSException as error:
            problem = str(error)
        if problem:
            raise DnsZoneNotFound(
                f"no DNS zone found for {fqdn} ({problem}); check that the zone exists and its "
                "servers answer, or set certbotless.dns-zone"
            )
        return zone.to_text()

    def name_servers(self, zone: str) -> list[NameServer]:
        try:
            targets = sorted(r.target.to_text() for r in self.resolver.resolve(zone, "NS"))
        except dns.exception.DNSException as error:
            raise DnsZoneNotFound(f"zone {zone}: its name servers (NS) unknown: {error}") from None
        servers = []
        for target in targets:
            for rdtype in ("A", "AAAA"):
                try:
                    answer = self.resolver.resolve(target, rdtype, raise_on_no_answer=False)
                except dns.exception.DNSException:
                    continue
                servers += [NameServer(target, r.address) for r in answer.rrset or ()]
        if not servers:
            raise DnsZoneNotFound(f"zone {zone}: no address for any of its name servers {targets}")
        return servers

    def serves(self, server: NameServer, fqdn: str, value: str) -> str:
        """'' when `server` answers `fqdn` TXT with `value`, otherwise what it answered."""
        query = dns.message.make_query(fqdn, dns.rdatatype.TXT)
        query.flags &= ~dns.flags.RD  # ask it, not whom it might ask
        try:
            response, _ = dns.query.udp_with_fallback(
                query, server.address, QUERY_TIMEOUT, self.authoritative_port
            )
        except (dns.exception.DNSException, OSError) as error:
            return f"no answer ({error or type(error).__name__})"
        values = {
            b"".join(rdata.strings).decode(errors="replace")
            for rrset in response.answer
            if rrset.rdtype == dns.rdatatype.TXT
            for rdata in rrset
        }
        if value in values:
            return ""
        return f"{dns.rcode.to_text(response.rcode())}, {len(values)} other TXT value(s)"


@dataclass(frozen=True)
class PropagationPolicy:
    timeout: float = 60.0  # seconds until every authoritative server must serve the record
    interval: float = 2.0  # seconds between two rounds of questions


class Dns01Solver:
    """`seams.Solver` for DNS-01. `providers` builds a provider from its name (the challenge's,
    or `default_provider`)."""

    challenge_type = ChallengeType.DNS01

    def __init__(
        self,
        providers: Callable[[str], DnsProvider],
        ledger: DnsRecordLedger,
        lookup: DnsLookup,
        default_provider: str | None = None,
        policy: PropagationPolicy | None = None,
        progress: Progress = log.info,
    ) -> None:
        self.providers = providers
        self.ledger = ledger
        self.lookup = lookup
        self.default_provider = default_provider
        self.policy = policy or PropagationPolicy()
        self.progress = progress
        self._lock = threading.Lock()
        # Concurrent orders sharing a name share its challenge: one record, several users.
        self._records: dict[Challenge, DnsRecord] = {}
        self._users: dict[DnsRecord, int] = {}

    # --- the Solver -----------------------------------------------------------------------------

    def present(self, challenge: Challenge) -> None:
        if challenge.challenge_type is not ChallengeType.DNS01:
            raise BadRequest(
                f"{challenge.domain}: the DNS-01 solver got a {challenge.challenge_type}"
            )
        record = self._record_for(challenge)
        provider = self.providers(record.provider)  # no secrets, unknown: nothing to note
        with self._lock:
            users = self._users.get(record, 0)
            if not users:
                self._note(record, keep=True)  # first: a ledger that refuses it leaves no trace
            self._records[challenge] = record
            self._users[record] = users + 1
            if users:
                return
        self.progress(f"{challenge.domain}: publishing TXT {record.fqdn} in zone {record.zone}")
        try:
            provider.add_txt(record)
        except DnsUpdateRefused as error:
            self._forget(challenge)  # nothing was published: nothing to withdraw
            raise DnsUpdateFailed(
                f"{challenge.domain}: DNS provider {record.provider} refused to publish TXT "
                f"{record.fqdn} in zone {record.zone}: {error}"
            ) from None
        except Exception as error:
            # Whatever it did, try to take it back: a half-done update must not linger.
            self._withdraw(challenge)
            raise DnsUpdateFailed(
                f"{challenge.domain}: DNS provider {record.provider} did not publish TXT "
                f"{record.fqdn} in zone {record.zone}: {error}"
            ) from None

    def wait_until_visible(
        self, challenge: Challenge, deadline: float, stop: threading.Event
    ) -> None:
        record = self._records[challenge]
        servers = self.lookup.name_servers(record.zone)
        started = time.monotonic()
        until = min(started + self.policy.timeout, deadline)
        self.progress(
            f"{challenge.domain}: waiting until {len(servers)} name server(s) of zone "
            f"{record.zone} serve TXT {record.fqdn}"
        )
        missing = {server: "not asked yet" for server in servers}
        while True:
            for server in list(missing):
                answer = self.lookup.serves(server, record.fqdn, record.value)
                if answer:
                    missing[server] = answer
                else:
                    del missing[server]
            if not missing:
                return
            if time.monotonic() + self.policy.interval > until:
                break
            if stop.wait(self.policy.interval):
                raise Abandoned()
        server, answer = next(iter(missing.items()))
        raise DnsRecordNotServed(
            f"{challenge.domain}: name server {server.name} ({server.address}) of zone "
            f"{record.zone} does not serve TXT {record.fqdn} after "
            f"{time.monotonic() - started:.0f} s (it answered: {answer})"
            + (f"; {len(missing) - 1} other server(s) neither" if len(missing) > 1 else "")
        )

    def clean_up(self, challenge: Challenge) -> None:
        self._withdraw(challenge)

    # --- leftovers ------------------------------------------------------------------------------

    def withdraw_leftovers(self) -> list[str]:
        """Withdraw the records the ledger holds that no order of this process uses (a crash
        or a stop left them); returns what could not be withdrawn, in words."""
        problems = []
        with self._lock:
            in_use = set(self._users)
            for record in self.ledger.load():
                if record in in_use:
                    continue
                try:
                    self.providers(record.provider).remove_txt(record)
                except Exception as error:
                    problems.append(self._withdraw_problem(record, error))
                    continue
                log.info("withdrew TXT %s left from before (zone %s)", record.fqdn, record.zone)
                self._note(record, keep=False)
        return problems

    # --- inside ---------------------------------------------------------------------------------

    def _record_for(self, challenge: Challenge) -> DnsRecord:
        provider = challenge.dns_provider or self.default_provider
        if provider is None:
            raise BadRequest(
                f"{challenge.domain}: DNS-01 needs a DNS provider: set the "
                "certbotless.dns-provider label or CERTBOTLESS_DNS01_PROVIDER"
            )
        fqdn = self.lookup.where(challenge.domain)
        zone = absolute(challenge.dns_zone) if challenge.dns_zone else self.lookup.zone_for(fqdn)
        if not dns.name.from_text(fqdn).is_subdomain(dns.name.from_text(zone)):
            raise BadRequest(f"{challenge.domain}: the record {fqdn} is not in zone {zone}")
        return DnsRecord(fqdn, txt_value(challenge.key_authorization), zone, provider)

    def _withdraw(self, challenge: Challenge) -> None:
        with self._lock:
            record = self._records.get(challenge)
            if record is None or self._still_used(challenge, record):
                return
            try:
                self.providers(record.provider).remove_txt(record)
            except Exception as error:
                # Left in the ledger: the next pass tries again.
                log.warning("%s", self._withdraw_problem(record, error))
                return
            self._note(record, keep=False)

    def _forget(self, challenge: Challenge) -> None:
        with self._lock:
            record = self._records[challenge]
            if not self._still_used(challenge, record):
                self._note(record, keep=False)

    def _still_used(self, challenge: Challenge, record: DnsRecord) -> bool:
        """Count one user less (under the lock); whether others still use the record."""
        users = self._users.pop(record, 0)
        if users > 1:
            self._users[record] = users - 1
            return True
        del self._records[challenge]
        return False

    def _note(self, record: DnsRecord, keep: bool) -> None:
        """Add `record` to the ledger, or take it out (under the lock)."""
        records = [r for r in self.ledger.load() if r != record]
        self.ledger.save([*records, record] if keep else records)

    @staticmethod
    def _withdraw_problem(record: DnsRecord, error: Exception) -> str:
        return (
            f"DNS provider {record.provider} did not withdraw TXT {record.fqdn} in zone "
            f"{record.zone} ({error}); the next pass tries again"
        )
