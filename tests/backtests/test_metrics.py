"""Trading metrics on hand-computed examples, edge cases and a real backtrader run."""

from __future__ import annotations

import json
import math
import statistics

import numpy as np
import pandas as pd
import pytest

from backtests.metrics import (
    TRADE_COLUMNS,
    buy_and_hold_equity,
    buy_and_hold_metrics,
    segment_metrics,
    trading_metrics,
)
from core.errors import DataValidationError
from core.settings import DecisionPolicy, StrategySettings
from ml.decision import positions_from_proba
from strategy import runner, trades
from tests.factories import make_ohlcv

HOUR = pd.Timedelta(hours=1)
YEAR_HOURS = 8760


def _candles(n, *, timeframe="1h"):
    return make_ohlcv(n, timeframe=timeframe, seed=11)


def _trades(rows, index):
    """Trades from (entry_bar, exit_bar | None, size, entry_price, exit_price, fees) tuples."""
    if not rows:
        return trades.empty_trades(index)
    records = []
    for entry, exit_, size, entry_price, exit_price, fees in rows:
        pnl = size * (exit_price - entry_price)
        records.append(
            {
                "entry_time": index[entry],
                "exit_time": pd.NaT if exit_ is None else index[exit_],
                "side": 1,
                "size": size,
                "entry_price": entry_price,
                "exit_price": exit_price,
                "pnl": pnl,
                "pnl_net": pnl - fees,
                "fees": fees,
                "bars_held": (len(index) if exit_ is None else exit_) - entry,
                "is_open": exit_ is None,
                "exit_reason": "end" if exit_ is None else "signal",
            }
        )
    frame = pd.DataFrame(records)
    frame["exit_time"] = pd.to_datetime(frame["exit_time"], utc=True).astype(index.dtype)
    return frame


def test_trade_columns_match_strategy_runner():
    assert TRADE_COLUMNS == trades.TRADE_COLUMNS


def test_metrics_known_equity_curve_by_hand():
    candles = _candles(6)
    values = [100.0, 110.0, 99.0, 105.0, 120.0, 90.0]
    equity = pd.Series(values, index=candles.index)
    m = trading_metrics(
        _trades([], candles.index), equity, candles, timeframe="1h", initial_equity=100.0
    )
    returns = [0.0, 0.1, -0.1, 105 / 99 - 1, 120 / 105 - 1, 90 / 120 - 1]
    mean, stdev = statistics.mean(returns), statistics.stdev(returns)
    downside = math.sqrt((0.1**2 + 0.25**2) / 6)
    assert m.total_return == pytest.approx(-0.1)
    assert m.max_drawdown == pytest.approx(-0.25)
    assert m.max_drawdown_duration_bars == 3  # peak 110 (bar 1 close) .. back above at bar 4
    assert m.max_drawdown_duration == 3 * HOUR
    assert m.volatility_ann == pytest.approx(stdev * math.sqrt(YEAR_HOURS))
    assert m.sharpe == pytest.approx(mean / stdev * math.sqrt(YEAR_HOURS))
    assert m.sortino == pytest.approx(mean / downside * math.sqrt(YEAR_HOURS))
    assert m.start == candles.index[0] and m.end == candles.index[-1] + HOUR
    assert m.n_bars == 6 and m.final_equity == 90.0


def test_metrics_cagr_uses_calendar_time_and_calmar():
    candles = _candles(4, timeframe="1d")
    equity = pd.Series([100.0, 90.0, 100.0, 110.0], index=candles.index)
    m = trading_metrics(_trades([], candles.index), equity, candles, timeframe="1d")
    years = 4 / 365.25  # first open .. last close
    assert m.cagr == pytest.approx(1.1 ** (1 / years) - 1)
    assert m.calmar == pytest.approx(m.cagr / 0.1)
    assert m.max_drawdown_duration_bars == 2 and m.max_drawdown_duration == pd.Timedelta(days=2)


def test_metrics_unrecovered_drawdown_runs_to_the_end():
    candles = _candles(5)
    equity = pd.Series([100.0, 120.0, 110.0, 100.0, 115.0], index=candles.index)
    m = trading_metrics(_trades([], candles.index), equity, candles, timeframe="1h")
    assert m.max_drawdown == pytest.approx(100 / 120 - 1)
    assert m.max_drawdown_duration_bars == 3 and m.max_drawdown_duration == 3 * HOUR


def test_metrics_zero_trades_flat_equity_gives_numbers_not_nan():
    candles = _candles(50)
    equity = pd.Series(1000.0, index=candles.index)
    m = trading_metrics(_trades([], candles.index), equity, candles, timeframe="1h")
    for name in (
        "total_return",
        "cagr",
        "volatility_ann",
        "sharpe",
        "sortino",
        "calmar",
        "max_drawdown",
        "exposure",
        "turnover",
        "fees_paid",
    ):
        assert getattr(m, name) == 0.0, name
    assert m.n_trades == 0 and m.n_open_trades == 0 and m.max_drawdown_duration_bars == 0
    for name in ("win_rate", "profit_factor", "avg_win", "avg_loss", "expectancy"):
        assert math.isnan(getattr(m, name)), name  # undefined without a closed trade
    json.dumps(m.to_dict(), allow_nan=False)


def test_metrics_one_open_trade_at_the_end():
    candles = _candles(10)
    trades = _trades([(6, None, 2.0, 100.0, 104.0, 0.2)], candles.index)
    equity = pd.Series([1000.0] * 6 + [999.8, 1002.0, 1005.0, 1007.8], index=candles.index)
    m = trading_metrics(trades, equity, candles, timeframe="1h")
    assert (m.n_trades, m.n_open_trades) == (0, 1)
    assert math.isnan(m.win_rate) and math.isnan(m.profit_factor)
    assert m.exposure == pytest.approx(4 / 10)
    assert m.fees_paid == pytest.approx(0.2)
    assert m.turnover == pytest.approx(2.0 * 100.0 / equity.mean())  # entry only


def test_metrics_all_losing_trades():
    candles = _candles(12)
    rows = [
        (1, 3, 1.0, 100.0, 98.0, 0.2),
        (4, 6, 1.0, 100.0, 99.0, 0.2),
        (7, 9, 2.0, 50.0, 49.0, 0.2),
    ]
    trades = _trades(rows, candles.index)
    equity = pd.Series(np.linspace(1000, 994.4, 12), index=candles.index)
    m = trading_metrics(trades, equity, candles, timeframe="1h")
    assert m.n_trades == 3 and m.win_rate == 0.0 and m.profit_factor == 0.0
    assert math.isnan(m.avg_win)
    assert m.avg_loss == pytest.approx(statistics.mean([-2.2, -1.2, -2.2]))
    assert m.expectancy == pytest.approx(m.avg_loss)
    assert m.avg_holding_bars == pytest.approx(2.0)
    assert m.exposure == pytest.approx(6 / 12)


def test_metrics_winners_only_profit_factor_is_inf_and_json_safe():
    candles = _candles(6)
    trades = _trades(
        [(1, 3, 1.0, 100.0, 110.0, 0.0), (3, 5, 1.0, 100.0, 105.0, 1.0)], candles.index
    )
    equity = pd.Series([100.0, 100.0, 105.0, 110.0, 112.0, 114.0], index=candles.index)
    m = trading_metrics(trades, equity, candles, timeframe="1h")
    assert m.profit_factor == math.inf and m.win_rate == 1.0
    assert m.avg_win == pytest.approx(7.0) and m.expectancy == pytest.approx(7.0)
    assert m.exposure == pytest.approx(4 / 6)  # back-to-back trades do not double count
    payload = m.to_dict()
    assert payload["profit_factor"] is None and payload["n_trades"] == 2
    json.dumps(payload, allow_nan=False)


def test_buy_and_hold_equity_and_return():
    candles = _candles(100)
    equity = buy_and_hold_equity(candles, cash=500.0)
    units = 500.0 / candles["open"].iloc[0]
    assert equity.tolist() == pytest.approx((candles["close"] * units).tolist())
    m = buy_and_hold_metrics(candles, cash=500.0, timeframe="1h")
    expected = candles["close"].iloc[-1] / candles["open"].iloc[0] - 1
    assert m.total_return == pytest.approx(expected)
    assert m.buy_and_hold_return == pytest.approx(expected)
    assert m.exposure == 1.0 and m.n_open_trades == 1 and m.fees_paid == 0.0


def test_segment_metrics_each_fold_relative_to_its_start():
    candles = _candles(10)
    equity = pd.Series([100.0, 102, 104, 100, 110, 121, 110, 99, 100, 105], index=candles.index)
    trades = _trades([(1, 3, 1.0, 100.0, 101.0, 0.1), (6, 8, 1.0, 100.0, 98.0, 0.1)], candles.index)
    idx = candles.index
    first, second = segment_metrics(
        trades,
        equity,
        candles,
        timeframe="1h",
        boundaries=[(idx[0], idx[4]), (idx[5], idx[9])],
        initial_equity=100.0,
    )
    assert first.total_return == pytest.approx(0.10) and first.initial_equity == 100.0
    assert second.initial_equity == 110.0  # equity after the last candle of fold 1
    assert second.total_return == pytest.approx(105 / 110 - 1)
    assert second.max_drawdown == pytest.approx(99 / 121 - 1)
    assert (first.n_trades, second.n_trades) == (1, 1)
    assert second.win_rate == 0.0 and first.win_rate == 1.0
    assert second.buy_and_hold_return == pytest.approx(
        candles["close"].iloc[9] / candles["open"].iloc[5] - 1
    )


def test_segment_metrics_rejects_empty_fold():
    candles = _candles(10)
    equity = pd.Series(100.0, index=candles.index)
    late = candles.index[-1] + 10 * HOUR
    with pytest.raises(DataValidationError, match="contains no candle"):
        segment_metrics(
            _trades([], candles.index),
            equity,
            candles,
            timeframe="1h",
            boundaries=[(late, late + HOUR)],
        )


def test_metrics_reject_misaligned_inputs():
    candles = _candles(10)
    equity = pd.Series(100.0, index=candles.index[:9])
    with pytest.raises(DataValidationError, match="share one index"):
        trading_metrics(_trades([], candles.index), equity, candles, timeframe="1h")
    with pytest.raises(DataValidationError, match="lacks columns"):
        trading_metrics(pd.DataFrame(), equity.reindex(candles.index), candles, timeframe="1h")


def test_metrics_of_a_real_run_agree_with_the_run():
    candles = make_ohlcv(500, seed=4)
    proba = np.random.default_rng(4).uniform(0.35, 0.65, len(candles))
    planned = positions_from_proba(proba, DecisionPolicy())
    run = runner.run_strategy(
        candles,
        timeframe="1h",
        side=planned.side,
        size=planned.size,
        strategy=StrategySettings(),
    )
    m = trading_metrics(run.trades, run.equity, candles, timeframe="1h")
    assert m.fees_paid == pytest.approx(run.fees_paid)
    assert m.n_trades + m.n_open_trades == len(run.trades) > 10
    assert m.exposure == pytest.approx(float((run.position != 0).mean()))
    assert m.final_equity == run.equity.iloc[-1] and m.initial_equity == 10_000.0
    wins = (run.trades.loc[~run.trades["is_open"], "pnl_net"] > 0).mean()
    assert m.win_rate == pytest.approx(wins)
