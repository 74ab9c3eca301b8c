"""Isolation between services on the real dockerd (issue 14, item 4): Swarm's CreatedAt and the
stack namespace reach discovery, a newer service of another stack cannot join an older one's
certificate, and a `certbotless.edge` label outside certbotless's stack makes no edge.

The services have no replicas (nothing runs) and ask only for certificates of their own test
names, so a sidecar on the same swarm orders nothing anyone else uses.
"""

from collections.abc import Iterator

import pytest

from certbotless.labels.settle import discover, find_edge_service
from certbotless.swarm.api import Swarm
from rig.stacks import docker, remove_services

pytestmark = pytest.mark.rig

OWNER = "cbl-iso-owner"
STRANGER = "cbl-iso-stranger"
OWN = "cbl-iso-sidecar"
NGINX = "cbl-iso-nginx"
STACK_LABEL = "com.docker.stack.namespace"


def create(name: str, stack: str, *labels: str) -> None:
    args = [arg for label in (f"{STACK_LABEL}={stack}", *labels) for arg in ("--label", label)]
    docker("service", "create", "--detach", "--replicas", "0", "--name", name, *args,
           "certbotless-demo-app:local")  # fmt: skip


@pytest.fixture(scope="module")
def services() -> Iterator[None]:
    # In this order: Swarm's CreatedAt says who came first.
    create(OWN, "cbl-iso-edge")
    create(NGINX, "cbl-iso-edge", "certbotless.edge=true")
    create(OWNER, "cbl-iso-a", "certbotless.certificate.cbl-iso=iso.example.test")
    create(STRANGER, "cbl-iso-b", "certbotless.certificate.cbl-iso=evil.example.test",
           "certbotless.edge=true")  # fmt: skip
    yield
    remove_services([OWN, NGINX, OWNER, STRANGER])


def test_a_newer_stack_cannot_join_a_certificate_nor_become_the_edge(services: None) -> None:
    seen = [s for s in Swarm().services() if s.name.startswith("cbl-iso-")]
    by_name = {s.name: s for s in seen}
    assert by_name[OWNER].stack == "cbl-iso-a"
    owner_created, stranger_created = by_name[OWNER].created_at, by_name[STRANGER].created_at
    assert owner_created is not None and stranger_created is not None
    assert owner_created < stranger_created
    assert find_edge_service(seen, OWN) == NGINX
    found = discover(seen, edge=NGINX, routing=False)
    (spec,) = found.specs
    assert spec.domains == ("iso.example.test",)
    problems = {(p.service, p.label): p.message for p in found.problems}
    assert (
        "belongs to cbl-iso-owner, which claimed it first"
        in problems[STRANGER, "certbotless.certificate.cbl-iso"]
    )
    assert "ignored: the edge is cbl-iso-nginx" in problems[STRANGER, "certbotless.edge"]
