"""Imports follow STYLE.md B1: lower layers never import higher ones."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INTERNAL = {
    "core",
    "data",
    "storage",
    "ml",
    "serving",
    "strategy",
    "backtests",
    "bot",
    "api",
    "cli",
}
ALLOWED = {
    "core": {"core"},
    "data": {"core", "data"},
    "storage": {"core", "storage"},
    "ml": {"core", "data", "ml"},
    "serving": {"core", "data", "ml", "storage", "serving"},
    "strategy": {"core", "data", "ml", "strategy"},
    "backtests": {"core", "data", "ml", "strategy", "storage", "backtests"},
    "bot": {"core", "data", "ml", "storage", "serving", "bot"},
    "api": {"core", "data", "ml", "storage", "serving", "api"},
    "cli": INTERNAL,
}
ONLY_IN = {"sqlalchemy": {"storage"}, "ccxt": {"data"}, "backtrader": {"strategy", "backtests"}}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_architecture_imports_follow_layers(package: str) -> None:
    for path in (ROOT / package).rglob("*.py"):
        imported = _imports(path)
        assert imported & INTERNAL <= ALLOWED[package], f"{path}: {imported & INTERNAL}"
        for library, owners in ONLY_IN.items():
            assert library not in imported or package in owners, f"{path} imports {library}"


APP_PACKAGES = sorted(set(ALLOWED) - {"serving"})


def _calls(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.func.id if isinstance(node.func, ast.Name) else node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute)
    }


def test_architecture_only_serving_moves_the_model_pointer() -> None:
    """`ml.registry.promote_model` without its audit event is called by `serving.promotion`."""
    callers = {
        path.relative_to(ROOT).as_posix()
        for package in [*APP_PACKAGES, "serving"]
        for path in (ROOT / package).rglob("*.py")
        if "promote_model" in _calls(path) and path.name != "registry.py"
    }
    assert callers == {"serving/promotion.py"}


@pytest.mark.parametrize("package", APP_PACKAGES)
def test_architecture_one_model_cache_and_scorer(package: str) -> None:
    """The current-model cache and the fast scorer live in `serving` only."""
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        classes = {node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
        assert not classes & {"ModelCache", "ModelStore", "Scorer"}, path
        assert "make_scorer" not in _calls(path) or package == "serving", path
