"""ARCHITECTURE.md's rules, checked on the source: the order of the packages (who may import
whom), each package saying what it owns, and small modules, classes and functions."""

from __future__ import annotations

import ast
from fnmatch import fnmatchcase

from tests.support.paths import PACKAGE

# The layers, lowest first (ARCHITECTURE.md, "Who may import whom"): a module may import modules
# of its own layer and of lower ones, never of a higher one. A pattern ending in ".*" is a
# package; the first layer whose pattern matches a module is its layer.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "foundations",
        (
            "__init__",
            "model",
            "settings",
            "setting_values",
            "issuer_settings",
            "seams",
            "redaction",
            "proxy_protocol",
            "rewrite_phase",
            "request_conditions",
            "client_tls",
            "forward_auth_options",
            "upstream_options",
            "acme.errors",
        ),
    ),
    ("labels", ("labels", "labels.*")),
    ("plan", ("passes.planning", "passes.budget", "acme.ari")),
    ("acme", ("acme", "acme.*")),
    ("swarm", ("swarm", "swarm.*")),
    ("edge", ("edge", "edge.*")),
    ("passes", ("passes", "passes.*")),
    ("around the pass", ("daemon", "daemon.*", "ops", "ops.*", "web", "web.*")),
    ("app", ("app",)),
    ("cli", ("cli",)),
]
PACKAGES = ("labels", "labels.traefik", "passes", "swarm", "edge", "daemon", "ops", "web", "acme")
MAX_MODULE_LINES = 600
# Foundations that only describe what a route does, imported by model for `model.Route`.
ROUTE_OPTIONS = {
    "rewrite_phase",
    "request_conditions",
    "client_tls",
    "forward_auth_options",
    "upstream_options",
}


def modules() -> dict[str, ast.Module]:
    trees = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        trees[".".join(parts)] = ast.parse(path.read_text())
    return trees


def imported(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("certbotless."):
                names.add(node.module.removeprefix("certbotless."))
            elif node.module == "certbotless":
                names |= {alias.name for alias in node.names if alias.name != "__version__"}
        elif isinstance(node, ast.Import):
            names |= {
                alias.name.removeprefix("certbotless.")
                for alias in node.names
                if alias.name.startswith("certbotless.")
            }
    return names


def layer_of(module: str) -> int:
    for index, (_name, patterns) in enumerate(LAYERS):
        if any(fnmatchcase(module, pattern) for pattern in patterns):
            return index
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and to ARCHITECTURE.md")


def test_every_module_has_a_layer() -> None:
    for module in modules():
        layer_of(module)


def test_no_module_imports_a_higher_layer() -> None:
    wrong = []
    for module, tree in modules().items():
        own = layer_of(module)
        for name in imported(tree):
            other = layer_of(name)
            if other > own:
                wrong.append(f"{module} ({LAYERS[own][0]}) imports {name} ({LAYERS[other][0]})")
    assert wrong == []


def test_the_three_former_back_imports_stay_gone() -> None:
    trees = modules()
    assert not any(name.startswith("passes.") for name in imported(trees["swarm.status"]))
    assert not any(name.startswith("daemon.") for name in imported(trees["acme.network"]))
    assert not any(name.startswith("edge.") for name in imported(trees["acme.http01"]))


def test_foundations_import_only_foundations() -> None:
    trees = modules()
    for module in LAYERS[0][1]:
        assert {layer_of(name) for name in imported(trees[module])} <= {0}, module
    for module in ("model", "settings", "setting_values", "redaction", "proxy_protocol"):
        allowed = ROUTE_OPTIONS | {"setting_values", "issuer_settings", "redaction"}
        assert imported(trees[module]) <= allowed, module
    for module in ROUTE_OPTIONS:
        assert imported(trees[module]) == set(), module


def test_each_package_says_what_it_owns_and_may_import() -> None:
    for package in PACKAGES:
        docstring = ast.get_docstring(modules()[package]) or ""
        assert len(docstring) > 80 and "import" in docstring, package


def test_modules_classes_and_functions_stay_small_and_reconcile_only_sequences() -> None:
    too_big = []
    for path in PACKAGE.rglob("*.py"):
        lines = len(path.read_text().splitlines())
        if lines > MAX_MODULE_LINES:
            too_big.append(f"{path.relative_to(PACKAGE)}: {lines} lines")
    for module, tree in modules().items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            limit = 200 if isinstance(node, ast.ClassDef) else 60
            if lines > limit:
                too_big.append(f"{module}.{node.name}: {lines} lines (at most {limit})")
    assert too_big == []
    assert len((PACKAGE / "passes" / "reconcile.py").read_text().splitlines()) < 200
