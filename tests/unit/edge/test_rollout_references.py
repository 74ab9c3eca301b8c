from typing import Any

import pytest

from certbotless.edge.rollout import (
    RolledBack,
    edge_job_template,
    roll_service,
    rolls_start_first_with_rollback,
    stuck_update,
    swap_references,
)
from certbotless.model import FileReference, ObjectKind

CURRENT = [
    {
        "SecretID": "old",
        "SecretName": "cbl-app.example.test-1",
        "File": {
            "Name": "/etc/nginx/certs/app.example.test/privkey.pem",
            "UID": "101",
            "GID": "101",
            "Mode": 0o400,
        },
    },
    {
        "SecretID": "gone",
        "SecretName": "cbl-removed.example.test-1",
        "File": {
            "Name": "/etc/nginx/certs/removed.example.test/privkey.pem",
            "UID": "0",
            "GID": "0",
            "Mode": 0o400,
        },
    },
    {
        "SecretID": "theirs",
        "SecretName": "htpasswd",
        "File": {"Name": "/etc/nginx/htpasswd", "UID": "0", "GID": "0", "Mode": 0o444},
    },
]


def test_swap_keeps_owner_drops_stale_and_leaves_unrelated_alone() -> None:
    wanted = [
        FileReference(
            ObjectKind.SECRET,
            "new",
            "cbl-app.example.test-2",
            "/etc/nginx/certs/app.example.test/privkey.pem",
            0o400,
        ),
        FileReference(ObjectKind.CONFIG, "conf", "cbl-nginx-1", "/etc/nginx/nginx.conf", 0o444),
    ]
    swapped = swap_references(CURRENT, wanted, ObjectKind.SECRET)
    assert [r["SecretName"] for r in swapped] == ["cbl-app.example.test-2", "htpasswd"]
    assert swapped[0]["File"] == {
        "Name": "/etc/nginx/certs/app.example.test/privkey.pem",
        "UID": "101",
        "GID": "101",
        "Mode": 0o400,
    }
    assert swapped[1] is CURRENT[2]


EDGE: dict[str, Any] = {
    "Spec": {
        "Name": "edge_nginx",
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "nginx:stable@sha256:abc",
                "Args": ["-g", "daemon off;"],
                "User": "nginx",
                "Mounts": [{"Type": "bind", "Source": "/srv/includes", "Target": "/inc"}],
                "Healthcheck": {"Test": ["CMD", "true"]},
                "Secrets": CURRENT,
            },
            "Placement": {"Constraints": ["node.role == manager"]},
            "Networks": [{"Target": "overlay1", "Aliases": ["nginx"]}],
            "RestartPolicy": {"Condition": "any"},
        },
    },
    "UpdateStatus": {"State": "completed"},
}


def test_jobs_in_the_edge_image_run_where_and_as_the_edge_does() -> None:
    key = FileReference(ObjectKind.SECRET, "new", "cbl-app.example.test-2",
                        "/etc/nginx/certs/app.example.test/privkey.pem", 0o400)  # fmt: skip
    job = edge_job_template(EDGE, ["nginx", "-t"], [key])
    container = job["ContainerSpec"]
    assert container["Command"] == ["nginx", "-t"] and "Args" not in container
    assert container["User"] == "nginx"
    assert container["Mounts"] == [{"Type": "bind", "Source": "/srv/includes", "Target": "/inc"}]
    assert "Healthcheck" not in container, "a health check would hold the job back"
    assert job["Placement"] == {"Constraints": ["node.role == manager"]}
    # Joined to the edge's networks (upstream names resolve), but never under its alias.
    assert job["Networks"] == [{"Target": "overlay1"}]
    assert {s["SecretID"] for s in container["Secrets"]} == {"new", "theirs"}
    assert EDGE["Spec"]["TaskTemplate"]["Networks"][0]["Aliases"] == ["nginx"], "not mutated"


def test_an_update_swarm_paused_is_reported() -> None:
    assert stuck_update(EDGE) is None
    paused = {**EDGE, "UpdateStatus": {"State": "paused", "Message": "update paused"}}
    problem = stuck_update(paused)
    assert problem is not None and "paused" in problem and "--rollback edge_nginx" in problem


def test_only_start_first_with_rollback_rolls_without_risk() -> None:
    def service(order: str, action: str) -> dict[str, Any]:
        return {"Spec": {"UpdateConfig": {"Order": order, "FailureAction": action}}}

    assert rolls_start_first_with_rollback(service("start-first", "rollback"))
    assert not rolls_start_first_with_rollback(service("stop-first", "rollback"))
    assert not rolls_start_first_with_rollback(service("start-first", "pause"))
    assert not rolls_start_first_with_rollback({"Spec": {}})


class RollingBackSwarm:
    """The three calls roll_service makes, answered as Swarm does when it rolls the update
    back: the service right after a `docker stack deploy` (its spec names no certificate, its
    previous spec the ones that served)."""

    def __init__(self, previous_chain: str) -> None:
        chain = {"ConfigID": previous_chain, "ConfigName": "cbl-a-1",
                 "File": {"Name": "/etc/nginx/certs/a.example.test/fullchain.pem"}}  # fmt: skip
        self.service: dict[str, Any] = {
            "ID": "nginx-id",
            "Version": {"Index": 1},
            "Spec": {"Name": "edge_nginx", "TaskTemplate": {"ContainerSpec": {"Image": "n"}}},
            "PreviousSpec": {"Name": "edge_nginx",
                             "TaskTemplate": {"ContainerSpec": {"Configs": [chain]}}},
        }  # fmt: skip
        self.updated = False
        self.posted: dict[str, Any] = {}

    def inspect_service(self, name: str) -> dict[str, Any]:
        if self.updated:
            return {**self.service, "UpdateStatus": {"State": "rollback_completed"}}
        return self.service

    def update_service(self, service: dict[str, Any], spec: dict[str, Any]) -> None:
        self.updated = True
        self.posted = spec

    def tasks(self, service_id: str) -> list[dict[str, Any]]:
        return []


def test_a_rollback_after_a_stack_deploy_refuses_only_the_new_chains() -> None:
    """Issue 14, item 11: `docker stack deploy` dropped every reference; Swarm then rolls back
    the roll that mounts them again plus one new chain. Only the new chain is refused: the
    others served under the previous spec."""
    wanted = [
        FileReference(ObjectKind.CONFIG, "chain-a", "cbl-a-1",
                      "/etc/nginx/certs/a.example.test/fullchain.pem", 0o444,
                      serves=(("a.example.test",), "aa")),
        FileReference(ObjectKind.CONFIG, "chain-b", "cbl-b-1",
                      "/etc/nginx/certs/b.example.test/fullchain.pem", 0o444,
                      serves=(("b.example.test",), "bb")),
    ]  # fmt: skip
    swarm = RollingBackSwarm(previous_chain="chain-a")
    with pytest.raises(RolledBack) as refused:
        roll_service(swarm, "edge_nginx", wanted, timeout=5)  # type: ignore[arg-type]
    assert refused.value.rotated == ("chain-b",)


def test_a_roll_goes_on_without_the_stack_files_delay() -> None:
    """The stack file's delay paces the roll a `docker stack deploy` makes to its bootstrap
    spec (stacks/edge.yml); certbotless's roll, which supersedes it, keeps the rest."""
    wanted = [
        FileReference(ObjectKind.CONFIG, "conf", "cbl-nginx-1", "/etc/nginx/nginx.conf", 0o444)
    ]
    swarm = RollingBackSwarm(previous_chain="chain-a")
    update = {"Parallelism": 1, "Delay": 20_000_000_000, "Order": "start-first"}
    swarm.service["Spec"]["UpdateConfig"] = update
    with pytest.raises(RolledBack):
        roll_service(swarm, "edge_nginx", wanted, timeout=5)  # type: ignore[arg-type]
    assert swarm.posted["UpdateConfig"] == {"Parallelism": 1, "Order": "start-first"}
    assert update["Delay"] == 20_000_000_000  # the service as read stays as it was
