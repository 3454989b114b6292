"""`cryptopred backtest` with a reports folder it cannot use: refused before the work, or the
results kept elsewhere after it; always one `error:` line and exit 2."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from typer.testing import CliRunner

from backtests.output import FALLBACK_DIR_NAME
from cli.main import app
from tests.backtests.conftest import SMALL_WALK_FORWARD
from tests.backtests.test_cli import _stored_runs, write_config
from tests.factories import make_ohlcv
from tests.filesystem import read_only_folder

runner = CliRunner()


@pytest.fixture
def candle_csv(tmp_path: Path) -> Path:
    out = make_ohlcv(1100, seed=5).reset_index()
    out["timestamp"] = out["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    path = tmp_path / "candles.csv"
    out.to_csv(path, index=False)
    return path


def _backtest(tmp_path: Path, candle_csv: Path, reports: Path) -> Any:
    config = write_config(
        tmp_path,
        ml={"registry_dir": str(tmp_path / "models"), "walk_forward": SMALL_WALK_FORWARD},
        backtest={"reports_dir": str(reports), "models": ["logreg"]},
    )
    return runner.invoke(app, ["--config", str(config), "backtest", "--data", str(candle_csv)])


def _error_line(output: str) -> str:
    (line,) = [line for line in output.splitlines() if line.startswith("error:")]
    assert "Traceback" not in output
    return line


def test_cli_backtest_refuses_a_reports_folder_under_a_file_before_the_work(
    tmp_path: Path, candle_csv: Path
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be\n")
    result = _backtest(tmp_path, candle_csv, blocker / "reports")
    assert result.exit_code == 2
    line = _error_line(result.output)
    assert f"reports folder {blocker / 'reports'} is not writable (Not a directory)" in line
    assert "--out DIR" in line
    assert not (tmp_path / "cache").exists()  # refused before the candles were even imported


def test_cli_backtest_refuses_a_read_only_reports_folder_before_the_work(
    tmp_path: Path, candle_csv: Path
) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    with read_only_folder(reports):
        result = _backtest(tmp_path, candle_csv, reports)
    assert result.exit_code == 2
    assert f"reports folder {reports} is not writable" in _error_line(result.output)
    assert not (tmp_path / "cache").exists()


class _Usage(NamedTuple):
    total: int
    used: int
    free: int


def test_cli_backtest_refuses_a_full_reports_disk_before_the_work(
    tmp_path: Path, candle_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # no way to fill a real disk here: the OS query is the boundary that is faked
    monkeypatch.setattr(shutil, "disk_usage", lambda path: _Usage(10**9, 10**9 - 10**6, 10**6))
    result = _backtest(tmp_path, candle_csv, tmp_path / "reports")
    assert result.exit_code == 2
    assert "has 1.0 MB free, a report needs up to 64 MB" in _error_line(result.output)
    assert not (tmp_path / "cache").exists()


def test_cli_backtest_keeps_the_report_elsewhere_when_writing_fails_after_the_work(
    tmp_path: Path, candle_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # the fallback's parent
    (tmp_path / "tmp").mkdir()
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "assets").write_text("a file where the plotly.js folder goes\n")
    result = _backtest(tmp_path, candle_csv, reports)
    assert result.exit_code == 2, result.output
    assert "Verdict" in result.stdout  # the console report came first
    line = _error_line(result.output)
    assert f"cannot write the report to {reports} (File exists)" in line
    html = Path(result.stdout.strip().splitlines()[-1])
    assert html.is_file() and html.parent.parent == tmp_path / "tmp" / FALLBACK_DIR_NAME
    assert f"saved it to {html} instead (run recorded)" in line
    (run,) = _stored_runs(f"sqlite:///{tmp_path / 'cp.db'}")
    assert run.id == html.parent.name and run.json_path == str(html.parent / "report.json")


def test_cli_backtest_with_no_writable_folder_keeps_the_console_report(
    tmp_path: Path, candle_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the temp folder should be\n")
    monkeypatch.setattr(tempfile, "tempdir", str(blocker / "tmp"))
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "assets").write_text("a file where the plotly.js folder goes\n")
    result = _backtest(tmp_path, candle_csv, reports)
    assert result.exit_code == 2, result.output
    assert "Verdict" in result.stdout
    line = _error_line(result.output)
    assert f"nor to {blocker / 'tmp' / FALLBACK_DIR_NAME} (Not a directory)" in line
    assert "the console report above is all that is kept" in line


def test_cli_sweep_refuses_an_unwritable_reports_folder_before_the_work(
    tmp_path: Path, candle_csv: Path
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be\n")
    config = write_config(tmp_path, backtest={"reports_dir": str(blocker / "reports")})
    data = ["--data", str(candle_csv), "--data", str(candle_csv)]
    args = ["--config", str(config), "backtest", "--symbols", "BTC/USDT,ETH/USDT", *data]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert f"reports folder {blocker / 'reports'} is not writable" in _error_line(result.output)
    assert not (tmp_path / "cache").exists()
