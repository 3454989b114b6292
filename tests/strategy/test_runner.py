"""run_strategy: the StrategyRun contract (index, dtypes, trades table, zero trades, open trade)."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import DataValidationError
from core.settings import SignalSettings, StrategySettings
from strategy.runner import run_strategy
from strategy.trades import TRADE_COLUMNS
from tests.factories import make_ohlcv
from tests.strategy.helpers import with_proba


def _run(frame, **strategy):
    return run_strategy(
        frame, timeframe="1h", signal=SignalSettings(), strategy=StrategySettings(**strategy)
    )


def test_run_strategy_series_follow_candle_index():
    candles = make_ohlcv(300)
    proba = np.random.default_rng(1).uniform(0.3, 0.7, 300)
    run = _run(with_proba(candles, proba))
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
    run = _run(with_proba(make_ohlcv(300), proba))
    assert run.trades["bars_held"].sum() == int((run.position != 0).sum())


def test_run_strategy_without_predictions_has_no_trades():
    run = _run(with_proba(make_ohlcv(50), np.full(50, np.nan)))
    assert run.trades.empty and list(run.trades.columns) == list(TRADE_COLUMNS)
    assert (run.equity == 10_000.0).all() and (run.position == 0).all()
    assert run.orders == 0 and run.fees_paid == 0.0


def test_run_strategy_keeps_open_trade_at_end():
    candles = make_ohlcv(20)
    run = _run(with_proba(candles, np.full(20, 0.9)), fee_rate=0.0)
    trade = run.trades.iloc[0]
    assert len(run.trades) == 1 and trade["is_open"] and trade["exit_reason"] == "end"
    assert trade["bars_held"] == 19 and trade["exit_price"] == candles["close"].iloc[-1]
    assert run.equity.iloc[-1] == pytest.approx(10_000.0 + trade["pnl"])


def test_run_strategy_rejects_too_short_frame():
    with pytest.raises(DataValidationError, match="at least 2 candles"):
        _run(with_proba(make_ohlcv(1), [0.5]))
