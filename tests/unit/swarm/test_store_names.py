import re
from datetime import UTC, datetime

import pytest

from certbotless.swarm.store import MAX_OBJECT_NAME, nginx_conf_name, object_name

SWARM_NAME = re.compile(r"^[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?$")
NOW = datetime(2026, 11, 22, 15, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    "cert_name",
    [
        "a.io",
        "app.example.test",
        "xn--bcher-kva.example",
        "a-very-long-label-that-goes-on-and-on.and-another-long-label.example.co.uk",
        "x" * 63 + "." + "y" * 63 + ".example.com",
        "My Shop (EU)!",  # `issue --name` is checked, but the store must not trust its callers
    ],
)
def test_object_names_are_legal_unique_and_time_sortable(cert_name: str) -> None:
    first = object_name(cert_name, NOW)
    second = object_name(cert_name, NOW)
    later = object_name(cert_name, NOW.replace(minute=5))
    assert len(first) <= MAX_OBJECT_NAME
    assert SWARM_NAME.match(first)
    assert first != second
    assert first[:-6] < later[:-6]


def test_long_names_keep_a_hash_so_different_domains_do_not_collide() -> None:
    base = "a" * 60 + ".example."
    assert object_name(base + "com", NOW)[:-6] != object_name(base + "org", NOW)[:-6]


def test_names_swarm_refuses_are_replaced_and_keep_a_hash() -> None:
    cleaned = object_name("shop eu", NOW)
    assert SWARM_NAME.match(cleaned) and " " not in cleaned
    assert cleaned[:-6] != object_name("shop-eu", NOW)[:-6], "no collision with the clean name"


def test_nginx_conf_names_are_content_addressed() -> None:
    assert nginx_conf_name("a") == nginx_conf_name("a")
    assert nginx_conf_name("a") != nginx_conf_name("b")
    assert SWARM_NAME.match(nginx_conf_name("a"))
