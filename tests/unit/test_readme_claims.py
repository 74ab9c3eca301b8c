"""The documentation's claims (README.md and the pages of docs/) and ARCHITECTURE.md's that the
code can check: commands and options, labels, paths and names, defaults, status words, and the
figures that are settings of the code."""

from __future__ import annotations

import argparse
import ast
import importlib
import logging
import pkgutil
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from certbotless import cli, seams
from certbotless.acme.errors import AcmeError
from certbotless.acme.issuer import IssuerOptions
from certbotless.acme.keys import generate_private_key, private_key_pem
from certbotless.acme.network import RetryPolicy
from certbotless.acme.responder import PER_CLIENT_GRACE_SECONDS, ResponderLimits
from certbotless.daemon.alerts import DELIVERY_ATTEMPTS, Alerter
from certbotless.daemon.scheduler import (
    EVENT_CAP,
    EVENT_QUIET,
    ROLL_DEFERRAL_CAP,
    SCHEDULE_JITTER_SECONDS,
    STUCK_PASS_SECONDS,
)
from certbotless.edge.render import MAX_FILE_BYTES
from certbotless.labels.values import MAX_PATH_LENGTH, MAX_URL_LENGTH
from certbotless.model import (
    CertSpec,
    Condition,
    FailureReason,
    IssuedCert,
    KeyType,
    PassRequest,
    RevocationReason,
    StoredCert,
)
from certbotless.ops import views
from certbotless.ops.doctor import MAX_DOMAINS_CHECKED
from certbotless.passes.budget import PER_ACCOUNT, PER_DOMAIN, PER_NAME_SET
from certbotless.passes.reconcile import Reconciler
from certbotless.redaction import MIN_SECRET_LENGTH
from certbotless.settings import PREFIX, Settings
from certbotless.swarm.lease import LEASE_TTL, LEASE_WAIT
from certbotless.swarm.status import ABANDON_AFTER, JITTER, retry_delay
from certbotless.swarm.store import UNPAIRED_GRACE
from tests.support import fakes
from tests.support.fakes import SETTINGS, FakeIssuer, World
from tests.support.paths import REPO

ROOT = REPO
README = (ROOT / "README.md").read_text()
ARCHITECTURE = (ROOT / "ARCHITECTURE.md").read_text()
DOCS = ROOT / "docs"
# The README and every page of the documentation site, as one text: what a claim says is checked
# wherever it lives.
DOCUMENTATION = "\n\n".join([README, *(doc.read_text() for doc in sorted(DOCS.rglob("*.md")))])


def page(name: str) -> str:
    """One page of the documentation site (docs/NAME)."""
    return (DOCS / name).read_text()


def section(text: str, heading: str) -> str:
    """From `heading` to the next heading of the same or a higher level."""
    level = heading.split(" ", 1)[0]
    body = ("\n" + text).split(f"\n{heading}\n", 1)[1]
    ends = [m.start() for m in re.finditer(rf"^#{{1,{len(level)}}} ", body, re.MULTILINE)]
    return body[: min(ends, default=len(body))]


def table_rows(text: str) -> list[list[str]]:
    """The cells of every row of the Markdown tables in `text` (header and rule lines left out)."""
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows[1:] if rows else rows


def words(text: str) -> str:
    """`text` with every run of whitespace one space, so claims may wrap anywhere."""
    return " ".join(text.split())


def backticked(text: str) -> list[str]:
    return re.findall(r"`([^`\n]+)`", text)


# --- commands ---------------------------------------------------------------------------------


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def command_table() -> dict[str, tuple[str, str]]:
    """Command → (its synopsis, what the documentation says it does)."""
    rows = table_rows(section(page("commands.md"), "# Commands"))
    table = {}
    for synopsis, meaning in rows:
        command = re.fullmatch(r"`certbotless ([a-z][a-z-]*)(.*)`", synopsis)
        assert command, f"not a command synopsis: {synopsis}"
        table[command.group(1)] = (command.group(2), meaning)
    return table


def test_the_command_table_lists_every_subcommand_and_no_other() -> None:
    handled = {*cli.COMMANDS, *cli.OFFLINE_COMMANDS}
    assert set(command_table()) == set(subcommands()) == handled


@pytest.mark.parametrize("command", sorted(subcommands()))
def test_each_command_has_the_options_its_synopsis_shows(command: str) -> None:
    synopsis, _ = command_table()[command]
    parser = subcommands()[command]
    options = {
        option
        for action in parser._actions
        for option in action.option_strings
        if option not in ("-h", "--help")
    }
    # Optional parts of a positional ("[NAME=]FILE[,FILE…]") are written the same in both; a
    # positional with choices ("account rollover") is written as its words.
    positionals = [re.sub(r"\[[^]]*\]", "", str(a.metavar))
                   for a in parser._actions if not a.option_strings and not a.choices]  # fmt: skip
    words = [c for a in parser._actions if not a.option_strings for c in a.choices or ()]
    assert all(f" {word}" in synopsis for word in words), (synopsis, words)
    assert set(re.findall(r"--[a-z-]+", synopsis)) == options
    assert (
        re.findall(r"\b([A-Z_]+)…?(?=[ \]]|$)", re.sub(r"\[[^]]*\]", "", synopsis)) == positionals
    )


def test_the_revocation_reasons_and_key_types_are_the_codes() -> None:
    _, revoke = command_table()["revoke"]
    reasons = revoke.split("(", 1)[1].split(")", 1)[0]
    assert backticked(reasons) == [reason.name for reason in RevocationReason]
    labels = label_table()
    key_types = next(row for row in labels if row[0].startswith("`certbotless.key_type="))
    assert backticked(key_types[1]) == [k.value for k in KeyType]


# --- the reference tables: every label the code reads -----------------------------------------


def defined_in(package: str, name: str) -> Any:
    """`name` as the module of `package` that defines it has it, whichever module that is (the
    reference tables follow the code's own tables, wherever the code keeps them)."""
    root = importlib.import_module(package)
    infos = pkgutil.walk_packages(root.__path__, f"{package}.")
    for module in (root, *(importlib.import_module(info.name) for info in infos)):
        if name in vars(module):
            return vars(module)[name]
    raise LookupError(f"no module of {package} defines {name}")


def label_table() -> list[list[str]]:
    return table_rows(section(page("labels.md"), "# Labels (on services, under `deploy.labels`)"))


def test_the_label_table_lists_every_label_the_code_reads_and_no_other() -> None:
    documented = {re.sub(r"<\w+>.*|=.*", "", backticked(row[0])[0]) for row in label_table()}
    read = {
        *defined_in("certbotless.labels", "ROUTE_LABELS"),  # names, and prefixes of `….<name>`
        *defined_in("certbotless.labels", "ROUTE_LABEL_PREFIXES"),
        defined_in("certbotless.labels", "STATUS_PAGE_LABEL"),  # on certbotless's own service
    }
    assert documented == read


def traefik_middleware_rows() -> list[tuple[set[str], str]]:
    """Each row of the Traefik table: the middleware kinds it names (Traefik's type names, lower
    case, as in `ratelimit.average`), and what it says becomes of them."""
    kind = re.compile(r"(?!traefik\.)([a-z0-9]+)(\.[A-Za-z0-9]+)*")
    return [
        ({m.group(1) for m in map(kind.fullmatch, backticked(label)) if m}, meaning)
        for label, meaning in table_rows(page("traefik-labels.md"))
    ]


def test_the_traefik_table_says_what_becomes_of_every_middleware_kind_the_code_knows() -> None:
    rows = traefik_middleware_rows()
    applied = set(defined_in("certbotless.labels.traefik", "APPLY_BY_KIND"))
    security = set(defined_in("certbotless.labels.traefik", "SECURITY_KINDS"))
    shaping = set(defined_in("certbotless.labels.traefik", "SHAPING_KINDS"))
    assert applied | security | shaping <= set().union(*(kinds for kinds, _ in rows))

    def only(said: str) -> set[str]:
        """The kinds of the rows that begin with `said` and of no other row."""
        kinds = set().union(*(k for k, meaning in rows if meaning.startswith(said)))
        return kinds - set().union(*(k for k, meaning in rows if not meaning.startswith(said)))

    assert only("not yet: reported, served without them") == shaping - applied
    assert only("refused: it may guard access") == security - applied


# --- paths and names --------------------------------------------------------------------------

TOP_LEVEL = ("certbotless/", "tests/", "stacks/", "haproxy/", "nginx/", "rig/", "scripts/",
             "bench/", ".ci/")  # fmt: skip


def named_paths() -> Iterator[str]:
    """Repository paths the documentation and ARCHITECTURE.md name: `dir/…` ones and, in
    ARCHITECTURE.md, the modules of certbotless by file name."""
    for token in backticked(DOCUMENTATION) + backticked(ARCHITECTURE):
        for word in token.split():
            if word.startswith(TOP_LEVEL) and not re.search(r"[<*…]", word):
                yield word.rstrip(".,")
    for token in backticked(ARCHITECTURE):
        if re.fullmatch(r"([a-z_]+/)*[a-z_0-9]+\.py", token) and not token.startswith(TOP_LEVEL):
            yield f"certbotless/{token}"


def test_every_path_the_documents_name_exists() -> None:
    paths = set(named_paths())
    assert len(paths) > 40  # the search itself works
    assert sorted(p for p in paths if not (ROOT / p).exists()) == []


def heading_ids(markdown: str) -> set[str]:
    """The anchors of a page's headings, as MkDocs (Python-Markdown's toc) and GitHub make them."""
    text = re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)
    headings = re.findall(r"^#+ (.+)$", text, re.MULTILINE)
    slugs = (re.sub(r"[^\w\s-]", "", h.replace("`", "")).strip().lower() for h in headings)
    return {re.sub(r"[-\s]+", "-", slug) for slug in slugs}


def test_the_readme_links_to_files_and_headings_that_exist() -> None:
    """`mkdocs build --strict` checks the links of docs/; the README's (GitHub shows them) here."""
    local = [link for link in re.findall(r"\]\(([^)\s]+)\)", README) if "://" not in link]
    assert len(local) > 20  # the search itself works
    for link in local:
        path, _, anchor = link.partition("#")
        assert (ROOT / path).is_file(), link
        assert not anchor or anchor in heading_ids((ROOT / path).read_text()), link


def test_every_bench_the_documentation_runs_is_one_scripts_bench_knows() -> None:
    known = set(re.findall(r"^  ([a-z-]+)\)", (ROOT / "scripts" / "bench").read_text(), re.M))
    named = set(re.findall(r"bash scripts/bench ([a-z-]+)", DOCUMENTATION))
    assert named and named <= known


def resolves(dotted: str) -> bool:
    """`module.attribute` of certbotless, or `module.Class.attribute` / a method of one of the
    module's classes (`app.solver_for` is `App.solver_for`)."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            target: object = importlib.import_module("certbotless." + ".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        rest = parts[cut:]
        candidates = [target] + [
            value for value in vars(target).values()
            if isinstance(value, type) and value.__module__ == target.__name__  # type: ignore[attr-defined]
        ]  # fmt: skip
        for candidate in candidates:
            found: object | None = candidate
            for name in rest:
                found = getattr(found, name, None)
            if found is not None:
                return True
    return False


def test_every_module_attribute_architecture_names_exists() -> None:
    named = [
        token for token in backticked(ARCHITECTURE)
        if re.fullmatch(r"[a-z_]+(\.[a-z_0-9]+)*\.[A-Za-z_][A-Za-z_0-9]*", token)
        and not token.endswith(".py") and not token.startswith("tests.")
    ]  # fmt: skip
    assert len(named) > 10
    assert [token for token in named if not resolves(token)] == []


def test_the_seams_table_names_protocols_and_fakes_that_exist() -> None:
    rows = table_rows(section(ARCHITECTURE, "## The seams"))
    assert rows
    for protocol, _real, fake in rows:
        assert hasattr(seams, backticked(protocol)[0]), protocol
        assert hasattr(fakes, backticked(fake)[0]), fake


# --- defaults and words -----------------------------------------------------------------------


def environment_defaults() -> dict[str, str]:
    """Variable (without the prefix) → the default the environment table shows, where it is a
    value (`…` first in its cell), not words."""
    defaults = {}
    for row in table_rows(section(page("environment.md"), "# Environment (sidecar)")):
        names = re.findall(rf"`{PREFIX}([A-Z0-9_]+)`", row[0])
        if len(names) == 1 and row[1].startswith("`"):
            defaults[names[0]] = backticked(row[1])[0]
    return defaults


def test_the_environment_table_shows_the_defaults_the_code_has() -> None:
    defaults = environment_defaults()
    assert len(defaults) > 15
    for name, value in defaults.items():
        assert Settings.from_env({PREFIX + name: value}) == Settings(), f"{PREFIX}{name}={value}"


def test_the_status_record_words_are_the_codes() -> None:
    record = DOCUMENTATION.split("- each wanted certificate's status record", 1)[1]
    bullet = record.split("\n- ", 1)[0]
    named = set(re.findall(r"`([A-Z][A-Za-z]+)`", bullet))
    assert named == {c.value for c in Condition} | {r.value for r in FailureReason}


def test_the_list_statuses_are_those_list_shows() -> None:
    _, meaning = command_table()["list"]
    documented = set(re.findall(r"`([a-z]+)`", meaning.split("status:", 1)[1]))
    function = next(
        node for node in ast.walk(ast.parse(Path(views.__file__).read_text()))
        if isinstance(node, ast.FunctionDef) and node.name == "listed_status"
    )  # fmt: skip
    returned = {
        node.value.value for node in ast.walk(function)
        if isinstance(node, ast.Return) and isinstance(node.value, ast.Constant)
    }  # fmt: skip
    assert documented == returned


# --- figures that are settings of the code ----------------------------------------------------


def test_the_back_off_schedule_is_the_one_the_documents_give() -> None:
    minutes = [int(retry_delay(n).total_seconds() // 60) for n in range(1, 5)]
    hours = [int(retry_delay(n).total_seconds() // 3600) for n in range(5, 11)]
    assert {retry_delay(n) for n in range(11, 40)} == {retry_delay(10)}  # the cap
    said_minutes = ", ".join(map(str, minutes)) + " minutes"
    said_hours = ", ".join(map(str, hours[:-1])) + f" and at most {hours[-1]} hours"
    for document in (DOCUMENTATION, ARCHITECTURE):
        assert said_minutes in words(document) and said_hours in words(document)
    assert f"up to {JITTER:.0%}" in words(DOCUMENTATION)
    assert f"failing for {ABANDON_AFTER.days} days" in words(DOCUMENTATION)


def _kib(size: int) -> str:
    return f"{size // 1024} KiB"


@dataclass(frozen=True)
class Figure:
    what: str  # the code's value, as the documentation says it
    where: str = "docs"


def stated_figures() -> list[Figure]:
    limits = ResponderLimits()
    retries = RetryPolicy()
    window = f"{PER_DOMAIN[1].days} days"
    return [
        Figure(
            f"{EVENT_QUIET.total_seconds():g} s after the last change of a burst, at most "
            f"{EVENT_CAP.total_seconds():g} s after the first"
        ),
        Figure(f"for up to {ROLL_DEFERRAL_CAP.total_seconds():g} s in a row"),
        Figure(f"with up to {SCHEDULE_JITTER_SECONDS // 60} min jitter"),
        Figure(f"a pass is stuck for {STUCK_PASS_SECONDS // 60} minutes"),
        Figure(f"an expiry {LEASE_TTL.total_seconds():g} s ahead"),
        Figure(f"renewed every {LEASE_TTL.total_seconds() / 3:g} s while the pass runs"),
        Figure(f"gives up after {LEASE_WAIT.total_seconds() / 60:g} minutes"),
        Figure(
            f"a request line not sent within {limits.request_line_seconds:g} s, or a request "
            f"not complete after {limits.request_seconds:g} s"
        ),
        Figure(f"one client address keeps at most {limits.max_waiting_per_client} of them"),
        Figure(f"once it has had {PER_CLIENT_GRACE_SECONDS:g} s to send its request"),
        Figure(f"at most {limits.max_waiting:,} in all"),
        Figure(f"requests larger than {_kib(limits.max_request_bytes)} get 431"),
        Figure(f"{PER_DOMAIN[0]} new certificates per registered domain per {window}"),
        Figure(
            f"{PER_NAME_SET[0]} for the same exact set of names per {PER_NAME_SET[1].days} days"
        ),
        Figure(
            f"{PER_ACCOUNT[0]} new orders per account per "
            f"{PER_ACCOUNT[1].total_seconds() / 3600:g} hours"
        ),
        Figure(f"up to {retries.bad_nonce_attempts} times per request"),
        Figure(f"5xx up to {retries.transient_attempts} times"),
        Figure(f"Each order has a {IssuerOptions().order_timeout:g} s deadline"),
        Figure(
            f"a failing channel is tried {DELIVERY_ATTEMPTS} times ("
            + ", ".join(f"{Alerter.retry_delay * n:g}" for n in range(1, DELIVERY_ATTEMPTS))
            + " s apart)"
        ),
        Figure(f"Pieces shorter than {MIN_SECRET_LENGTH} characters"),
        Figure(f"no file grows past {_kib(MAX_FILE_BYTES)}"),
        Figure(f"At most {MAX_PATH_LENGTH:,} characters"),
        Figure(f"At most {MAX_URL_LENGTH:,} characters"),
        Figure(f"each wanted domain by DNS on port 80, up to {MAX_DOMAINS_CHECKED}"),
        Figure("an hour after it was made" if UNPAIRED_GRACE.total_seconds() == 3600 else "?"),
    ]


@pytest.mark.parametrize("figure", stated_figures(), ids=lambda f: f.what[:40])
def test_a_figure_the_documentation_states_is_the_codes(figure: Figure) -> None:
    assert figure.what in words(DOCUMENTATION)


# --- "no key ... is ever logged" ------------------------------------------------------------------


@dataclass
class RealKeyIssuer(FakeIssuer):
    """Issues with a real private key, so that a log line holding it would show."""

    key_pem: bytes = b""

    def issue_many(
        self,
        specs: Iterable[CertSpec],
        progress: object = None,
        solver: object = None,
        replaces: Mapping[str, StoredCert] | None = None,
    ) -> Iterator[tuple[CertSpec, IssuedCert | AcmeError]]:
        for spec, result in super().issue_many(specs, progress, solver, replaces):
            if isinstance(result, IssuedCert):
                result = replace(result, key_pem=self.key_pem)
            yield spec, result


def test_a_pass_logs_and_says_nothing_of_a_private_key(caplog: pytest.LogCaptureFixture) -> None:
    key_pem = private_key_pem(generate_private_key(KeyType.EC256))
    world = World(issuer=RealKeyIssuer(key_pem=key_pem))
    world.add_edge()
    world.label("app", "app.example.test")
    said: list[str] = []
    caplog.set_level(logging.DEBUG)
    reconciler = Reconciler(SETTINGS, world.parts())
    reconciler.run_pass(PassRequest(progress=said.append))
    reconciler.run_pass(PassRequest(force=True, progress=said.append))
    assert world.issuer.ordered == ["app.example.test"] * 2
    body = [line for line in key_pem.decode().splitlines() if not line.startswith("-----")]
    output = caplog.text + "\n".join(said)
    assert "PRIVATE KEY" not in output and not any(line in output for line in body)


def test_the_layers_architecture_lists_are_those_the_architecture_test_enforces() -> None:
    from tests.unit.test_architecture import LAYERS

    listed = section(ARCHITECTURE, "## Who may import whom")
    items = re.findall(r"^\d+\. ([a-z ]+): (.*?)(?=^\d+\. |^$)", listed, re.M | re.S)
    documented = []
    for name, text in items:
        head = re.split(r" \(|\.\s", text, maxsplit=1)[0]
        documented.append((name, set(backticked(head))))
    enforced = []
    for name, patterns in LAYERS:
        packages = {p.removesuffix(".*") for p in patterns if p.endswith(".*")}
        enforced.append((name, {p for p in patterns if p not in packages} - {"__init__"}))
    assert documented == enforced
