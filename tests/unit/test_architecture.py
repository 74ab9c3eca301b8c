"""ARCHITECTURE.md's rules, checked on the source: stage order, and small classes and functions."""

from __future__ import annotations

import ast

from tests.support.paths import PACKAGE

# The stages of a pass, in order (ARCHITECTURE.md): a module may import its own stage's and
# earlier stages' modules, never a later stage's.
STAGES = [
    {
        "discovery",
        "traefik_rules",
        "traefik_middlewares",
        "traefik_dynamic",
        "traefik_labels",
        "status_route",
        "observe",
    },
    {"planning", "budget", "acme.ari"},
    {"issuing"} | {f"acme.{p.stem}" for p in (PACKAGE / "acme").glob("*.py")} - {"acme.ari"},
    {"edge", "rollout", "edge_deploy", "deploying"},
    {"status", "garbage"},
]


def modules() -> dict[str, ast.Module]:
    return {
        ".".join(path.relative_to(PACKAGE).with_suffix("").parts): ast.parse(path.read_text())
        for path in PACKAGE.rglob("*.py")
    }


def imported(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("certbotless.")
        ):
            names.add(node.module.removeprefix("certbotless."))
    return names


def stage_of(module: str) -> int | None:
    return next((i for i, stage in enumerate(STAGES) if module in stage), None)


def test_no_stage_imports_a_later_one() -> None:
    wrong = []
    for module, tree in modules().items():
        own = stage_of(module)
        if own is None:
            continue
        for name in imported(tree):
            other = stage_of(name)
            if other is not None and other > own:
                wrong.append(f"{module} (stage {own}) imports {name} (stage {other})")
    assert wrong == []


def test_model_and_settings_import_nothing_of_certbotless() -> None:
    trees = modules()
    assert imported(trees["model"]) == set() and imported(trees["settings"]) == set()
    assert imported(trees["redaction"]) == set()


def test_classes_and_functions_stay_small_and_reconcile_only_sequences() -> None:
    too_big = []
    for module, tree in modules().items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            limit = 200 if isinstance(node, ast.ClassDef) else 60
            if lines > limit:
                too_big.append(f"{module}.{node.name}: {lines} lines (at most {limit})")
    assert too_big == []
    assert len((PACKAGE / "reconcile.py").read_text().splitlines()) < 200
