""".ci/run fails when a test prerequisite cannot be set up, instead of letting the tests skip.

The script runs under bash with a PATH holding only stubs (apt-get that fails, a fake chromium,
psql and make), so nothing is installed or started and `make test` is only recorded.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.prerequisites import REPO_ROOT

pytestmark = pytest.mark.slow  # starts bash processes (a few milliseconds each)

PG_URL = "postgresql+psycopg://ci:ci@127.0.0.1:5432/ci"
STUBS = {
    "apt-get": '[ "$1" = update ] || { echo "E: Unable to locate package ${!#}" >&2; exit 100; }',
    "sudo": 'exec "$@"',
    "chromium": 'echo "Chromium 1.0 (stub)"',
    "psql": 'echo "$*" >> "$RECORD.psql"',
    "make": 'echo "$*|$CI|$CRYPTOPRED_SHARED_DATA|$CRYPTOPRED_CHROMIUM|$CRYPTOPRED_TEST_PG_URL"'
    ' > "$RECORD"',
}


def _run_ci(
    tmp_path: Path, *, stubs: dict[str, str | None] | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """`.ci/run` with only the stubs (`stubs` replaces bodies, None removes one) and dirname/id
    on PATH; `make` records its call."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in {**STUBS, **(stubs or {})}.items():
        if body is not None:
            (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n", encoding="utf-8")
            (bin_dir / name).chmod(0o755)
    for tool in ("dirname", "id"):
        (bin_dir / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    data = tmp_path / "shared" / "data"
    data.mkdir(parents=True)
    (data / "Binance_BTCUSDT_1h.csv").write_text("unix,date\n", encoding="utf-8")
    base = {
        "PATH": str(bin_dir),
        "HOME": str(tmp_path),
        "RECORD": str(tmp_path / "make.txt"),
        "CRYPTOPRED_SHARED_DATA": str(data),
    }
    bash = shutil.which("bash") or "/bin/bash"
    return subprocess.run(
        [bash, str(REPO_ROOT / ".ci" / "run")],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _make_call(tmp_path: Path) -> list[str] | None:
    record = tmp_path / "make.txt"
    return record.read_text(encoding="utf-8").strip().split("|") if record.exists() else None


def test_ci_run_exports_the_prerequisites_and_runs_make_test_with_ci_true(tmp_path: Path) -> None:
    done = _run_ci(tmp_path, CRYPTOPRED_TEST_PG_URL=PG_URL)
    assert done.returncode == 0, done.stderr
    target, ci, shared, chromium, pg_url = _make_call(tmp_path) or []
    assert (target, ci, pg_url) == ("test", "true", PG_URL)
    assert shared == str(tmp_path / "shared" / "data")
    assert chromium == str(tmp_path / "bin" / "chromium")  # found on PATH, passed to the tests
    checked = (tmp_path / "make.txt.psql").read_text(encoding="utf-8")
    assert "postgresql://ci:ci@127.0.0.1:5432/ci" in checked  # logged in as the tests will


def test_ci_run_fails_without_the_shared_data(tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere")
    done = _run_ci(tmp_path, CRYPTOPRED_TEST_PG_URL=PG_URL, CRYPTOPRED_SHARED_DATA=missing)
    assert done.returncode == 1
    assert f"error: shared data not found: {missing}/Binance_BTCUSDT_1h.csv" in done.stderr
    assert _make_call(tmp_path) is None


def test_ci_run_fails_when_chromium_cannot_be_installed(tmp_path: Path) -> None:
    done = _run_ci(tmp_path, stubs={"chromium": None}, CRYPTOPRED_TEST_PG_URL=PG_URL)
    assert done.returncode == 1
    assert "Unable to locate package chromium" in done.stderr
    assert "error: could not install chromium" in done.stderr
    assert _make_call(tmp_path) is None


def test_ci_run_fails_when_the_chromium_it_is_given_does_not_run(tmp_path: Path) -> None:
    absent = str(tmp_path / "no-chromium")
    done = _run_ci(tmp_path, CRYPTOPRED_TEST_PG_URL=PG_URL, CRYPTOPRED_CHROMIUM=absent)
    assert done.returncode == 1
    assert f"error: Chromium at '{absent}' does not run" in done.stderr
    assert _make_call(tmp_path) is None


def test_ci_run_fails_when_postgresql_cannot_be_started(tmp_path: Path) -> None:
    done = _run_ci(tmp_path)  # no CRYPTOPRED_TEST_PG_URL, no pg_ctlcluster, apt-get fails
    assert done.returncode == 1
    assert "Unable to locate package postgresql" in done.stderr
    assert "error: PostgreSQL could not be started" in done.stderr
    assert _make_call(tmp_path) is None


def test_ci_run_fails_when_the_given_postgresql_refuses_the_login(tmp_path: Path) -> None:
    refusing = 'echo "psql: FATAL: password authentication failed" >&2; exit 2'
    done = _run_ci(tmp_path, stubs={"psql": refusing}, CRYPTOPRED_TEST_PG_URL=PG_URL)
    assert done.returncode == 1
    assert "error: cannot connect to CRYPTOPRED_TEST_PG_URL as the tests will" in done.stderr
    assert _make_call(tmp_path) is None
