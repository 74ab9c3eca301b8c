"""gc of the configs a release's stack file made (issue 26, item 2): an earlier version of
stacks/edge.yml's HAProxy configuration goes once no service mounts it; never one a service's
current or previous spec mounts, never one a deploy under way may be about to mount, and never
an object outside certbotless's reserved names and label."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from certbotless.model import ObjectKind, ObjectRole, StoredObject
from certbotless.swarm.api import Swarm
from certbotless.swarm.store import CertStore, plan_garbage

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
OLD = "2026-12-01T10:00:00.123456789Z"


def stack_file(object_id: str, name: str, created: str = OLD) -> StoredObject:
    return StoredObject(ObjectKind.CONFIG, object_id, name, created, ObjectRole.STACK_FILE)


def removed(objects: list[StoredObject], referenced: set[str]) -> set[str]:
    return {r.target.object_id for r in plan_garbage([], objects, referenced, set(), NOW, 3,
                                                     timedelta(0))}  # fmt: skip


def test_an_unmounted_earlier_version_goes_and_mounted_ones_stay() -> None:
    objects = [
        stack_file("v1", "certbotless_front_haproxy_cfg_0123abcd"),
        stack_file("v2", "certbotless_front_haproxy_cfg_4567ef01"),  # a service's previous spec
        stack_file("v3", "certbotless_front_haproxy_cfg_89abcdef"),  # its current spec
    ]
    assert removed(objects, {"v2", "v3"}) == {"v1"}
    assert removed(objects, {"v1", "v2", "v3"}) == set()


def test_a_config_a_deploy_just_made_is_not_removed() -> None:
    """`docker stack deploy` creates configs before it updates the services."""
    young = (NOW - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    unknown = ""  # no creation time: keep it
    objects = [stack_file("new", "certbotless_front_haproxy_cfg_0123abcd", young),
               stack_file("odd", "certbotless_front_haproxy_cfg_4567ef01", unknown)]  # fmt: skip
    assert removed(objects, set()) == set()


def test_only_the_reserved_names_go() -> None:
    objects = [
        stack_file("app", "shop_front_haproxy_cfg_0123abcd"),
        stack_file("unhashed", "certbotless_front_haproxy_cfg"),
        stack_file("ours", "certbotless_docker_api_proxy_cfg_2df4b9ae"),
    ]
    assert removed(objects, set()) == {"ours"}


class ListingSwarm:
    """Configs and secrets as the Docker API lists them by label."""

    def __init__(self, configs: list[dict[str, Any]], secrets: list[dict[str, Any]]) -> None:
        self.listed = {"configs": configs, "secrets": secrets}

    def configs(self, label_filter: str) -> list[dict[str, Any]]:
        return self._matching("configs", label_filter)

    def secrets(self, label_filter: str) -> list[dict[str, Any]]:
        return self._matching("secrets", label_filter)

    def _matching(self, kind: str, label_filter: str) -> list[dict[str, Any]]:
        key, _, value = label_filter.partition("=")
        return [item for item in self.listed[kind] if item["Spec"]["Labels"].get(key) == value]


def item(object_id: str, name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"ID": object_id, "CreatedAt": OLD, "Spec": {"Name": name, "Labels": labels}}


def test_the_store_lists_labelled_stack_files_under_reserved_names_only() -> None:
    label = {"certbotless.kind": "stack-file", "com.docker.stack.namespace": "edge"}
    swarm = ListingSwarm(
        configs=[
            item("c1", "certbotless_front_haproxy_cfg_0123abcd", label),
            item("c2", "edge_front_haproxy_cfg", label),  # labelled, but not a reserved name
            item("c3", "certbotless_x_cfg_0123abcd", {"com.docker.stack.namespace": "edge"}),
        ],
        secrets=[item("s1", "certbotless_htpasswd_89abcdef", label)],
    )
    listed = CertStore(cast(Swarm, swarm)).collectable_objects()
    assert {(o.object_id, o.kind, o.role) for o in listed} == {
        ("c1", ObjectKind.CONFIG, ObjectRole.STACK_FILE),
        ("s1", ObjectKind.SECRET, ObjectRole.STACK_FILE),
    }
