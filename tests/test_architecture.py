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
