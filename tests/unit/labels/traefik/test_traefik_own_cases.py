"""Traefik's own test cases (tests/traefik_cases/, from Traefik's test files; MIT, see the README
there) as certbotless's acceptance suite: each case's labels go through discovery and rendering,
a real nginx on loopback answers its requests, and each case BEHAVES as in Traefik, is REFUSED
with a LabelProblem, or is SILENT, accepted but different. A silent case fails the suite unless
tests/traefik_cases/known_silent.json lists it, and a listed case that is no longer silent fails
it too, so the list only shrinks. docs/traefik-labels.md carries the counts.

The verdicts are those of the edge image's nginx generation (nginx:stable; here the rig's
unpacked Debian forky, nginx 1.30). The cases are also run on this machine's Debian bookworm
nginx 1.22, for operators who bring their own: where it answers otherwise, the difference must be
the one documented in tests/traefik_cases/nginx_1_22_differences.json."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.edge_nginx import LOCAL_NGINX, NginxBinary, echo_servers
from tests.support.traefik_cases import (
    CASES_DIR,
    Outcome,
    Verdict,
    case_files,
    cases_page,
    counts_lines,
)
from tests.support.traefik_middleware_cases import case_outcome

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None, reason="needs nginx")
DOCS = Path(__file__).resolve().parents[4] / "docs" / "traefik-labels.md"
CASES_PAGE = DOCS.with_name("traefik-cases.md")
MAX_ROUTERS = 6  # routers (or Traefik services) in one case, at most: each has an echo server


def _run_every_case(scratch: Path, binary: NginxBinary) -> list[Outcome]:
    jobs = [(file, index, case) for file in case_files()
            for index, case in enumerate(file.cases)]  # fmt: skip
    with echo_servers(MAX_ROUTERS) as ports, ThreadPoolExecutor(8) as pool:
        return list(pool.map(
            lambda job: case_outcome(job[0], job[2], ports,
                                     scratch / f"{job[0].stem}-{job[1]}", binary),
            jobs,
        ))  # fmt: skip


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory, rig_env: dict[str, str]) -> list[Outcome]:
    """On the edge image's nginx generation."""
    root = Path(rig_env.get("CBL_NGINX_NEWEST_ROOT", ""))
    if not (root / "usr/sbin/nginx").is_file():
        pytest.fail(f"no nginx >= 1.27.3 root at {root} (`python3 -m rig up` unpacks one)")
    return _run_every_case(tmp_path_factory.mktemp("traefik-cases"), NginxBinary(root))


def test_bookworms_nginx_differs_only_where_documented(
    outcomes: list[Outcome], tmp_path_factory: pytest.TempPathFactory
) -> None:
    on_bookworm = _run_every_case(tmp_path_factory.mktemp("traefik-cases-1.22"), LOCAL_NGINX)
    edge = {o.case_id: o.verdict for o in outcomes}
    differing = {o.case_id for o in on_bookworm if o.verdict is not edge[o.case_id]}
    documented = json.loads((CASES_DIR / "nginx_1_22_differences.json").read_text())
    assert differing == {entry["id"] for entry in documented}


def _known_silent() -> dict[str, str]:
    entries = json.loads((CASES_DIR / "known_silent.json").read_text())
    return {entry["id"]: entry["differs"] for entry in entries}


def test_every_case_has_a_verdict(outcomes: list[Outcome]) -> None:
    assert len(outcomes) == sum(len(file.cases) for file in case_files())
    assert len({outcome.case_id for outcome in outcomes}) == len(outcomes)


def test_no_silent_difference_beyond_the_known_ones(outcomes: list[Outcome]) -> None:
    silent = {o.case_id: o.detail for o in outcomes if o.verdict is Verdict.SILENT}
    new = {case: detail for case, detail in silent.items() if case not in _known_silent()}
    assert new == {}, "\n".join(f"{case}: {detail}" for case, detail in new.items())


def test_known_silent_cases_are_still_silent(outcomes: list[Outcome]) -> None:
    """When a difference is fixed, its entry leaves known_silent.json."""
    verdicts = {o.case_id: o.verdict for o in outcomes}
    fixed = [case for case in _known_silent() if verdicts.get(case) is not Verdict.SILENT]
    assert fixed == [], f"no longer silent (remove from known_silent.json): {fixed}"


def test_the_docs_carry_the_current_counts(
    outcomes: list[Outcome], figure: Callable[[str], None]
) -> None:
    table = counts_lines(outcomes)
    for line in table.splitlines():
        figure(f"Traefik's own test cases: {line}")
    assert table in DOCS.read_text(), f"docs/traefik-labels.md must carry:\n{table}"


def test_the_cases_page_lists_every_verdict(outcomes: list[Outcome]) -> None:
    """docs/traefik-cases.md: every case with its verdict and certbotless's words, generated
    from this run (regenerate with CERTBOTLESS_UPDATE_CASES=1 and review the diff)."""
    page = cases_page(outcomes)
    if os.environ.get("CERTBOTLESS_UPDATE_CASES") == "1":
        CASES_PAGE.write_text(page)
    assert CASES_PAGE.read_text() == page, "regenerate: CERTBOTLESS_UPDATE_CASES=1 pytest …"
