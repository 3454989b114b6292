"""A missing test prerequisite skips locally, fails under CI; skips are summed up by reason."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import prerequisites
from tests.prerequisites import REPO_ROOT, require_or_skip

TINY_TESTS = """
from tests.prerequisites import require_chromium, require_shared_file


def test_present_shared_file():
    assert require_shared_file("present.csv").read_text() == "x"


def test_absent_shared_file():
    require_shared_file("absent.csv")


def test_chromium():
    require_chromium()
"""


def _outcome(check: Callable[[], object]) -> tuple[str, str]:
    """("skip" | "fail", message) of a check that must skip or fail the test calling it."""
    try:
        check()
    except pytest.skip.Exception as e:
        return "skip", str(e.msg)
    except pytest.fail.Exception as e:
        return "fail", str(e.msg)
    raise AssertionError("the check neither skipped nor failed")


@pytest.mark.parametrize("value", ["true", "True", "1", "yes"])
def test_require_or_skip_fails_under_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    outcome = _outcome(lambda: require_or_skip("X"))
    assert outcome == ("fail", "CI=true and a test prerequisite is missing: X")


@pytest.mark.parametrize("value", [None, "", "false", "0"])
def test_require_or_skip_skips_outside_ci(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert _outcome(lambda: require_or_skip("X")) == ("skip", "X")


def test_require_chromium_checks_the_configured_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CI", "true")
    not_executable = tmp_path / "chromium"
    not_executable.write_text("", encoding="utf-8")
    monkeypatch.setattr(prerequisites, "CHROMIUM", not_executable)
    kind, message = _outcome(prerequisites.require_chromium)
    assert kind == "fail" and f"Chromium not found at {not_executable}" in message
    not_executable.chmod(0o755)
    assert prerequisites.require_chromium() == not_executable


def _run_tiny_suite(tmp_path: Path, *, ci: bool) -> subprocess.CompletedProcess[str]:
    """pytest on TINY_TESTS with the shared data and Chromium paths set by the environment."""
    (tmp_path / "test_tiny.py").write_text(TINY_TESTS, encoding="utf-8")
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "present.csv").write_text("x", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    env.update(
        PYTHONPATH=str(REPO_ROOT),
        PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",  # the venv's plugins cost seconds to import
        CRYPTOPRED_SHARED_DATA=str(data),
        CRYPTOPRED_CHROMIUM=str(tmp_path / "no-chromium"),
        **({"CI": "true"} if ci else {}),
    )
    plugins = ["-p", "tests.prerequisites", "-p", "no:cacheprovider"]
    return subprocess.run(
        [sys.executable, "-m", "pytest", *plugins, "test_tiny.py", "-q", "-rs"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow  # two pytest subprocesses, about a second each
def test_missing_prerequisites_skip_locally_fail_under_ci_and_are_summed_up(tmp_path: Path) -> None:
    local = _run_tiny_suite(tmp_path, ci=False)
    assert local.returncode == 0, local.stdout
    assert "1 passed, 2 skipped" in local.stdout
    summary = local.stdout[local.stdout.index("2 skipped, by reason") :]
    absent = tmp_path / "data" / "absent.csv"
    assert f"    1  shared data file not found: {absent} (set CRYPTOPRED_SHARED_DATA)" in summary
    assert f"    1  Chromium not found at {tmp_path / 'no-chromium'}" in summary

    under_ci = _run_tiny_suite(tmp_path, ci=True)
    assert under_ci.returncode == 1, under_ci.stdout
    assert "2 failed, 1 passed" in under_ci.stdout
    assert "skipped" not in under_ci.stdout
    assert f"CI=true and a test prerequisite is missing: shared data file not found: {absent}" in (
        under_ci.stdout
    )
