"""What the edge mounts follows the labels: a certificate stored for a name no label asks for
(`certbotless issue … --name manual`) is stored, but neither mounted nor renewed."""

from __future__ import annotations

from certbotless.model import CertSpec, PassReport, PassRequest
from certbotless.passes.reconcile import Reconciler
from tests.support.fakes import SETTINGS, World

HOST = "shop.example.test"


def run(world: World, request: PassRequest) -> PassReport:
    return Reconciler(SETTINGS, world.parts()).run_pass(request)


def test_a_certificate_no_label_wants_is_stored_but_never_mounted() -> None:
    world = World()
    world.add_edge()
    world.label("shop", HOST)
    lines: list[str] = []
    run(world, PassRequest(progress=lines.append))
    labelled = world.store.versions[0]
    assert world.edge.mounted == {labelled.config_id}

    manual = PassRequest(extra_specs=(CertSpec("manual", (HOST,)),), progress=lines.append)
    report = run(world, manual)
    assert report.issued == ("manual",)
    assert "manual: stored, but no label wants it: neither mounted nor renewed" in lines
    assert world.edge.mounted == {labelled.config_id}, "the labelled certificate stays served"
    # Later passes neither mount nor renew it, even once it has expired.
    world.age(days=200)
    ordered = list(world.issuer.ordered)
    run(world, PassRequest(progress=lines.append))
    assert world.issuer.ordered == [*ordered, HOST]
    assert "manual" not in {c.name for c in world.store.inventory()
                            if c.config_id in world.edge.mounted}  # fmt: skip
