"""The upstream the labels' real-nginx tests proxy to (tests/support/edge_nginx.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.edge_nginx import echo_upstream


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    """The echo upstream's port."""
    with echo_upstream() as port:
        yield port
