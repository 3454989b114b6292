"""Peak memory of `cryptopred backtest` stays linear in the candles (issue 13)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.backtests.test_cli import write_config
from tests.factories import make_ohlcv

ROOT = Path(__file__).resolve().parents[2]
N_CANDLES = 200_000
STEP_BARS = 5_000  # 38 expanding folds
# Measured (2026-12): 809 MB now; 1,643 MB with the code before issue 13 (every fold's
# training frame held at once: quadratic in the candles). Interpreter and libraries ~450 MB.
PEAK_BOUND_MB = 1_200


def write_minute_candles(path: Path, n: int) -> None:
    """`n` 1-minute random-walk candles as a plain OHLCV CSV."""
    candles = make_ohlcv(n, "1m", seed=13, volatility=0.0008)
    frame = candles.reset_index(names="timestamp")
    frame["timestamp"] = frame["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S")
    frame.to_csv(path, index=False, float_format="%.6f")


def backtest_peak_mb(tmp_path: Path, n: int) -> float:
    """Peak RSS (MB) of one `cryptopred backtest` process (its children included)."""
    data = tmp_path / "candles.csv"
    write_minute_candles(data, n)
    config = write_config(
        tmp_path,
        ml={"registry_dir": str(tmp_path / "models"), "walk_forward": {"step_bars": STEP_BARS}},
    )
    command = [sys.executable, "-m", "cli.main", "--config", str(config), "backtest"]
    command += ["--data", str(data), "--timeframe", "1m", "--models", "logreg"]
    log = tmp_path / "backtest.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=out,
            cwd=ROOT,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        )
        _, status, usage = os.wait4(process.pid, 0)  # this child's own peak, not the session's
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.returncode == 0, log.read_text(encoding="utf-8")[-4000:]
    return usage.ru_maxrss / 1024  # KiB on Linux


@pytest.mark.slow
def test_backtest_of_200k_minute_candles_peaks_below_a_linear_bound(tmp_path: Path) -> None:
    peak = backtest_peak_mb(tmp_path, N_CANDLES)
    assert peak < PEAK_BOUND_MB, f"peak RSS {peak:.0f} MB for {N_CANDLES:,} candles"
