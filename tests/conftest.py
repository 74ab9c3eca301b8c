"""Shared fixtures: the rig's facts, Pebble's root, extra Pebbles; and skip = failure in CI."""

import os
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from certbotless.acme.challenges import TokenStore
from certbotless.acme.responder import ChallengeResponder
from rig.pebble import PebbleServer, current_pebble
from rig.state import read_env

IN_CI = os.environ.get("CI", "").lower() == "true"
_FIGURES: list[str] = []


@pytest.fixture(scope="session")
def figure() -> Callable[[str], None]:
    """Record a measured figure; all are printed at the end of the run."""
    return _FIGURES.append


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _FIGURES:
        terminalreporter.section("figures measured in this run")
        for line in _FIGURES:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def rig_env() -> dict[str, str]:
    try:
        return read_env()
    except FileNotFoundError as missing:
        if IN_CI:
            pytest.fail(f"the test rig is not up: {missing}")
        pytest.skip(f"the test rig is not up: {missing}")


@pytest.fixture(scope="session")
def pebble_root(rig_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """The rig Pebble's current root (it changes on every Pebble start)."""
    path = tmp_path_factory.mktemp("pebble") / "root.pem"
    path.write_text(current_pebble(rig_env).root_pem())
    return str(path)


ACME_TEST_HTTP_PORT = 5002


def loopback_pebble(rig_env: dict[str, str], name: str, port: int, **options: Any) -> PebbleServer:
    """A Pebble of the tests' own on loopback, validating HTTP-01 on ACME_TEST_HTTP_PORT, where
    the `acme_tokens` responder answers: no edge needed, no collision with the swarm tests'
    nginx on port 80."""
    return PebbleServer(
        name,
        host="127.0.0.1",
        ca_bundle=Path(rig_env["CBL_RIG_CA_BUNDLE"]),
        port=port,
        management_port=port + 1000,
        http_port=ACME_TEST_HTTP_PORT,
        **options,
    )


@pytest.fixture(scope="session")
def acme_tokens(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenStore]:
    """The token store behind the one HTTP-01 responder every test Pebble validates against."""
    tokens = TokenStore(tmp_path_factory.mktemp("challenges"))
    responder = ChallengeResponder(tokens, "127.0.0.1", ACME_TEST_HTTP_PORT)
    responder.start()
    yield tokens
    responder.stop()


@pytest.fixture(scope="session")
def pebble_for_acme(rig_env: dict[str, str]) -> Iterator[PebbleServer]:
    pebble = loopback_pebble(rig_env, "pebble-acme-tests", 14100)
    pebble.start()
    yield pebble
    pebble.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if IN_CI and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which counts as a failure: {report.longrepr}"
