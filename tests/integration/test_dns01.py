"""DNS-01 against real DNS servers and a real Pebble that reads the records (issue 17).

A BIND 9 is authoritative for example.test and slow.test and updated with TSIG (RFC 2136);
PowerDNS (SQLite backend) serves pdns.test, updated through dns-lexicon's PowerDNS provider over
its HTTP API, and a stale copy of slow.test (the name server that never sees the record).
Pebble resolves through BIND (`-dnsserver`), which follows CNAMEs and forwards pdns.test to
PowerDNS. Everything runs on loopback, on ports free at run time, in temporary directories.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import pytest
from cryptography import x509

from certbotless.acme.challenges import TokenStore
from certbotless.acme.dns01 import (
    Dns01Solver,
    DnsLookup,
    DnsRecordNotServed,
    DnsUpdateFailed,
    DnsZoneNotFound,
    PropagationPolicy,
)
from certbotless.acme.dns_providers import ProvidersFromSecrets
from certbotless.acme.errors import AcmeError
from certbotless.acme.http01 import EdgeHttp01Solver
from certbotless.acme.issuer import AcmeIssuer
from certbotless.acme.keys import load_account_key
from certbotless.acme.responder import ChallengeResponder
from certbotless.acme.solvers import ChallengeSolvers
from certbotless.model import (
    CertSpec,
    Challenge,
    ChallengeMode,
    ChallengeType,
    DnsRecord,
    FailureReason,
    IssuedCert,
)
from certbotless.swarm.status import failure_reason
from rig.pebble import PebbleServer, listener_certificates
from tests.support.dns_servers import (
    BIND_ADDRESS,
    PDNS_ADDRESSES,
    TSIG_KEY_NAME,
    BindServer,
    PowerDnsServer,
    Zone,
    free_port,
)
from tests.support.fakes import FakeDnsLedger

SLOW = Zone(
    "slow.test",
    (("ns1.slow.test", BIND_ADDRESS), ("ns2.slow.test", PDNS_ADDRESSES[1])),
    ("@ IN A 127.0.0.1", "* IN A 127.0.0.1"),
)


@dataclass
class DnsWorld:
    bind: BindServer
    pdns: PowerDnsServer
    pebble: PebbleServer
    secrets: Path
    tokens: TokenStore
    ca_bundle: Path

    def lookup(self) -> DnsLookup:
        return DnsLookup([(BIND_ADDRESS, self.bind.port)], authoritative_port=self.bind.port)

    def solver(
        self, ledger: FakeDnsLedger, secrets: Path | None = None, timeout: float = 20.0
    ) -> Dns01Solver:
        return Dns01Solver(
            ProvidersFromSecrets(secrets or self.secrets),
            ledger,
            self.lookup(),
            default_provider="rfc2136",
            policy=PropagationPolicy(timeout=timeout, interval=0.2),
        )

    def issuer(self, dns01: Dns01Solver) -> AcmeIssuer:
        solvers = ChallengeSolvers(EdgeHttp01Solver(self.tokens), dns01)
        return AcmeIssuer(
            self.pebble.directory_url, load_account_key(None), solvers, ca_bundle=self.ca_bundle
        )

    def txt_values(self, fqdn: str, address: str = BIND_ADDRESS) -> set[str]:
        query = dns.message.make_query(fqdn, dns.rdatatype.TXT)
        response = dns.query.udp(query, address, 3, self.bind.port)
        return {
            b"".join(r.strings).decode()
            for rrset in response.answer
            if rrset.rdtype == dns.rdatatype.TXT
            for r in rrset
        }


def write_secrets(directory: Path, options: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, value in options.items():
        (directory / f"certbotless-dns-{name}").write_text(value + "\n")
    return directory


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnsWorld]:
    root = tmp_path_factory.mktemp("dns01")
    port = free_port((BIND_ADDRESS, *PDNS_ADDRESSES))
    pdns = PowerDnsServer(
        root / "pdns", port, free_port(("127.0.0.1",)),
        [Zone("pdns.test", (("ns.pdns.test", PDNS_ADDRESSES[0]),),
              ("@ IN A 127.0.0.1", "* IN A 127.0.0.1")), SLOW],
    )  # fmt: skip
    bind = BindServer(
        root / "bind", port,
        [Zone("example.test", (("ns1.example.test", BIND_ADDRESS),),
              ("@ IN A 127.0.0.1", "* IN A 127.0.0.1",
               # Its own A: while _acme-challenge.mixed has a TXT, the wildcard A does not
               # cover mixed (an empty non-terminal), and HTTP-01 needs its address.
               "mixed IN A 127.0.0.1",
               # A zone without an API delegates its record to one that has.
               "_acme-challenge.delegated IN CNAME delegated.acme.pdns.test.")), SLOW],
        forward={"pdns.test": (PDNS_ADDRESSES[0], port)},
    )  # fmt: skip
    tokens = TokenStore(root / "tokens")
    http_port = free_port(("127.0.0.1",))
    responder = ChallengeResponder(tokens, "127.0.0.1", http_port)
    ca_bundle = listener_certificates(["127.0.0.1"], root / "tls")
    acme_port = free_port(("127.0.0.1",))
    pebble = PebbleServer(
        f"pebble-dns01-{acme_port}", host="127.0.0.1", ca_bundle=ca_bundle, port=acme_port,
        management_port=free_port(("127.0.0.1",)), http_port=http_port,
        dns_server=f"{BIND_ADDRESS}:{port}",
        # Every order proves every name afresh: a reused authorization would prove nothing.
        env={"PEBBLE_AUTHZREUSE": "0"},
    )  # fmt: skip
    try:
        pdns.start()
        bind.start()
        responder.start()
        pebble.start()
        secrets = write_secrets(root / "secrets", {
            "rfc2136-server": f"{BIND_ADDRESS}:{port}",
            "rfc2136-key-name": TSIG_KEY_NAME,
            "rfc2136-key-secret": bind.key_secret,
            "powerdns-auth-token": pdns.api_key,
            "powerdns-pdns-server": pdns.api_url,
        })  # fmt: skip
        yield DnsWorld(bind, pdns, pebble, secrets, tokens, ca_bundle)
    finally:
        pebble.stop()
        responder.stop()
        bind.stop()
        pdns.stop()


def names_in(issued: IssuedCert) -> set[str]:
    certificate = x509.load_pem_x509_certificate(issued.fullchain_pem)
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return set(san.value.get_values_for_type(x509.DNSName))


def issue(
    world: DnsWorld, spec: CertSpec, ledger: FakeDnsLedger, timeout: float = 20.0
) -> IssuedCert | AcmeError:
    issuer = world.issuer(world.solver(ledger, timeout=timeout))
    [(_, outcome)] = list(issuer.issue_many([spec], print))
    return outcome


def test_a_wildcard_through_bind_with_tsig(world: DnsWorld, figure: Callable[[str], None]) -> None:
    ledger = FakeDnsLedger()
    spec = CertSpec("wild", ("*.example.test", "example.test"), challenge=ChallengeMode.DNS01)
    started = time.monotonic()
    issued = issue(world, spec, ledger)
    seconds = time.monotonic() - started
    assert isinstance(issued, IssuedCert), issued
    assert names_in(issued) == {"*.example.test", "example.test"}
    # Both names' values stood side by side at one name, and both are gone.
    assert ledger.records == [] and ledger.saves == 4
    assert world.txt_values("_acme-challenge.example.test.") == set()
    figure(f"DNS-01 wildcard and its domain through BIND (TSIG) and Pebble: {seconds:.2f} s "
           "from ordering to the certificate, propagation check included")  # fmt: skip


def test_a_mixed_certificate_http01_for_the_name_dns01_for_the_wildcard(world: DnsWorld) -> None:
    ledger = FakeDnsLedger()
    spec = CertSpec(
        "mixed", ("mixed.example.test", "*.mixed.example.test"), challenge=ChallengeMode.MIXED
    )
    issued = issue(world, spec, ledger)
    assert isinstance(issued, IssuedCert), issued
    assert names_in(issued) == {"mixed.example.test", "*.mixed.example.test"}
    # One record (the wildcard's), published and withdrawn; the other name went by HTTP-01.
    assert ledger.saves == 2 and ledger.records == []
    assert world.txt_values("_acme-challenge.mixed.example.test.") == set()


def test_powerdns_through_dns_lexicon(world: DnsWorld) -> None:
    ledger = FakeDnsLedger()
    spec = CertSpec(
        "pdns", ("*.pdns.test", "pdns.test"), challenge=ChallengeMode.DNS01,
        dns_provider="powerdns",
    )  # fmt: skip
    issued = issue(world, spec, ledger)
    assert isinstance(issued, IssuedCert), issued
    assert names_in(issued) == {"*.pdns.test", "pdns.test"}
    assert ledger.records == []
    assert world.txt_values("_acme-challenge.pdns.test.", PDNS_ADDRESSES[0]) == set()


class RecordingLedger(FakeDnsLedger):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[DnsRecord] = []

    def save(self, records: list[DnsRecord]) -> None:  # type: ignore[override]
        self.seen += [r for r in records if r not in self.seen]
        super().save(records)


def test_a_cname_delegates_the_record_from_bind_to_powerdns(world: DnsWorld) -> None:
    ledger = RecordingLedger()
    spec = CertSpec(
        "delegated", ("delegated.example.test",), challenge=ChallengeMode.DNS01,
        dns_provider="powerdns",
    )  # fmt: skip
    issued = issue(world, spec, ledger)
    assert isinstance(issued, IssuedCert), issued
    assert [(r.fqdn, r.zone, r.provider) for r in ledger.seen] == [
        ("delegated.acme.pdns.test.", "pdns.test.", "powerdns")
    ]
    assert ledger.records == []
    assert world.txt_values("delegated.acme.pdns.test.", PDNS_ADDRESSES[0]) == set()


def test_a_wrong_tsig_key_is_one_clear_error_and_leaves_nothing(
    world: DnsWorld, tmp_path: Path
) -> None:
    wrong = write_secrets(tmp_path, {
        "rfc2136-server": f"{BIND_ADDRESS}:{world.bind.port}",
        "rfc2136-key-name": TSIG_KEY_NAME,
        "rfc2136-key-secret": "d3JvbmcgYnV0IHdlbGwgZm9ybWVkIGtleSBzZWNyZXQ=",
    })  # fmt: skip
    ledger = FakeDnsLedger()
    issuer = world.issuer(world.solver(ledger, secrets=wrong))
    spec = CertSpec("badkey", ("badkey.example.test",), challenge=ChallengeMode.DNS01)
    [(_, outcome)] = list(issuer.issue_many([spec], print))
    assert isinstance(outcome, DnsUpdateFailed), outcome
    text = str(outcome)
    assert text.startswith("badkey: badkey.example.test: DNS provider rfc2136 refused")
    assert "_acme-challenge.badkey.example.test. in zone example.test." in text
    assert f"refused TSIG key {TSIG_KEY_NAME}" in text
    assert failure_reason(outcome) is FailureReason.DNS_PROBLEM
    assert ledger.records == []
    assert world.txt_values("_acme-challenge.badkey.example.test.") == set()


def test_a_name_in_no_zone_is_one_clear_error(world: DnsWorld) -> None:
    ledger = FakeDnsLedger()
    spec = CertSpec("nowhere", ("www.nowhere.test",), challenge=ChallengeMode.DNS01)
    outcome = issue(world, spec, ledger)
    assert isinstance(outcome, DnsZoneNotFound), outcome
    assert str(outcome).startswith(
        "nowhere: no DNS zone found for _acme-challenge.www.nowhere.test. "
        "(only the root zone holds it)"
    )
    assert failure_reason(outcome) is FailureReason.DNS_PROBLEM
    assert ledger.records == [] and ledger.saves == 0


def test_a_name_server_that_never_sees_the_record_times_out_and_the_record_goes(
    world: DnsWorld,
) -> None:
    ledger = FakeDnsLedger()
    spec = CertSpec("lagging", ("lag.slow.test",), challenge=ChallengeMode.DNS01)
    started = time.monotonic()
    outcome = issue(world, spec, ledger, timeout=2.0)
    assert time.monotonic() - started < 10
    assert isinstance(outcome, DnsRecordNotServed), outcome
    assert str(outcome).startswith(
        f"lagging: lag.slow.test: name server ns2.slow.test. ({PDNS_ADDRESSES[1]}) of zone "
        "slow.test. does not serve TXT _acme-challenge.lag.slow.test. after 2 s"
    )
    assert failure_reason(outcome) is FailureReason.CHALLENGE_NOT_SERVED
    # BIND had it (the CA was never asked); now nobody has.
    assert ledger.records == []
    assert world.txt_values("_acme-challenge.lag.slow.test.") == set()


def test_a_restarted_sidecar_withdraws_what_its_predecessor_left(world: DnsWorld) -> None:
    ledger = FakeDnsLedger()
    challenge = Challenge(
        "left.example.test", "t" * 43, "t" * 43 + ".thumbprint", ChallengeType.DNS01
    )
    world.solver(ledger).present(challenge)  # and then the process died
    assert len(ledger.records) == 1
    fqdn = ledger.records[0].fqdn
    assert world.txt_values(fqdn) == {ledger.records[0].value}
    assert world.solver(ledger).withdraw_leftovers() == []
    assert ledger.records == []
    assert world.txt_values(fqdn) == set()
