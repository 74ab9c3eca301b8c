from certbotless.model import FileReference
from certbotless.rollout import swap_references

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
            "secret",
            "new",
            "cbl-app.example.test-2",
            "/etc/nginx/certs/app.example.test/privkey.pem",
            0o400,
        ),
        FileReference("config", "conf", "cbl-nginx-1", "/etc/nginx/nginx.conf", 0o444),
    ]
    swapped = swap_references(CURRENT, wanted, "secret")
    assert [r["SecretName"] for r in swapped] == ["cbl-app.example.test-2", "htpasswd"]
    assert swapped[0]["File"] == {
        "Name": "/etc/nginx/certs/app.example.test/privkey.pem",
        "UID": "101",
        "GID": "101",
        "Mode": 0o400,
    }
    assert swapped[1] is CURRENT[2]
