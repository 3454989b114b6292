"""run_strategy: the StrategyRun contract (index, dtypes, trades table, zero trades, open trade)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.errors import DataValidationError
from core.settings import StrategySettings
from strategy.runner import run_strategy
from strategy.trades import TRADE_COLUMNS
from tests.factories import make_ohlcv
from tests.strategy.helpers import targets


def _run(candles, proba, **strategy):
    """Trade the default policy's targets on `proba`."""
    planned = targets(proba)
    return run_strategy(
        candles,
        timeframe="1h",
        side=planned.side,
        size=planned.size,
        strategy=StrategySettings(**strategy),
    )


def test_run_strategy_series_follow_candle_index():
    candles = make_ohlcv(300)
    proba = np.random.default_rng(1).uniform(0.3, 0.7, 300)
    run = _run(candles, proba)
    assert run.equity.index.equals(candles.index) and run.position.index.equals(candles.index)
    assert run.equity.dtype == "float64" and run.equity.iloc[0] == 10_000.0
    assert list(run.trades.columns) == list(TRADE_COLUMNS)
    assert run.trades["entry_time"].dtype == candles.index.dtype
    assert run.candles_per_second > 0
    closed = run.trades[~run.trades["is_open"]]
    assert run.orders == 2 * len(closed) + int(run.trades["is_open"].sum())
    assert run.fees_paid == pytest.approx(run.trades["fees"].sum())
    assert (run.trades["pnl_net"] == run.trades["pnl"] - run.trades["fees"]).all()
    assert set(run.trades["exit_reason"]) <= {"signal", "end"}


def test_run_strategy_exposure_matches_bars_held():
    proba = np.random.default_rng(2).uniform(0.3, 0.7, 300)
    run = _run(make_ohlcv(300), proba)
    assert run.trades["bars_held"].sum() == int((run.position != 0).sum())


def test_run_strategy_without_predictions_has_no_trades():
    run = _run(make_ohlcv(50), np.full(50, np.nan))
    assert run.trades.empty and list(run.trades.columns) == list(TRADE_COLUMNS)
    assert (run.equity == 10_000.0).all() and (run.position == 0).all()
    assert run.orders == 0 and run.fees_paid == 0.0


def test_run_strategy_keeps_open_trade_at_end():
    candles = make_ohlcv(20)
    run = _run(candles, np.full(20, 0.9), fee_rate=0.0)
    trade = run.trades.iloc[0]
    assert len(run.trades) == 1 and trade["is_open"] and trade["exit_reason"] == "end"
    assert trade["bars_held"] == 19 and trade["exit_price"] == candles["close"].iloc[-1]
    assert run.equity.iloc[-1] == pytest.approx(10_000.0 + trade["pnl"])


def test_run_strategy_rejects_too_short_frame():
    with pytest.raises(DataValidationError, match="at least 2 candles"):
        _run(make_ohlcv(1), [0.5])


def test_run_strategy_size_defaults_to_the_whole_position_fraction():
    candles = make_ohlcv(30)
    side = np.r_[np.ones(10), np.zeros(20)]
    costs = StrategySettings(fee_rate=0.0)
    default = run_strategy(candles, timeframe="1h", side=side, strategy=costs)
    ones = run_strategy(candles, timeframe="1h", side=side, size=np.ones(30), strategy=costs)
    half = run_strategy(candles, timeframe="1h", side=side, size=np.full(30, 0.5), strategy=costs)
    pd.testing.assert_series_equal(default.equity, ones.equity)
    assert half.trades["size"].iloc[0] == pytest.approx(0.5 * default.trades["size"].iloc[0])


@pytest.mark.parametrize(
    ("side", "size", "match"),
    [
        ([0, 1, 2, 0, 0], None, "target_side"),
        ([0, 1, np.nan, 0, 0], None, "target_side"),
        ([0, 1, 1, 0, 0], [0, 1, 1.5, 0, 0], "target_size"),
        ([0, 1, 1, 0, 0], [0, 1, -0.5, 0, 0], "target_size"),
    ],
)
def test_run_strategy_rejects_invalid_targets(side, size, match):
    with pytest.raises(DataValidationError, match=match):
        run_strategy(
            make_ohlcv(5), timeframe="1h", side=side, size=size, strategy=StrategySettings()
        )
