from typing import Any

from certbotless.model import FileReference, ObjectKind
from certbotless.rollout import (
    edge_job_template,
    rolls_start_first_with_rollback,
    stuck_update,
    swap_references,
)

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
