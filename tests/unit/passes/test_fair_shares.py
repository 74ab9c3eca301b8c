"""Each claimant's share of the CA's orders (issue 25, item 10): a stack that labels 300 names
that do not resolve has its orders capped, and failing ones count against itself, while another
stack's new certificate is ordered in the same pass (on main: deferred about 3 hours, as the
hostile orders used the whole account's 300 per 3 h)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from certbotless.acme.errors import ValidationFailed
from certbotless.model import FailureReason, PassReport, PassRequest, PastOrder, ServiceInfo
from certbotless.passes.budget import claimant_use
from certbotless.passes.reconcile import Reconciler
from certbotless.setting_values import OrderShare
from certbotless.settings import LETSENCRYPT_PRODUCTION, Settings
from certbotless.swarm.status import past_orders_from_json, past_orders_to_json
from tests.support.fakes import SETTINGS, World

T0 = datetime(2026, 1, 1, tzinfo=UTC)
QUIET = PassRequest(progress=lambda line: None)
HOSTILE_NAMES = 300
CAP = SETTINGS.order_share.orders or 0


def service(name: str, labels: dict[str, str], minute: int, stack: str = "") -> ServiceInfo:
    return ServiceInfo(name, labels, ("net",), ("certbotless-edge",), stack=stack,
                       created_at=T0 + timedelta(minutes=minute), id=f"id-{name}")  # fmt: skip


def hostile() -> ServiceInfo:
    """Created first, so that its certificates come first in plan order; it says it is of
    stack `shop`, which decides nothing."""
    labels = {f"certbotless.certificate.n{i}": f"www.n{i}.example"
              for i in range(HOSTILE_NAMES)}  # fmt: skip
    return service("evil_app", labels, 0, stack="shop")


def shop(name: str = "shop_api", host: str = "shop.example.com") -> ServiceInfo:
    labels = {"certbotless.domains": host, "certbotless.port": "8000"}
    return service(name, labels, 5, stack="shop")


def world_with_hostile() -> World:
    world = World()
    world.add_edge()
    world.issuer.directory_url = LETSENCRYPT_PRODUCTION  # the account's limits apply too
    world.issuer.failing = {f"n{i}": ValidationFailed(f"n{i}: NXDOMAIN")
                            for i in range(HOSTILE_NAMES)}  # fmt: skip
    world.services.listed += [hostile(), shop()]
    return world


def run(world: World, settings: Settings = SETTINGS) -> PassReport:
    return Reconciler(settings, world.parts()).run_pass(QUIET)


def hostile_orders(world: World) -> int:
    return sum(1 for name in world.issuer.ordered if name.startswith("n"))


def test_the_hostile_stack_is_capped_and_the_other_is_ordered_in_the_same_pass(figure) -> None:  # type: ignore[no-untyped-def]
    world = world_with_hostile()
    report = run(world)
    assert "shop.example.com" in report.issued
    assert hostile_orders(world) == CAP
    record = world.statuses.records["n299"]
    assert record.reason is FailureReason.OVER_BUDGET
    assert "service evil_app used 30 of its share of 30 orders in the last 3 h" in record.message
    assert "CERTBOTLESS_ORDERS_PER_CLAIMANT" in record.message
    placed = hostile_orders(world)
    figure(f"fair shares: {HOSTILE_NAMES} failing names of one service vs one of another: "
           f"{placed} hostile orders placed, the other ordered in the same pass")  # fmt: skip
    # Its failures count 3 times: an hour later (past their back-off) it places no order, and a
    # third stack's new certificate is ordered at once.
    world.wait(timedelta(hours=1))
    world.orders.orders = [replace(o, at=o.at - timedelta(hours=1)) for o in world.orders.orders]
    world.services.listed.append(shop("blog_web", "blog.example.org"))
    before = hostile_orders(world)
    report = run(world)
    assert "blog.example.org" in report.issued and hostile_orders(world) == before
    use = {u.claimant: u for u in claimant_use(world.orders.orders, SETTINGS.order_share,
                                               datetime.now(UTC))}  # fmt: skip
    assert (use["service evil_app"].orders, use["service evil_app"].failed) == (CAP, CAP)
    assert use["service evil_app"].used == 3 * CAP and use["service shop_api"].used == 1


def test_a_forged_stack_label_spends_no_one_elses_share() -> None:
    """evil_app says it is of stack shop: the shares are per recorded claimant, so shop_api's
    orders fit whatever evil_app spent."""
    world = world_with_hostile()
    run(world)
    world.services.listed.append(shop("shop_web", "www.shop.example.com"))
    assert "www.shop.example.com" in run(world).issued


def test_shares_can_be_set_or_turned_off_and_the_history_keeps_claimants() -> None:
    world = world_with_hostile()
    run(world, replace(SETTINGS, order_share=OrderShare(5)))
    assert hostile_orders(world) == 5
    unlimited = world_with_hostile()
    run(unlimited, replace(SETTINGS, order_share=OrderShare(None)))
    assert hostile_orders(unlimited) == 299  # the account's 300 per 3 h, shop_api took its turn
    assert "shop.example.com" in unlimited.issuer.ordered
    order = PastOrder(T0, ("a.example",), False, claimant="service evil_app")
    assert past_orders_from_json(past_orders_to_json([order])) == [order]
    assert past_orders_from_json('[["2026-01-01T00:00:00+00:00", ["a"], true, false]]')[0] \
        .claimant == ""  # fmt: skip


def test_settings_read_the_share() -> None:
    env = {"CERTBOTLESS_ORDERS_PER_CLAIMANT": "10/30m", "CERTBOTLESS_FAILED_ORDER_WEIGHT": "5"}
    assert Settings.from_env(env).order_share == OrderShare(10, timedelta(minutes=30), 5)
    assert Settings.from_env({}).order_share == OrderShare(30, timedelta(hours=3), 3)
    off = Settings.from_env({"CERTBOTLESS_ORDERS_PER_CLAIMANT": "off"}).order_share
    assert off.orders is None
    for wrong in ("30", "0/3h", "30/8d", "x/1h"):
        try:
            Settings.from_env({"CERTBOTLESS_ORDERS_PER_CLAIMANT": wrong})
        except ValueError as error:
            assert "ORDERS/DURATION" in str(error)
        else:
            raise AssertionError(wrong)
