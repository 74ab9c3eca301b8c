"""Several issuers, in order (issue 27), against two real Pebbles with different roots on loopback:
the first refuses a name by policy (its `domainBlocklist`), rate-limits (Pebble 2.4 has no rate
limits: the ARI proxy of tests/support/ari_ca.py answers its newOrder with `rateLimited` for the
names it is given, everything else is the first Pebble's), and is stopped; the second requires
External Account Binding. Each case runs a whole pass (the Reconciler, with the fakes of the
swarm and the real issuers), and prints the time until the certificate came from the second.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from certbotless.acme.account import ExternalAccountBinding
from certbotless.acme.challenges import TokenStore
from certbotless.acme.http01 import EdgeHttp01Solver
from certbotless.acme.issuer import AcmeIssuer, IssuerOptions
from certbotless.acme.issuer_chain import IssuerChain
from certbotless.acme.keys import load_account_key
from certbotless.acme.network import RetryPolicy
from certbotless.acme.responder import ChallengeResponder
from certbotless.model import PassRequest
from certbotless.passes.reconcile import Reconciler
from rig.pebble import PebbleServer
from tests.support.ari_ca import AriCa
from tests.support.dns_servers import free_port
from tests.support.fakes import SETTINGS, World

BLOCKED = "blocked.issuers.test"
EAB_KID = "kid-1"
EAB_KEY = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
# What a stopped CA costs before it is passed over: the engine's own retries, as in production.
RETRIES = RetryPolicy()
FIGURES: list[str] = []


@dataclass
class Cas:
    first: PebbleServer
    second: PebbleServer
    proxy: AriCa  # in front of the first, for its rate limits
    tokens: TokenStore

    def issuer(self, name: str, directory: str, eab: bool = False) -> AcmeIssuer:
        options = IssuerOptions(
            eab=ExternalAccountBinding(EAB_KID, EAB_KEY) if eab else None,
            policy=RETRIES,
            name=name,
        )
        return AcmeIssuer(directory, load_account_key(None), EdgeHttp01Solver(self.tokens),
                          ca_bundle=self.first.ca_bundle, options=options)  # fmt: skip

    def chain(self, first_directory: str) -> IssuerChain[AcmeIssuer]:
        second = self.issuer("second", self.second.directory_url, eab=True)
        return IssuerChain([self.issuer("first", first_directory), second])


def pebble(name: str, ca_bundle: Path, http_port: int, **config: object) -> PebbleServer:
    port = free_port(("127.0.0.1",))
    return PebbleServer(name, host="127.0.0.1", ca_bundle=ca_bundle, port=port,
                        management_port=free_port(("127.0.0.1",)), http_port=http_port,
                        config=dict(config))  # fmt: skip


@pytest.fixture(scope="module")
def cas(rig_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cas]:
    root = tmp_path_factory.mktemp("issuers")
    tokens = TokenStore(root / "tokens")  # its own responder: other tests' may be running
    http_port = free_port(("127.0.0.1",))
    responder = ChallengeResponder(tokens, "127.0.0.1", http_port)
    ca_bundle = Path(rig_env["CBL_RIG_CA_BUNDLE"])
    first = pebble("pebble-issuers-first", ca_bundle, http_port, domainBlocklist=[BLOCKED])
    second = pebble("pebble-issuers-second", ca_bundle, http_port,
                    externalAccountBindingRequired=True,
                    externalAccountMACKeys={EAB_KID: EAB_KEY})  # fmt: skip
    proxy = AriCa("127.0.0.1", first.port, ca_bundle.parent, free_port(("127.0.0.1",)))
    try:
        responder.start()
        first.start()
        second.start()
        proxy.start()
        yield Cas(first, second, proxy, tokens)
    finally:
        proxy.stop()
        second.stop()
        first.stop()
        responder.stop()
        print("\n" + "\n".join(FIGURES))


def one_pass(issuers: IssuerChain[AcmeIssuer], host: str, case: str) -> World:
    """A whole pass for one labelled certificate; its figure recorded."""
    world = World()
    world.add_edge()
    world.label("shop", host)
    parts = replace(world.parts(), issuer=lambda: issuers,
                    solver_for=lambda edge, progress: issuers.members[0].solver)  # fmt: skip
    started = time.monotonic()
    report = Reconciler(SETTINGS, parts).run_pass(PassRequest(progress=lambda line: None))
    seconds = time.monotonic() - started
    record = world.statuses.records[host]
    FIGURES.append(f"{case}: issued by {record.issuer} in {seconds:.2f} s; "
                   f"passed over: {'; '.join(record.skipped)[:160]}")  # fmt: skip
    assert report.issued == (host,), report.failed
    return world


def test_a_name_the_first_refuses_by_policy_comes_from_the_second(cas: Cas) -> None:
    world = one_pass(cas.chain(cas.first.directory_url), BLOCKED, "first refuses the name")
    record = world.statuses.records[BLOCKED]
    assert record.issuer == "second"
    assert record.skipped[0].startswith("first: refuses the name"), record.skipped
    assert "rejectedIdentifier" in record.skipped[0]


def test_a_name_the_first_rate_limits_comes_from_the_second(cas: Cas) -> None:
    host = "limited.issuers.test"
    cas.proxy.state.rate_limited.add(host)
    world = one_pass(cas.chain(cas.proxy.directory_url), host, "first rate-limits")
    record = world.statuses.records[host]
    assert record.issuer == "second" and record.skipped[0].startswith("first: rate limited")


def test_the_first_is_used_while_it_works_and_its_root_differs(cas: Cas) -> None:
    issuers = cas.chain(cas.first.directory_url)
    world = one_pass(issuers, "plain.issuers.test", "first works")
    assert world.statuses.records["plain.issuers.test"].issuer == "first"
    assert world.statuses.records["plain.issuers.test"].skipped == ()
    assert world.store.versions[-1].directory_url == cas.first.directory_url
    assert cas.first.root_pem() != cas.second.root_pem()  # two CAs, two roots


def test_when_the_first_is_stopped_the_second_issues_in_the_same_pass(cas: Cas) -> None:
    issuers = cas.chain(cas.first.directory_url)
    issuers.members[1].ensure_account()  # the second's account, registered with EAB
    cas.first.stop()
    world = one_pass(issuers, "down.issuers.test", "first stopped")
    record = world.statuses.records["down.issuers.test"]
    assert record.issuer == "second" and record.skipped[0].startswith("first: unreachable")
    assert world.store.versions[-1].directory_url == cas.second.directory_url
