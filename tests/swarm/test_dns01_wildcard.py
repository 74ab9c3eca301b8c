"""A wildcard certificate by DNS-01 on a real swarm (issue 17).

The test's own BIND 9, on the gateway address the sidecar's container reaches, is authoritative
for wildcard.test and takes RFC 2136 updates signed with TSIG; the sidecar gets the key as Swarm
secrets (stacks/test-dns01.yml). A Pebble of the test's own resolves through that BIND, so it
reads the TXT records the sidecar publishes. One label, `*.wildcard.test` with
`certbotless.challenge=dns-01` (stacks/demo-wildcard.yml), must end with nginx serving the
wildcard certificate for any name under wildcard.test, and no TXT record left behind.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import pytest
from cryptography import x509

from rig.pebble import PebbleServer
from rig.stacks import (
    EDGE_STACK,
    deploy_stack,
    docker,
    ensure_edge_network,
    purge_managed_objects,
    remove_stacks,
    sidecar_logs,
    wait_for_https,
)
from tests.support.dns_servers import TSIG_KEY_NAME, BindServer, Zone, free_port

pytestmark = pytest.mark.rig

WILDCARD_STACK = "demo-wildcard"
ZONE = "wildcard.test"
SUBDOMAINS = ("a.wildcard.test", "shop.wildcard.test", "www.wildcard.test")


@pytest.fixture(scope="module")
def bind(
    rig_env: Mapping[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BindServer]:
    gateway = rig_env["CBL_RIG_GATEWAY"]
    server = BindServer(
        tmp_path_factory.mktemp("bind"),
        free_port((gateway,)),
        [Zone(ZONE, ((f"ns1.{ZONE}", gateway),), ("* IN A 127.0.0.1",))],
        listen=gateway,
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pebble(rig_env: Mapping[str, str], bind: BindServer) -> Iterator[PebbleServer]:
    gateway = rig_env["CBL_RIG_GATEWAY"]
    server = PebbleServer(
        f"pebble-dns01-swarm-{bind.port}",
        host=gateway,
        ca_bundle=Path(rig_env["CBL_RIG_CA_BUNDLE"]),
        port=free_port((gateway,)),
        management_port=free_port((gateway,)),
        http_port=free_port((gateway,)),  # no HTTP-01 here
        dns_server=bind.address,
        env={"PEBBLE_AUTHZREUSE": "0"},
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def edge_with_dns01(
    rig_env: Mapping[str, str],
    bind: BindServer,
    pebble: PebbleServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    secrets = tmp_path_factory.mktemp("dns01-secrets")
    for option, value in {
        "server": bind.address,
        "key-name": TSIG_KEY_NAME,
        "key-secret": bind.key_secret,
    }.items():
        (secrets / f"certbotless-dns-rfc2136-{option}").write_text(value)
    remove_stacks([WILDCARD_STACK, EDGE_STACK])
    purge_managed_objects()
    ensure_edge_network()
    env = {
        **rig_env,
        "CBL_RIG_ACME_DIRECTORY": pebble.directory_url,
        "CBL_DNS01_RESOLVER": bind.address,
        "CBL_DNS01_PORT": str(bind.port),
        "CBL_DNS01_SECRETS": str(secrets),
    }
    deploy_stack(EDGE_STACK, ["edge.yml", "test-pebble.yml", "test-dns01.yml"], env)
    yield
    remove_stacks([WILDCARD_STACK, EDGE_STACK])
    purge_managed_objects()


def txt_values(bind: BindServer, name: str) -> set[str]:
    response = dns.query.udp(dns.message.make_query(name, "TXT"), bind.listen, 3, bind.port)
    return {
        b"".join(r.strings).decode()
        for rrset in response.answer
        if rrset.rdtype == dns.rdatatype.TXT
        for r in rrset
    }


def dns_records_noted() -> list[object]:
    """What the sidecar's ledger of DNS-01 records (a label on cbl-status) still holds."""
    [config] = json.loads(docker("config", "inspect", "cbl-status"))
    return list(json.loads(config["Spec"]["Labels"].get("certbotless.dns-records", "[]")))


def test_one_label_gives_a_wildcard_certificate_served_for_every_subdomain(
    edge_with_dns01: None,
    bind: BindServer,
    pebble: PebbleServer,
    tmp_path: Path,
    figure: Callable[[str], None],
) -> None:
    root = tmp_path / "pebble-root.pem"
    root.write_text(pebble.root_pem())
    started = time.monotonic()
    deploy_stack(WILDCARD_STACK, ["demo-wildcard.yml"], {})
    try:
        first = wait_for_https(SUBDOMAINS[0], str(root), timeout=240)
    except TimeoutError:
        print(sidecar_logs())
        raise
    figure(f"DNS-01 wildcard through BIND on a swarm: label to HTTPS in "
           f"{first.answering_since - started:.1f} s")  # fmt: skip
    serials = set()
    for host in SUBDOMAINS:
        answer = wait_for_https(host, str(root), timeout=30)
        certificate = x509.load_der_x509_certificate(answer.der)
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        assert san.value.get_values_for_type(x509.DNSName) == [f"*.{ZONE}"], host
        serials.add(answer.serial)
    assert len(serials) == 1  # one certificate for every name
    # The challenge's record is gone from the zone, and from the sidecar's ledger.
    assert txt_values(bind, f"_acme-challenge.{ZONE}.") == set()
    assert dns_records_noted() == []
    # The stored certificate is named after its wildcard.
    assert "cbl-wildcard.wildcard.test" in docker("config", "ls", "--format", "{{.Name}}")
