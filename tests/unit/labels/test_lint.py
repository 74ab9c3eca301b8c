"""`certbotless lint`: compose files → the sidecar's own discovery, with no swarm and no daemon."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from certbotless import cli
from certbotless.labels.compose import (
    NO_DAEMON,
    ComposeError,
    StackFiles,
    interpolate,
    load_stack,
    parse_stack_argument,
    stack_config_from_files,
)
from certbotless.labels.lint import LintReport, lint
from certbotless.setting_values import dns01_grants
from certbotless.settings import Settings
from tests.support.paths import REPO

REPO = REPO
STACKS = REPO / "stacks"
DEMO_DNS01 = "demo-wildcard_*=wildcard.test"  # as stacks/test-dns01.yml sets it
APP_STACKS = [
    STACKS / "demo.yml",
    STACKS / "demo-wildcard.yml",
    STACKS / "seed-flask-api.yml",
    STACKS / "seed-nlp.yml",
]


@pytest.fixture(autouse=True)
def _no_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lint must never build the App (it reaches for Docker); the CLI path is faked below."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("lint built the App")

    monkeypatch.setattr(cli, "App", refuse)
    for name in ("CERTBOTLESS_NGINX_SERVICE", "CERTBOTLESS_NGINX_CONF", "LINT_HOST"):
        monkeypatch.delenv(name, raising=False)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def app_stack(host: str = "shop.example.com", labels: str = "", network: str = "edge") -> str:
    return f"""
services:
  web:
    image: web
    networks: [{network}]
    deploy:
      labels:
        certbotless.domains: {host}
        certbotless.port: "8000"
{labels}
networks:
  edge: {{external: true, name: certbotless-edge}}
  private: {{}}
"""


def linted(
    *arguments: str | Path, edge: str | None = None, settings: Settings | None = None
) -> LintReport:
    stacks = [parse_stack_argument(str(argument)) for argument in arguments]
    return lint(stacks, settings or Settings(), {}, docker=None, edge=edge)


def run_cli(capsys: pytest.CaptureFixture[str], *arguments: str | Path) -> tuple[int, str, str]:
    code = cli.main(["lint", "--no-docker-cli", *(str(a) for a in arguments)])
    out, err = capsys.readouterr()
    return code, out, err


def problems(report: LintReport) -> list[tuple[str, str]]:
    return [(p.service, p.label) for p in report.problems]


def test_the_repos_stacks_are_clean(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # As the demo's sidecar is set (stacks/test-dns01.yml): its wildcard is proven by DNS-01.
    monkeypatch.setenv("CERTBOTLESS_DNS01_ALLOWED", DEMO_DNS01)
    report = linted(
        f"edge={STACKS / 'edge.yml'}",
        *APP_STACKS,
        settings=Settings(dns01_allowed=dns01_grants(DEMO_DNS01, "DNS01_ALLOWED")),
    )
    assert report.ok, report.problems
    assert report.edge_linted  # so every app's network was checked against the edge's
    assert sorted(s.name for s in report.specs) == [
        "api.example.test", "app.example.test", "nlp.example.test", "wildcard.wildcard.test",
    ]  # fmt: skip
    routes = [route for service in report.services for route in service.routes]
    assert len(routes) == 9
    code, out, _ = run_cli(capsys, f"edge={STACKS / 'edge.yml'},{STACKS / 'edge-direct.yml'}",
                           *APP_STACKS)  # fmt: skip
    assert code == 0
    assert "api.example.test/service1 → port 8000" in out
    assert "0 problem(s)" in out


def test_a_bad_port_is_a_problem_of_its_service(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = write(tmp_path, "shop.yml", app_stack().replace('"8000"', '"http"'))
    report = linted(stack)
    assert problems(report) == [("shop_web", "certbotless.port")]
    assert "1 to 65535" in report.problems[0].message
    assert report.services[0].routes == ()
    code, out, _ = run_cli(capsys, stack)
    assert code == 1
    assert "PROBLEM label certbotless.port='http'" in out


def test_an_edge_label_outside_the_edges_stack_is_reported(tmp_path: Path) -> None:
    hostile = write(tmp_path, "hostile.yml", app_stack(labels='        certbotless.edge: "true"'))
    report = linted(f"edge={STACKS / 'edge.yml'}", hostile)
    assert problems(report) == [("hostile_web", "certbotless.edge")]
    assert "the edge is edge_nginx" in report.problems[0].message


def test_two_stacks_claiming_one_host_the_first_named_owns_it(tmp_path: Path) -> None:
    one = write(tmp_path, "one.yml", app_stack())
    two = write(tmp_path, "two.yml", app_stack())
    report = linted(one, two)
    assert problems(report) == [("two_web", "certbotless.domains")]
    assert "shop.example.com belongs to one_web, which claimed" in report.problems[0].message
    assert [r.service for s in report.services for r in s.routes] == ["one_web"]
    swapped = linted(two, one)
    assert problems(swapped) == [("one_web", "certbotless.domains")]
    more = write(tmp_path, "more.yml", app_stack(host="shop.example.com,www.shop.example.com"))
    (problem,) = linted(one, more).problems
    assert problem.service == "more_web"
    assert "shop.example.com belongs to one_web, which claimed" in problem.message


def test_labels_on_the_containers_instead_of_deploy_labels(tmp_path: Path) -> None:
    stack = write(
        tmp_path,
        "misplaced.yml",
        """
services:
  web:
    image: web
    labels:
      - certbotless.domains=shop.example.com
      - certbotless.port=8000
      - com.example.team=shop
""",
    )
    report = linted(stack)
    assert problems(report) == [
        ("misplaced_web", "certbotless.domains"), ("misplaced_web", "certbotless.port"),
    ]  # fmt: skip
    assert "move it under deploy: labels:" in report.problems[0].message
    assert report.specs == ()


def test_a_label_in_both_places_is_no_problem(tmp_path: Path) -> None:
    container = "    image: web\n    labels: {certbotless.port: 8000}"
    both = app_stack().replace("    image: web", container)
    assert linted(write(tmp_path, "both.yml", both)).ok


def test_a_service_sharing_no_network_with_the_edge(tmp_path: Path) -> None:
    stack = write(tmp_path, "lonely.yml", app_stack(network="private"))
    report = linted(f"edge={STACKS / 'edge.yml'}", stack)
    assert problems(report) == [("lonely_web", "networks")]
    assert report.problems[0].value == "lonely_private"
    assert "certbotless-edge" in report.problems[0].message


def test_yaml_syntax_error_and_missing_file_are_unreadable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = write(tmp_path, "broken.yml", "services:\n  web: [\n")
    code, out, err = run_cli(capsys, broken)
    assert (code, out) == (2, "")
    assert f"{broken}: is not valid YAML" in err and "line" in err
    code, _, err = run_cli(capsys, tmp_path / "missing.yml")
    assert code == 2
    assert "missing.yml: cannot be read: No such file or directory" in err
    assert cli.main(["lint", "--json", "--no-docker-cli", str(broken)]) == 2
    assert json.loads(capsys.readouterr().out)["ok"] is False
    no_services = write(tmp_path, "empty.yml", "version: '3.8'\n")
    assert run_cli(capsys, no_services)[0] == 2


def test_an_alias_bomb_and_deep_nesting_are_refused_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """602 bytes of aliases of aliases (9^9 values) kept `lint` busy until killed; 5,000
    nested lists ended in a bare RecursionError."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for this, previous in zip("bcdefghi", "abcdefgh", strict=True):
        lines.append(f"{this}: &{this} [{', '.join([f'*{previous}'] * 9)}]")
    lines.append("services:\n  web:\n    image: x\n    deploy:\n      labels: *i")
    bomb = write(tmp_path, "bomb.yml", "\n".join(lines) + "\n")
    code, _, err = run_cli(capsys, bomb)
    assert code == 2 and "expands to more than 1,000,000 values through YAML aliases" in err
    deep = write(tmp_path, "deep.yml", "services:\n  web:\n    labels: " + "[" * 5000 + "]" * 5000)
    code, _, err = run_cli(capsys, deep)
    assert code == 2 and "nests deeper than certbotless reads" in err


def test_two_stacks_of_one_name_are_refused(tmp_path: Path) -> None:
    one = write(tmp_path, "one.yml", app_stack())
    with pytest.raises(ComposeError, match="two stacks are named one"):
        linted(one, f"one={one}")


def test_stack_arguments() -> None:
    assert parse_stack_argument("stacks/demo.yml") == StackFiles("demo", (Path("stacks/demo.yml"),))
    assert parse_stack_argument("edge=a.yml,b.yml") == StackFiles(
        "edge", (Path("a.yml"), Path("b.yml"))
    )
    with pytest.raises(ComposeError, match="not a stack name"):
        parse_stack_argument("-x=a.yml")


def test_files_merge_in_order_and_interpolate(tmp_path: Path) -> None:
    base = write(tmp_path, "base.yml", app_stack(host="${LINT_HOST:-default.example.com}"))
    override = write(
        tmp_path,
        "override.yml",
        "services:\n  web:\n    deploy:\n      labels: [certbotless.port=9000]\n",
    )
    report = linted(f"{base},{override}")
    (route,) = report.services[0].routes
    assert (route.hosts, route.port) == (("default.example.com",), 9000)
    stack = load_stack(parse_stack_argument(str(base)), {"LINT_HOST": "x.example.com"})
    assert stack.config["services"]["web"]["deploy"]["labels"]["certbotless.domains"] == (
        "x.example.com"
    )


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("$$HOME ${A}", {"A": "a"}, "$HOME a"),
        ("$A-${B:-b}", {"A": "a"}, "a-b"),
        ("${B:-${A}x}", {"A": "a"}, "ax"),
        ("${E:-d}|${E-d}", {"E": ""}, "d|"),
        ("${A:+alt}|${U:+alt}", {"A": "a"}, "alt|"),
        ("${U}", {}, ""),
    ],
)
def test_interpolation_as_compose_does_it(text: str, env: dict[str, str], expected: str) -> None:
    assert interpolate(text, env, "f.yml", []) == expected


def test_interpolation_errors_and_notes(tmp_path: Path) -> None:
    notes: list[str] = []
    interpolate("${UNSET}", {}, "f.yml", notes)
    assert notes == ["f.yml: the UNSET variable is not set, so it is blank"]
    with pytest.raises(ComposeError, match="required variable REQ is missing: set it"):
        interpolate("${REQ:?set it}", {}, "f.yml", [])
    with pytest.raises(ComposeError, match="use \\$\\$ for a \\$"):
        interpolate("50$ off", {}, "f.yml", [])
    with pytest.raises(ComposeError, match="never closed"):
        interpolate("${A", {}, "f.yml", [])
    stack = write(tmp_path, "req.yml", app_stack(host="${REQ:?set REQ}"))
    with pytest.raises(ComposeError, match=r"req\.yml: required variable REQ"):
        stack_config_from_files([stack], {})


class FakeDocker:
    """`docker stack config` as a runner: records each command, answers as told."""

    def __init__(self, returncode: int = 0, stdout: str = "", stderr: str = "") -> None:
        self.calls: list[list[str]] = []
        self.answer = (returncode, stdout, stderr)

    def __call__(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(argv))
        return subprocess.CompletedProcess(list(argv), *self.answer)


# What `docker stack config -c stacks/demo.yml` printed here (Docker CLI 28.2.2).
DOCKER_DEMO = """version: "3.8"
services:
  app:
    deploy:
      labels:
        certbotless.domains: app.example.test
        certbotless.port: "8000"
      endpoint_mode: dnsrr
    image: certbotless-demo-app:local
    networks:
      edge: null
networks:
  edge:
    name: certbotless-edge
    external: true
"""


def test_the_docker_cli_reads_the_stack_and_is_never_given_a_daemon() -> None:
    docker = FakeDocker(stdout=DOCKER_DEMO)
    files = StackFiles("demo", (Path("a.yml"), Path("b.yml")))
    report = lint([files], Settings(), {}, docker=docker)
    assert docker.calls == [
        ["docker", "-H", NO_DAEMON, "stack", "config", "-c", "a.yml", "-c", "b.yml"]
    ]
    assert report.ok and report.stacks[0].read_by == "docker stack config"
    assert report.services[0].routes[0].hosts == ("app.example.test",)


def test_a_failing_docker_cli_falls_back_to_the_files(tmp_path: Path) -> None:
    stack = write(tmp_path, "shop.yml", app_stack())
    docker = FakeDocker(returncode=1, stderr="unknown command: docker stack config\n")
    report = lint([parse_stack_argument(str(stack))], Settings(), {}, docker=docker)
    assert report.ok and report.stacks[0].read_by == "certbotless"
    assert report.stacks[0].notes == (
        "docker stack config failed, so certbotless read the files: "
        "unknown command: docker stack config",
    )

    def missing(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        raise FileNotFoundError(2, "No such file or directory", "docker")

    assert lint([parse_stack_argument(str(stack))], Settings(), {}, docker=missing).ok


def test_the_command_uses_the_docker_cli_where_present(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    docker = FakeDocker(stdout=DOCKER_DEMO)
    monkeypatch.setattr(cli, "docker_cli", lambda: docker)
    assert cli.main(["lint", "--json", "demo=stacks/demo.yml"]) == 0
    output: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert docker.calls[0][:3] == ["docker", "-H", NO_DAEMON]
    assert output["ok"] is True
    (service,) = output["stacks"][0]["services"]
    assert service["name"] == "demo_app"
    assert service["routes"][0]["hosts"] == ["app.example.test"]
    assert output["certificates"] == [
        {"name": "app.example.test", "domains": ["app.example.test"], "key_type": "ec256",
         "profile": None},
    ]  # fmt: skip
