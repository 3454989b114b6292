"""Fixtures for backtest tests: small walk-forward settings and one shared fast run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from backtests.run import BacktestResult, run_backtest
from core.settings import Settings
from tests.factories import make_ohlcv, make_settings

N_CANDLES = 2000
SMALL_WALK_FORWARD = {"train_bars": 600, "validation_bars": 150, "step_bars": 300}


def small_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings with working paths under tmp_path, logreg and small walk-forward windows."""
    sections: dict[str, Any] = {
        "ml": {"walk_forward": SMALL_WALK_FORWARD, "model": {"algorithm": "logreg"}},
        "backtest": {"models": ["logreg"]},
    }
    for name, values in overrides.items():
        sections.setdefault(name, {}).update(values)
    return make_settings(tmp_path, **sections)


@pytest.fixture(scope="session")
def bt_candles() -> pd.DataFrame:
    return make_ohlcv(N_CANDLES, seed=7)


@pytest.fixture(scope="session")
def bt_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return small_settings(tmp_path_factory.mktemp("bt"))


@pytest.fixture(scope="session")
def bt_result(bt_candles: pd.DataFrame, bt_settings: Settings) -> BacktestResult:
    """One walk-forward logreg backtest, shared by the fast tests (about a second)."""
    return run_backtest(
        bt_candles, bt_settings, symbol="BTC/USDT", timeframe="1h", algorithms=["logreg"]
    )


@pytest.fixture(scope="session")
def bt_fixed_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return small_settings(tmp_path_factory.mktemp("bt-fixed"), decision={"mode": "fixed"})


@pytest.fixture(scope="session")
def bt_fixed_result(bt_candles: pd.DataFrame, bt_fixed_settings: Settings) -> BacktestResult:
    """The same backtest trading the fixed policy: it trades, so the trade list has rows."""
    return run_backtest(
        bt_candles, bt_fixed_settings, symbol="BTC/USDT", timeframe="1h", algorithms=["logreg"]
    )


@pytest.fixture
def candle_csv(tmp_path: Path) -> Path:
    """1,600 synthetic hourly candles as a plain OHLCV CSV (for CLI runs)."""
    out = make_ohlcv(1600, seed=5).reset_index()
    out["timestamp"] = out["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    path = tmp_path / "candles.csv"
    out.to_csv(path, index=False)
    return path
