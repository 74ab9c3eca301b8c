"""CAA checked before ordering (issue 27), against a real BIND serving CAA records and a real
Pebble: an order CAA forbids is never placed (Pebble sees no newOrder), one it allows is issued.
BIND is recursive for loopback and follows CNAMEs, as a resolver does for RFC 8659's lookup.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from certbotless.acme.caa import CaaForbids, CaaPolicy, DnsCaaRecords
from certbotless.acme.challenges import TokenStore
from certbotless.acme.http01 import EdgeHttp01Solver
from certbotless.acme.issuer import AcmeIssuer, IssuerOptions
from certbotless.acme.keys import load_account_key
from certbotless.acme.responder import ChallengeResponder
from certbotless.model import CertSpec, IssuedCert
from rig.pebble import PebbleServer, listener_certificates
from tests.support.dns_servers import BIND_ADDRESS, BindServer, Zone, free_port

PEBBLE_IDENTITY = "pebble.test"  # the CAA identity the tests give Pebble
ZONE = Zone(
    "caa.test",
    (("ns1.caa.test", BIND_ADDRESS),),
    (
        "* IN A 127.0.0.1",
        "@ IN A 127.0.0.1",
        # A name with a CAA record is no longer under the wildcard A: each has its own.
        "allowed IN A 127.0.0.1",
        f'allowed IN CAA 0 issue "{PEBBLE_IDENTITY}"',
        "forbidden IN A 127.0.0.1",
        'forbidden IN CAA 0 issue "letsencrypt.org"',
        "sub.forbidden IN A 127.0.0.1",  # no CAA of its own: its parent's decides
        "alias IN CNAME target.other.test.",
    ),
)
OTHER = Zone(
    "other.test",
    (("ns1.other.test", BIND_ADDRESS),),
    ("target IN A 127.0.0.1", 'target IN CAA 0 issue "pki.goog"'),
)


@dataclass
class CountingObserver:
    requests: list[tuple[str, str]] = field(default_factory=list)

    def request(self, method: str, url: str, status: str, seconds: float) -> None:
        self.requests.append((url, status))

    def outcome(self, outcome: str) -> None:
        pass


@dataclass
class CaaWorld:
    issuer: AcmeIssuer
    observer: CountingObserver

    @property
    def new_order_requests(self) -> int:
        """newOrder requests sent to Pebble so far, whatever their answer."""
        new_order = str(self.issuer.acme.directory["newOrder"])
        return sum(url == new_order for url, _ in self.observer.requests)

    @property
    def new_orders(self) -> int:
        """Orders Pebble created so far (a newOrder it refused for a bad nonce, which the
        client sends again, places none)."""
        return self.observer.requests.count((str(self.issuer.acme.directory["newOrder"]), "201"))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CaaWorld]:
    root = tmp_path_factory.mktemp("caa")
    port = free_port((BIND_ADDRESS,))
    bind = BindServer(root / "bind", port, [ZONE, OTHER])
    tokens = TokenStore(root / "tokens")
    http_port = free_port(("127.0.0.1",))
    responder = ChallengeResponder(tokens, "127.0.0.1", http_port)
    ca_bundle = listener_certificates(["127.0.0.1"], root / "tls")
    acme_port = free_port(("127.0.0.1",))
    pebble = PebbleServer(
        f"pebble-caa-{acme_port}", host="127.0.0.1", ca_bundle=ca_bundle, port=acme_port,
        management_port=free_port(("127.0.0.1",)), http_port=http_port,
        dns_server=f"{BIND_ADDRESS}:{port}",
    )  # fmt: skip
    try:
        bind.start()
        responder.start()
        pebble.start()
        observer = CountingObserver()
        caa = CaaPolicy((PEBBLE_IDENTITY,), DnsCaaRecords([(BIND_ADDRESS, port)]))
        issuer = AcmeIssuer(
            pebble.directory_url, load_account_key(None), EdgeHttp01Solver(tokens),
            ca_bundle=ca_bundle, options=IssuerOptions(observer=observer, caa=caa),
        )  # fmt: skip
        issuer.ensure_account()
        yield CaaWorld(issuer, observer)
    finally:
        pebble.stop()
        responder.stop()
        bind.stop()


@pytest.mark.parametrize(
    ("domains", "words"),
    [
        (("forbidden.caa.test",), "CAA at forbidden.caa.test allows only letsencrypt.org"),
        (("sub.forbidden.caa.test",), "CAA at forbidden.caa.test allows only letsencrypt.org"),
        # The CNAME's target's records answer for the alias.
        (("alias.caa.test",), "CAA at alias.caa.test allows only pki.goog"),
        # One forbidden name forbids the whole order, even beside allowed ones.
        (("allowed.caa.test", "forbidden.caa.test"), "CAA at forbidden.caa.test"),
    ],
)
def test_an_order_caa_forbids_is_never_placed(
    world: CaaWorld, domains: tuple[str, ...], words: str
) -> None:
    before = world.new_order_requests
    with pytest.raises(CaaForbids) as refused:
        world.issuer.issue(CertSpec("site", domains))
    assert words in str(refused.value), refused.value
    assert "no order placed" in str(refused.value)
    assert world.new_order_requests == before


def test_an_order_caa_allows_is_issued(world: CaaWorld) -> None:
    before = world.new_orders
    # allowed.caa.test names Pebble; plain.caa.test has no CAA up to the root (any CA).
    issued = world.issuer.issue(CertSpec("site", ("allowed.caa.test", "plain.caa.test")))
    assert isinstance(issued, IssuedCert)
    assert world.new_orders == before + 1, world.observer.requests[-5:]


def test_a_name_whose_caa_cannot_be_read_is_not_ordered(tmp_path: Path) -> None:
    # A resolver that does not answer: RFC 8659 forbids issuing when the lookup fails.
    dead = free_port(("127.0.0.1",))
    policy = CaaPolicy((PEBBLE_IDENTITY,), DnsCaaRecords([("127.0.0.1", dead)]))
    with pytest.raises(CaaForbids, match=r"cannot look up the CAA records of x\.caa\.test"):
        policy.check(CertSpec("site", ("x.caa.test",)), lambda: None)
