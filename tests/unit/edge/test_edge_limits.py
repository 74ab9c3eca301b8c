"""Limits nginx and Swarm have that labels do not know (issue 14, item 3): every hostname DNS
allows, configurations larger than one Swarm config, and label values nginx cannot read."""

import copy
import time
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from certbotless.edge.deployer import SwarmEdgeDeployer
from certbotless.edge.mounts import HOSTS_DIR, LOCATIONS_DIR, NGINX_CONF_TARGET
from certbotless.edge.nginx_version import DEFAULT_NGINX_VERSION
from certbotless.edge.render import MAX_FILE_BYTES, files_listing, render_nginx_conf
from certbotless.edge.validation import validate_nginx_conf
from certbotless.labels.native import PATH
from certbotless.labels.settle import discover
from certbotless.model import ErrorPages, ObjectKind, ObjectRole, Route, ServiceInfo, StoredObject
from certbotless.passes.deploying import deploy_edge
from certbotless.settings import Settings
from certbotless.swarm.api import APIError, Swarm
from certbotless.swarm.store import CertStore, nginx_conf_name, plan_garbage
from tests.support.factories import CERTS_DIR, RESPONDER, certs_for, stored_cert
from tests.support.fakes import FakeStore

# The longest name DNS allows: 253 characters, labels of 63.
LONGEST = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 56, "test"])
ROUTES_AT_SCALE = 5_000


def longest_name(index: int) -> str:
    return f"{index:04d}{LONGEST[4:]}"


def test_the_longest_names_dns_allows_pass_nginx_t_without_warnings() -> None:
    """nginx's default hash bucket (128) holds names of up to 110 characters: a 111-character
    name failed `nginx -t`, and so every roll for every service."""
    assert len(LONGEST) == 253 and max(len(label) for label in LONGEST.split(".")) == 63
    hosts = [longest_name(i) for i in range(40)] + ["a.example.test", "b" * 111 + ".test"]
    routes = [Route(f"app{i}", (host,), 8000) for i, host in enumerate(hosts)]
    files = render_nginx_conf(routes, certs_for(*hosts), RESPONDER, CERTS_DIR)
    assert validate_nginx_conf(files) == ()


def test_many_long_names_pass_nginx_t_without_warnings() -> None:
    hosts = [longest_name(i) for i in range(2_000)]
    routes = [Route("app", tuple(hosts[i : i + 10]), 8000) for i in range(0, len(hosts), 10)]
    assert validate_nginx_conf(render_nginx_conf(routes, {}, RESPONDER, CERTS_DIR)) == ()


def routes_at_scale(count: int = ROUTES_AT_SCALE) -> list[Route]:
    """`count` routes of 500 stacks: half at / and half under a path, every second with
    forward auth; 2,500 hosts, each with its certificate."""
    routes = []
    for i in range(count):
        host = f"app-{i // 2}.stack-{i // 2 % 500}.example.test"
        routes.append(
            Route(
                f"stack{i % 500}_svc{i}",
                (host,),
                8000,
                path="/" if i % 2 else f"/api/v{i}",
                auth_url="http://auth:8000/check" if i % 4 == 0 else None,
                error_pages=ErrorPages("http://errors:80/{status}.html", (404, 502))
                if i % 10 == 0
                else None,
            )
        )
    return routes


def test_5000_routes_render_into_files_swarm_accepts_and_pass_nginx_t(
    figure: Callable[[str], None],
) -> None:
    """One nginx.conf of 5,000 routes is about 6 MB, over Swarm's 500 KiB per config: Docker
    refused it (an APIError that also skipped gc)."""
    routes = routes_at_scale()
    hosts = sorted({host for route in routes for host in route.hosts})
    certs = {host: stored_cert(name=host, domains=(host,)) for host in hosts}
    started = time.monotonic()
    files = render_nginx_conf(routes, certs, RESPONDER, CERTS_DIR)
    rendered = time.monotonic()
    assert validate_nginx_conf(files) == ()
    validated = time.monotonic()
    sizes = [len(text.encode()) for text in files.values()]
    assert max(sizes) <= MAX_FILE_BYTES < 500 * 1024
    assert sum(sizes) > 4 * MAX_FILE_BYTES, "large enough to need splitting"
    assert len(files) <= 257, "a few hundred config references, not one per host"
    figure(
        f"{len(routes)} routes, {len(hosts)} hosts: {len(files)} files, "
        f"{sum(sizes) / 1e6:.1f} MB, largest {max(sizes) / 1024:.0f} KiB; "
        f"render {rendered - started:.2f} s, nginx -t {validated - rendered:.1f} s"
    )


def test_a_change_to_one_host_changes_one_file() -> None:
    routes = routes_at_scale(400)
    certs = certs_for(*{host for route in routes for host in route.hosts})
    before = render_nginx_conf(routes, certs, RESPONDER, CERTS_DIR)
    changed = [*routes[:-1], Route("stack399_svc399", routes[-1].hosts, 9000, path="/")]
    after = render_nginx_conf(changed, certs, RESPONDER, CERTS_DIR)
    assert set(before) == set(after)
    assert [target for target in before if before[target] != after[target]] == [
        next(target for target, text in after.items() if "stack399_svc399:9000" in text)
    ]


def test_a_host_too_large_for_one_config_has_its_locations_in_several() -> None:
    host = "big.example.test"
    routes = [Route(f"svc{i}", (host,), 8000, path=f"/p{i}", redirect_to_https=False)
              for i in range(60)]  # fmt: skip
    routes.append(Route("small", ("small.example.test",), 8000))
    files = render_nginx_conf(
        routes, certs_for(host, "small.example.test"), RESPONDER, CERTS_DIR, max_file_bytes=8000
    )
    assert max(len(text.encode()) for text in files.values()) <= 8000
    parts = [target for target in files if target.startswith(f"{LOCATIONS_DIR}/{host}-")]
    ports = {target.removeprefix(f"{LOCATIONS_DIR}/{host}-").split("-")[0] for target in parts}
    assert ports == {"80", "443"} and len(parts) > 4
    assert any("-maps-" in target for target in parts)  # its routing maps are split too
    server_file = files[f"{HOSTS_DIR}/{host}.conf"]
    assert all(f"include {target};" in server_file for target in parts)
    assert validate_nginx_conf(files) == ()
    listing = files_listing(files)
    for i in range(60):
        assert listing.count(f"set $upstream http://svc{i}:8000;") == 2  # on both ports


def test_render_prints_every_file_under_a_header_naming_where_it_is_mounted() -> None:
    routes = [Route("a", ("a.example.test",), 80), Route("b", ("b.example.test",), 80)]
    files = render_nginx_conf(routes, {}, RESPONDER, CERTS_DIR)
    listing = files_listing(files)
    assert listing.startswith(f"# --- {NGINX_CONF_TARGET}\n")
    assert f"include {HOSTS_DIR}/*.conf;" in files[NGINX_CONF_TARGET]
    for target, text in files.items():
        assert f"# --- {target}\n{text}" in listing


def service(name: str, **labels: str) -> ServiceInfo:
    return ServiceInfo(name, {"certbotless.port": "8000", **labels})


def test_a_label_nginx_cannot_read_is_a_problem_of_its_service_alone() -> None:
    """A path of 5,000 characters passed discovery and failed `nginx -t` ("too long
    parameter"), stopping every roll."""
    long_path = "/" + "p" * 5_000
    found = discover(
        [
            service("long", **{"certbotless.domains": "a.example.test", PATH: long_path}),
            service("long_auth", **{"certbotless.domains": "b.example.test",
                    "certbotless.auth_url": "http://auth:8000/" + "x" * 5_000}),
            service("fine", **{"certbotless.domains": "a.example.test", PATH: "/ok"}),
        ]
    )  # fmt: skip
    assert [route.service for route in found.routes] == ["fine"]
    assert [(p.service, p.label) for p in found.problems] == [
        ("long", PATH),
        ("long_auth", "certbotless.auth_url"),
    ]
    assert "at most 1024" in found.problems[0].message
    validate_nginx_conf(render_nginx_conf(found.routes, {}, RESPONDER, CERTS_DIR))


def test_gc_keeps_the_newest_versions_of_each_configuration_file() -> None:
    """With the configuration split, keeping the newest 3 nginx configs overall would remove
    files the current configuration still needs."""
    objects = [
        StoredObject(ObjectKind.CONFIG, f"{file}-{i}", f"cbl-nginx-{file}{i}",
                     f"2026-11-2{i}T00:00:0{index}Z", ObjectRole.NGINX_CONF, target)
        for index, (file, target) in enumerate(
            [("main", NGINX_CONF_TARGET), ("ab", f"{HOSTS_DIR}/ab.conf"),
             ("cd", f"{HOSTS_DIR}/cd.conf")]
        )
        for i in range(5)
    ]  # fmt: skip
    removals = plan_garbage([], objects, set(), set(), datetime.now(UTC), 3, timedelta(0))
    assert sorted(r.target.object_id for r in removals) == [
        "ab-0", "ab-1", "cd-0", "cd-1", "main-0", "main-1"
    ]  # fmt: skip
    assert f"{HOSTS_DIR}/ab.conf: older than the newest 3 versions" in {r.reason for r in removals}


class OneServiceSwarm:
    """The edge service alone: each update completes at once."""

    def __init__(self) -> None:
        self.service: dict[str, Any] = {
            "ID": "edge-id",
            "Spec": {
                "Name": "edge",
                "TaskTemplate": {"ContainerSpec": {"Image": "nginx:test", "Configs": []}},
                "UpdateConfig": {"Order": "start-first", "FailureAction": "rollback"},
            },
        }
        self.updates: list[dict[str, Any]] = []

    def inspect_service(self, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.service)

    def update_service(self, service: dict[str, Any], spec: dict[str, Any]) -> None:
        self.updates.append(spec)
        status = {"State": "completed", "StartedAt": str(len(self.updates))}
        self.service = {**self.service, "Spec": spec, "UpdateStatus": status}

    def tasks(self, service_id: str) -> list[dict[str, Any]]:
        return []


class ConfigStore:
    """Configs by content; `refuse` makes Swarm refuse the next one."""

    def __init__(self) -> None:
        self.made: dict[str, str] = {}
        self.texts: dict[str, str] = {}  # config name → its text
        self.refuse = False

    def ensure_nginx_confs(self, files: Mapping[str, str]) -> dict[str, tuple[str, str]]:
        if self.refuse:
            raise APIError("config data too large")
        made = {}
        for target, text in files.items():
            name = nginx_conf_name(text)
            self.made.setdefault(name, f"id-{name}")
            self.texts[name] = text
            made[target] = (name, self.made[name])
        return made

    def ensure_ticket_keys(self, today: date) -> list[tuple[str, str]]:
        return [(f"cbl-tls-ticket-key-{today:%Y%m%d}", "ticket-id")]


def deployer() -> tuple[SwarmEdgeDeployer, OneServiceSwarm, ConfigStore]:
    swarm, store = OneServiceSwarm(), ConfigStore()
    edge = SwarmEdgeDeployer(Settings(), cast(Swarm, swarm), cast(CertStore, store))
    edge._edge_nginx.versions["nginx:test"] = (
        DEFAULT_NGINX_VERSION,
        None,
    )  # no job to ask the image
    return edge, swarm, store


def mounted(spec: dict[str, Any]) -> dict[str, str]:
    configs = spec["TaskTemplate"]["ContainerSpec"]["Configs"]
    return {ref["File"]["Name"]: ref["ConfigName"] for ref in configs}


def test_the_edge_rolls_every_file_in_one_update_and_unchanged_files_keep_their_config() -> None:
    edge, swarm, _ = deployer()
    routes = routes_at_scale(600)
    edge.deploy("edge", routes, {}, [], lambda _: None)
    (first,) = swarm.updates
    assert len(mounted(first)) > 150 and NGINX_CONF_TARGET in mounted(first)
    plain = Route("stack99_svc599", routes[-1].hosts, 9000, redirect_to_https=False)
    changed = [*routes[:-1], plain]
    edge.deploy("edge", changed, {}, [], lambda _: None)
    _, second = swarm.updates
    assert set(mounted(second)) == set(mounted(first))
    assert len([t for t in mounted(first) if mounted(first)[t] != mounted(second)[t]]) == 1


def test_a_configuration_swarm_refuses_fails_the_roll_not_the_pass() -> None:
    """Docker's APIError (e.g. a config over its size limit) escaped the deploy step, so the
    pass ended without its status records and gc."""
    edge, swarm, store = deployer()
    store.refuse = True
    deployed = deploy_edge(edge, FakeStore(), "edge", routes_at_scale(10), {}, [], print)
    assert not deployed.done and "Swarm refused a file of the new configuration" in str(
        deployed.error
    )
    assert swarm.updates == []


def test_wildcard_hosts_pass_nginx_t_and_a_split_one_includes_only_its_own_files() -> None:
    """A host too large for one file gets files named after it, which nginx's `include` would
    read as a glob were the '*' kept: *.example.test's would take x.example.test's too."""
    paths = [f"/p{i:04d}-{'x' * 80}" for i in range(400)]
    hosts = ("*.example.test", "x.example.test")
    routes = [
        Route(f"app{i}", (host,), 8000, path=p) for host in hosts for i, p in enumerate(paths)
    ]
    certs = {"wildcard.example.test": stored_cert("wildcard.example.test", ("*.example.test",))}
    files = render_nginx_conf(routes, certs, RESPONDER, CERTS_DIR, max_file_bytes=200_000)
    assert not [target for target in files if "*" in target]
    assert any("_wildcard_.example.test" in target for target in files)
    assert validate_nginx_conf(files) == ()


def test_a_service_whose_part_of_the_configuration_fails_nginx_t_is_left_out_alone() -> None:
    """One service's fragment that nginx refuses (here a body size nginx cannot read, which
    labels would have refused) once failed `nginx -t` for the whole configuration: nothing
    rolled for anyone, renewed certificates included. Now only that service is left out."""
    edge, swarm, store = deployer()
    good = Route("shop_web", ("shop.example.test",), 8000)
    bad = Route(
        "other_web", ("other.example.test",), 8000, max_body_size="20q", redirect_to_https=False
    )  # served on port 80: no certificate here
    deployed = deploy_edge(edge, FakeStore(), "edge", [good, bad], {}, [], lambda _: None)
    assert deployed.done and deployed.rolled
    (problem,) = deployed.problems
    assert problem.service == "other_web" and "left out of the edge's nginx configuration" in (
        problem.message
    )
    assert 'invalid value "20q"' in problem.message or "20q" in problem.message
    (update,) = swarm.updates
    rolled = "".join(store.texts[name] for name in mounted(update).values())
    assert "shop.example.test" in rolled and "other.example.test" not in rolled
