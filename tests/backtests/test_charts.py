"""The report's charts stay readable and small: candles merged, trades zoomed, honest axes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from backtests.charts import equity_figure, fee_figure
from backtests.plotting import MAX_CANDLES, resample_ohlc
from backtests.price_charts import (
    MAX_MARKED_TRADES,
    PANEL_BARS,
    pick_trades,
    price_figure,
    trade_panels_figure,
)
from backtests.run import BacktestResult
from backtests.trade_stats import trade_returns
from tests.factories import make_ohlcv

MINUTE_CANDLES = 130_000


def _minute_candles(n: int = MINUTE_CANDLES) -> pd.DataFrame:
    candles = make_ohlcv(n, seed=3)
    candles.index = pd.date_range("2024-01-01", periods=n, freq="1min", tz="UTC", name="timestamp")
    return candles


def _trades(candles: pd.DataFrame, n: int, *, seed: int = 1) -> pd.DataFrame:
    """`n` one-to-ten-candle round trips at real candle opens (long and short)."""
    rng = np.random.default_rng(seed)
    entries = np.sort(rng.choice(len(candles) - 20, size=n, replace=False))
    exits = entries + rng.integers(1, 10, size=n)
    side = rng.choice([-1, 1], size=n)
    entry_price = candles["open"].to_numpy()[entries]
    exit_price = candles["open"].to_numpy()[exits]
    pnl = side * (exit_price - entry_price)
    return pd.DataFrame(
        {
            "entry_time": candles.index[entries],
            "exit_time": candles.index[exits],
            "side": side,
            "size": np.ones(n),
            "entry_price": entry_price,
            "exit_price": exit_price,
            "pnl": pnl,
            "pnl_net": pnl - 0.01,
            "fees": np.full(n, 0.01),
            "bars_held": exits - entries,
            "is_open": np.zeros(n, dtype=bool),
            "exit_reason": ["signal"] * n,
        }
    )


def _with_trades(result: BacktestResult, trades: pd.DataFrame) -> BacktestResult:
    model = result.models[0]
    run = dataclasses.replace(model.run, trades=trades)
    return dataclasses.replace(result, models=(dataclasses.replace(model, run=run),))


def _json_bytes(fig: go.Figure) -> int:
    return len(fig.to_json().encode())


def test_resample_ohlc_bounds_bars_and_keeps_the_extremes() -> None:
    candles = _minute_candles()
    bars = resample_ohlc(candles)
    assert len(bars) <= MAX_CANDLES
    assert bars["high"].max() == candles["high"].max()
    assert bars["low"].min() == candles["low"].min()
    assert bars["open"].iloc[0] == candles["open"].iloc[0]
    assert bars["close"].iloc[-1] == candles["close"].iloc[-1]
    assert resample_ohlc(candles.head(50)).equals(
        candles.head(50)[["open", "high", "low", "close"]]
    )


def test_price_figure_of_130k_candles_is_bounded_candlesticks_with_a_range_slider(
    bt_result: BacktestResult,
) -> None:
    candles = _minute_candles()
    result = _with_trades(dataclasses.replace(bt_result, candles=candles), _trades(candles, 5000))
    fig = price_figure(result)
    (trace,) = fig.data  # 5,000 trades: no markers, only the candles
    assert isinstance(trace, go.Candlestick) and len(trace.x) <= MAX_CANDLES
    assert fig.layout.xaxis.rangeslider.visible is True
    assert fig.layout.yaxis.type == "log"
    assert _json_bytes(fig) < 150_000


def test_price_figure_marks_entries_and_exits_only_when_few(bt_result: BacktestResult) -> None:
    few = _trades(bt_result.candles, MAX_MARKED_TRADES)
    fig = price_figure(_with_trades(bt_result, few))
    entries, exits = fig.data[1], fig.data[2]
    assert len(entries.x) == len(exits.x) == MAX_MARKED_TRADES
    many = _trades(bt_result.candles, MAX_MARKED_TRADES + 1)
    assert len(price_figure(_with_trades(bt_result, many)).data) == 1


def test_trade_panels_centre_on_the_best_and_worst_trades(bt_result: BacktestResult) -> None:
    trades = _trades(bt_result.candles, 40)
    fig = trade_panels_figure(_with_trades(bt_result, trades))
    assert fig is not None
    picked = pick_trades(trades)
    ranked = trades.sort_values("pnl_net")
    assert [t.pnl_net for _, t in picked[:3]] == ranked["pnl_net"].iloc[::-1].head(3).tolist()
    assert [t.pnl_net for _, t in picked[3:]] == ranked["pnl_net"].head(3).tolist()
    panels = [trace for trace in fig.data if isinstance(trace, go.Candlestick)]
    marks = [trace for trace in fig.data if isinstance(trace, go.Scatter)]
    assert len(panels) == len(marks) == 6
    for (_, trade), panel, mark in zip(picked, panels, marks, strict=True):
        entry, exit_ = mark.x
        assert entry == f"{trade.entry_time:%Y-%m-%d %H:%M}"
        assert panel.x[0] < entry <= exit_ < panel.x[-1]  # candles on both sides of the trade
        assert len(panel.x) <= PANEL_BARS
        assert panel.xaxis == mark.xaxis
    titles = [a.text for a in fig.layout.annotations]
    assert titles[0].startswith(f"{trade_returns(trades)[picked[0][1].name]:+.2%}")
    assert fig.layout.xaxis.rangeslider.visible is False


def test_trade_panels_are_left_out_without_closed_trades(bt_result: BacktestResult) -> None:
    none = _trades(bt_result.candles, 3).iloc[0:0]
    assert trade_panels_figure(_with_trades(bt_result, none)) is None


def test_equity_figure_has_the_drawdown_below_on_the_same_time_axis(
    bt_result: BacktestResult,
) -> None:
    fig = equity_figure(bt_result)
    top = [t for t in fig.data if t.yaxis == "y"]
    below = [t for t in fig.data if t.yaxis == "y2"]
    assert [t.name for t in top] == ["buy-and-hold", bt_result.models[0].name]
    assert len(below) == len(top)
    assert fig.layout.yaxis.type == "log"
    assert fig.layout.xaxis.matches == "x2"  # zooming one panel zooms the other
    assert max(max(t.y) for t in below) <= 0.0  # drawdown: at or below the running peak
    assert min(min(t.y) for t in top) > 0.0


def test_equity_figure_of_130k_candles_stays_small(bt_result: BacktestResult) -> None:
    n = MINUTE_CANDLES
    index = _minute_candles(n).index
    walk = 10_000 * np.exp(np.cumsum(np.random.default_rng(2).normal(0, 1e-3, n)))
    equity = pd.Series(walk, index=index)
    model = bt_result.models[0]
    model = dataclasses.replace(model, run=dataclasses.replace(model.run, equity=equity))
    result = dataclasses.replace(bt_result, models=(model,), buy_and_hold_equity=equity * 1.1)
    fig = equity_figure(result)
    assert all(len(trace.x) <= 2000 for trace in fig.data)
    assert _json_bytes(fig) < 300_000


def test_fee_figure_gives_return_and_sharpe_their_own_axes_and_stacks_labels(
    bt_result: BacktestResult,
) -> None:
    model = bt_result.models[0]
    twins = tuple(  # two models breaking even 0.1 bps apart: their labels must not overlap
        dataclasses.replace(
            model,
            name=name,
            fee_sensitivity=dataclasses.replace(model.fee_sensitivity, break_even_bps=fee),
        )
        for name, fee in (("a", 2.1), ("b", 2.2))
    )
    fig = fee_figure(dataclasses.replace(bt_result, models=twins))
    axes = {trace.name: trace.yaxis for trace in fig.data}
    assert axes["a return %"] == "y" and axes["a Sharpe"] == "y2"
    assert fig.layout.yaxis2.overlaying is None  # stacked panels, not a second scale on top
    labels = [a for a in fig.layout.annotations if a.yref == "paper"]
    assert [a.text for a in labels][1:] == ["a break-even 2.10 bps", "b break-even 2.20 bps"]
    assert len({round(a.y, 3) for a in labels}) == len(labels) == 3  # one row per label
    assert any("buy-and-hold" in (a.text or "") for a in fig.layout.annotations)
