"""DNS-01's pure logic: the challenge per name, the labels, the solver's bookkeeping (with a
provider and name servers in memory), and wildcard certificates on the edge. The real servers
are in tests/integration/test_dns01.py."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from acme import challenges

from certbotless.acme.dns01 import (
    Dns01Solver,
    DnsLookup,
    DnsRecordNotServed,
    DnsUpdateFailed,
    NameServer,
    PropagationPolicy,
    txt_value,
)
from certbotless.acme.dns_providers import LexiconProvider, ProvidersFromSecrets, Rfc2136Provider
from certbotless.acme.errors import BadRequest
from certbotless.acme.keys import load_account_key
from certbotless.acme.solvers import ChallengeSolvers
from certbotless.edge.deployer import edge_references
from certbotless.edge.render import render_nginx_conf
from certbotless.labels.settle import discover
from certbotless.model import (
    CertSpec,
    Challenge,
    ChallengeMode,
    ChallengeType,
    Route,
)
from certbotless.seams import DnsProvider
from tests.support.factories import CERTS_DIR, RESPONDER, labelled, stored_cert
from tests.support.fakes import FakeDnsLedger, FakeDnsProvider, FakeSolver

DNS = ChallengeType.DNS01
WILD = {"certbotless.domains": "*.example.com", "certbotless.port": "80"}


def test_the_spec_chooses_the_challenge_per_name() -> None:
    http, dns, mixed, tls = (CertSpec("c", ("x",), challenge=mode) for mode in ChallengeMode)
    assert [http.challenge_for(w) for w in (False, True)] == [ChallengeType.HTTP01] * 2
    assert tls.challenge_for(False) is ChallengeType.TLS_ALPN01
    assert [dns.challenge_for(w) for w in (False, True)] == [DNS] * 2
    assert [mixed.challenge_for(w) for w in (False, True)] == [ChallengeType.HTTP01, DNS]


def test_the_txt_value_is_the_one_the_acme_library_computes() -> None:
    key = load_account_key(None)
    chall = challenges.DNS01(token=b"t" * 32)
    assert txt_value(chall.key_authorization(key)) == chall.validation(key)


# --- labels ---------------------------------------------------------------------------------


def test_a_wildcard_with_dns01_is_a_route_and_a_certificate() -> None:
    found = discover([
        labelled("web", {**WILD, "certbotless.challenge": "DNS-01",
                         "certbotless.dns-provider": "Cloudflare",
                         "certbotless.dns-zone": "Example.com."}),
    ])  # fmt: skip
    assert found.problems == ()
    (route,) = found.routes
    assert route.hosts == ("*.example.com",)
    (spec,) = found.specs
    assert spec == CertSpec(
        "wildcard.example.com", ("*.example.com",), challenge=ChallengeMode.DNS01,
        dns_provider="cloudflare", dns_zone="example.com",
    )  # fmt: skip


def test_a_mixed_certificate_names_the_domain_and_its_wildcard() -> None:
    labels = {**WILD, "certbotless.domains": "example.com,*.example.com",
              "certbotless.challenge": "mixed"}  # fmt: skip
    found = discover([labelled("web", labels)])
    assert found.problems == ()
    (spec,) = found.specs
    assert (spec.name, spec.domains, spec.challenge) == (
        "example.com", ("example.com", "*.example.com"), ChallengeMode.MIXED,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("labels", "label", "fragment"),
    [
        (WILD, "certbotless.domains",
         "*.example.com is a wildcard: only DNS-01 proves wildcards; set certbotless.challenge"),
        ({**WILD, "certbotless.challenge": "http-01"}, "certbotless.domains", "only DNS-01"),
        ({**WILD, "certbotless.challenge": "dns"}, "certbotless.challenge",
         "must be http-01 (through the edge, the default), dns-01"),
        ({**WILD, "certbotless.domains": "a.example.com", "certbotless.dns-provider": "rfc2136"},
         "certbotless.dns-provider", "needs certbotless.challenge=dns-01 or mixed"),
        ({**WILD, "certbotless.challenge": "dns-01", "certbotless.dns-provider": "cloud flare"},
         "certbotless.dns-provider", "must be rfc2136 or the name of a dns-lexicon provider"),
        ({**WILD, "certbotless.challenge": "dns-01", "certbotless.dns-zone": "example..com"},
         "certbotless.dns-zone", "not a valid hostname"),
        ({**WILD, "certbotless.domains": "*.*.example.com", "certbotless.challenge": "dns-01"},
         "certbotless.domains", "a wildcard stands for the leftmost label only"),
    ],
)  # fmt: skip
def test_challenge_label_problems(labels: dict[str, str], label: str, fragment: str) -> None:
    found = discover([labelled("web", labels)])
    (problem,) = found.problems
    assert problem.label == label
    assert fragment in problem.message
    assert found.specs == ()


# --- the solver, with DNS in memory -----------------------------------------------------------


class MemoryLookup(DnsLookup):
    def __init__(self, zone: FakeDnsProvider, lagging: tuple[str, ...] = ()) -> None:
        self.zone = zone
        self.lagging = lagging

    def where(self, domain: str) -> str:
        return f"_acme-challenge.{domain}."

    def zone_for(self, fqdn: str) -> str:
        return "example.com."

    def name_servers(self, zone: str) -> list[NameServer]:
        return [
            NameServer("ns1.example.com.", "192.0.2.1"),
            NameServer("ns2.example.com.", "192.0.2.2"),
        ]

    def serves(self, server: NameServer, fqdn: str, value: str) -> str:
        if server.name in self.lagging or value not in self.zone.values.get(fqdn, set()):
            return "NOERROR, 0 other TXT value(s)"
        return ""


def solver(
    zone: FakeDnsProvider, ledger: FakeDnsLedger, lagging: tuple[str, ...] = ()
) -> Dns01Solver:
    def providers(name: str) -> DnsProvider:
        assert name == "rfc2136"
        return zone

    return Dns01Solver(
        providers, ledger, MemoryLookup(zone, lagging), "rfc2136",
        PropagationPolicy(timeout=0.3, interval=0.1), progress=lambda _: None,
    )  # fmt: skip


def challenge(key: str = "k1", provider: str | None = None) -> Challenge:
    return Challenge("example.com", "t" * 43, key, DNS, dns_provider=provider)


def test_a_wildcard_and_its_domain_share_the_name_with_two_values() -> None:
    zone, ledger = FakeDnsProvider(), FakeDnsLedger()
    dns01 = solver(zone, ledger)
    first, second = challenge("k1"), challenge("k2")
    for each in (first, second):
        dns01.present(each)
        dns01.wait_until_visible(each, time.monotonic() + 60, threading.Event())
    assert zone.values["_acme-challenge.example.com."] == {txt_value("k1"), txt_value("k2")}
    assert [r.value for r in ledger.records] == [txt_value("k1"), txt_value("k2")]
    dns01.clean_up(first)
    dns01.clean_up(second)
    assert zone.values["_acme-challenge.example.com."] == set()
    assert ledger.records == []


def test_orders_sharing_a_challenge_publish_it_once_and_withdraw_it_after_the_last() -> None:
    zone, ledger = FakeDnsProvider(), FakeDnsLedger()
    dns01 = solver(zone, ledger)
    dns01.present(challenge())
    dns01.present(challenge())
    dns01.clean_up(challenge())
    assert zone.calls == [f"add {txt_value('k1')}"]
    dns01.clean_up(challenge())
    assert zone.calls[-1] == f"remove {txt_value('k1')}" and ledger.records == []


def test_a_refused_update_is_a_dns_problem_and_leaves_nothing_to_withdraw() -> None:
    zone, ledger = FakeDnsProvider(refuse=True), FakeDnsLedger()
    with pytest.raises(DnsUpdateFailed, match=r"refused to publish TXT _acme-challenge\.example"
                       r"\.com\. in zone example\.com\.: ns1 answered REFUSED"):  # fmt: skip
        solver(zone, ledger).present(challenge())
    assert ledger.records == [] and zone.calls == [f"add {txt_value('k1')}"]


def test_a_lagging_name_server_is_named_and_the_record_still_goes() -> None:
    zone, ledger = FakeDnsProvider(), FakeDnsLedger()
    dns01 = solver(zone, ledger, lagging=("ns2.example.com.",))
    dns01.present(challenge())
    with pytest.raises(DnsRecordNotServed, match=r"^example\.com: name server ns2\.example\.com\. "
                       r"\(192\.0\.2\.2\) of zone example\.com\. does not serve TXT "
                       r"_acme-challenge\.example\.com\. after 0 s"):  # fmt: skip
        dns01.wait_until_visible(challenge(), time.monotonic() + 60, threading.Event())
    dns01.clean_up(challenge())
    assert ledger.records == [] and zone.values["_acme-challenge.example.com."] == set()


def test_waiting_stops_when_asked() -> None:
    from certbotless.acme.errors import Abandoned

    zone, ledger = FakeDnsProvider(), FakeDnsLedger()
    dns01 = solver(zone, ledger, lagging=("ns1.example.com.",))
    dns01.present(challenge())
    stop = threading.Event()
    stop.set()
    with pytest.raises(Abandoned):
        dns01.wait_until_visible(challenge(), time.monotonic() + 60, stop)


def test_a_record_the_provider_did_not_withdraw_stays_noted_until_a_later_pass_can() -> None:
    zone, ledger = FakeDnsProvider(fail_removal=True), FakeDnsLedger()
    first = solver(zone, ledger)
    first.present(challenge())
    first.clean_up(challenge())  # logged, not raised: the CA has decided already
    assert len(ledger.records) == 1
    (problem,) = solver(zone, ledger).withdraw_leftovers()
    assert problem.startswith("DNS provider rfc2136 did not withdraw TXT _acme-challenge.")
    assert len(ledger.records) == 1
    zone.fail_removal = False
    assert solver(zone, ledger).withdraw_leftovers() == []
    assert ledger.records == [] and zone.values["_acme-challenge.example.com."] == set()


def test_without_a_provider_dns01_is_a_clear_bad_request() -> None:
    dns01 = Dns01Solver(
        lambda name: FakeDnsProvider(), FakeDnsLedger(), MemoryLookup(FakeDnsProvider())
    )
    with pytest.raises(BadRequest, match=r"set the certbotless\.dns-provider label or "
                       r"CERTBOTLESS_DNS01_PROVIDER"):  # fmt: skip
        dns01.present(challenge())
    with pytest.raises(BadRequest, match="no DNS provider is set up"):
        ChallengeSolvers(FakeSolver()).present(challenge())


def test_challenge_solvers_hand_each_challenge_to_its_type() -> None:
    zone, ledger = FakeDnsProvider(), FakeDnsLedger()
    solvers = ChallengeSolvers(FakeSolver(), solver(zone, ledger))
    solvers.present(Challenge("a.example.com", "t" * 43, "k"))
    assert zone.calls == []
    solvers.present(challenge())
    assert zone.calls == [f"add {txt_value('k1')}"]


# --- the edge -------------------------------------------------------------------------------


def test_the_wildcard_certificate_serves_its_route_and_names_without_their_own() -> None:
    wildcard = stored_cert("wildcard.example.com", ("*.example.com",))
    own = stored_cert("own.example.com", ("own.example.com",))
    routes = [
        Route("any", ("*.example.com",), 80),
        Route("app", ("app.example.com",), 80),
        Route("own", ("own.example.com",), 80),
        Route("deep", ("a.b.example.com",), 80),
    ]
    files = render_nginx_conf(routes, {c.name: c for c in (wildcard, own)}, RESPONDER, CERTS_DIR)
    text = "\n".join(files.values())
    wildcard_chain = f"{CERTS_DIR}/wildcard.example.com/fullchain.pem"
    for host in ("*.example.com", "app.example.com"):
        server = text.split(f"server_name {host};")[2].split("server_name")[0]
        assert wildcard_chain in server, host
    own_server = text.split("server_name own.example.com;")[2].split("server_name")[0]
    assert f"{CERTS_DIR}/own.example.com/fullchain.pem" in own_server
    # One label only: a.b.example.com is not covered, so it has no HTTPS server.
    assert text.count("server_name a.b.example.com;") == 1


def test_a_wildcard_certificate_serving_only_names_below_it_is_mounted() -> None:
    """No route is on `*.example.com` itself: its certificate serves app. and shop. all the same,
    so the edge mounts it (an unmounted file would stop nginx and the roll)."""
    wildcard = stored_cert("wildcard.example.com", ("*.example.com",))
    routes = [Route("app", ("app.example.com",), 80), Route("shop", ("shop.example.com",), 80)]
    references = edge_references(routes, {wildcard.name: wildcard}, {}, CERTS_DIR)
    assert {ref.object_id for ref in references} >= {wildcard.config_id, wildcard.secret_id}
    text = "\n".join(render_nginx_conf(routes, {wildcard.name: wildcard}, RESPONDER,
                                       CERTS_DIR).values())  # fmt: skip
    mounted = {ref.target for ref in references}
    assert f"{CERTS_DIR}/wildcard.example.com/fullchain.pem" in text
    assert f"{CERTS_DIR}/wildcard.example.com/fullchain.pem" in mounted


def test_services_of_one_stack_share_a_certificate_only_with_the_same_challenge() -> None:
    first = {**WILD, "certbotless.challenge": "dns-01", "certbotless.name": "shared",
             "certbotless.share": "two"}  # fmt: skip
    other = {**first, "certbotless.domains": "x.example.com", "certbotless.challenge": "mixed"}
    found = discover([
        labelled("one", first, stack="s", created=1),
        labelled("two", other, stack="s", created=2),
    ])  # fmt: skip
    (problem,) = found.problems
    assert (problem.service, problem.label) == ("two", "certbotless.challenge")
    assert "with certbotless.challenge dns-01, certbotless.dns-provider (default)" in (
        problem.message
    )
    (spec,) = found.specs
    assert spec.domains == ("*.example.com",)


# --- providers from secrets -------------------------------------------------------------------


def test_providers_are_built_from_their_secret_files(tmp_path: Path) -> None:
    for option, value in {
        "rfc2136-server": "ns1.example.com",
        "rfc2136-key-name": "certbotless",
        "rfc2136-key-secret": "c2VjcmV0IHRzaWcga2V5",
        "powerdns-auth-token": "token",
        "powerdns-pdns-server": "http://pdns:8081",
    }.items():
        (tmp_path / f"certbotless-dns-{option}").write_text(value + "\n")
    providers = ProvidersFromSecrets(tmp_path, authoritative_port=5353)
    rfc2136 = providers("rfc2136")
    assert isinstance(rfc2136, Rfc2136Provider)
    assert (rfc2136.server, rfc2136.port, rfc2136.key_name) == (
        "ns1.example.com",
        5353,
        "certbotless",
    )
    assert providers("rfc2136") is rfc2136  # built once
    powerdns = providers("powerdns")
    assert isinstance(powerdns, LexiconProvider)
    assert powerdns.options == {"auth_token": "token", "pdns_server": "http://pdns:8081"}
    for server, expected in [
        ("[2001:db8::53]:54", ("2001:db8::53", 54)),
        ("2001:db8::53", ("2001:db8::53", 53)),
        ("192.0.2.53:5300", ("192.0.2.53", 5300)),
    ]:
        (tmp_path / "certbotless-dns-rfc2136-server").write_text(server)
        again = ProvidersFromSecrets(tmp_path)("rfc2136")
        assert isinstance(again, Rfc2136Provider) and (again.server, again.port) == expected


def test_a_provider_without_its_secrets_or_unknown_is_a_clear_bad_request(tmp_path: Path) -> None:
    (tmp_path / "certbotless-dns-rfc2136-server").write_text("ns1.example.com")
    providers = ProvidersFromSecrets(tmp_path)
    with pytest.raises(BadRequest, match=r"^DNS provider rfc2136 needs the secrets "
                       r"certbotless-dns-rfc2136-key-name, certbotless-dns-rfc2136-key-secret "
                       rf"\(files in {tmp_path}\)$"):  # fmt: skip
        providers("rfc2136")
    with pytest.raises(BadRequest, match=r"^unknown DNS provider 'cloudfare': use rfc2136 or "):
        providers("cloudfare")


def test_a_provider_that_cannot_be_built_notes_nothing(tmp_path: Path) -> None:
    ledger = FakeDnsLedger()
    dns01 = Dns01Solver(
        ProvidersFromSecrets(tmp_path), ledger, MemoryLookup(FakeDnsProvider()), "rfc2136"
    )
    with pytest.raises(BadRequest, match="DNS provider rfc2136 needs the secrets"):
        dns01.present(challenge())
    assert ledger.saves == 0
