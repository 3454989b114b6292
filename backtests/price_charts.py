"""Price and trades, readable at any length: a bounded candlestick overview with a range slider,
trade markers only when they are few, and small candlestick panels around the best and worst
trades."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from backtests.plotting import (
    LAYOUT,
    candlestick,
    color_of,
    resample_ohlc,
    significant,
    utc_labels,
)
from backtests.run import BacktestResult
from backtests.trade_stats import trade_returns

MAX_MARKED_TRADES = 150
"""Above this many trades (per model) entry/exit markers are a smear: the overview omits them."""
PANEL_TRADES = 3
"""The best and the worst `PANEL_TRADES` trades (net P&L) get their own candlestick panel."""
PANEL_BARS = 120
"""A panel shows at most this many bars (longer windows are merged like the overview)."""


def price_figure(result: BacktestResult) -> go.Figure:
    """Candlesticks (merged to a bounded number of bars) with a range slider; each model's entries
    and exits as markers when it traded at most `MAX_MARKED_TRADES` times."""
    bars = resample_ohlc(result.candles)
    fig = go.Figure(candlestick(bars, name="price"))
    hidden = []
    for position, model in enumerate(result.models):
        trades = model.run.trades
        if len(trades) > MAX_MARKED_TRADES:
            hidden.append(f"{model.name}: {len(trades):,} trades")
            continue
        for trace in _trade_markers(trades, name=model.name, color=color_of(position)):
            fig.add_trace(trace)
    per_bar = max(1, round(len(result.candles) / max(1, len(bars))))
    title = f"Price ({len(bars):,} bars of {per_bar} {result.timeframe} candle(s) each)"
    if hidden:
        title += " - markers left out (" + "; ".join(hidden) + "): see the trade panels"
    fig.update_layout(
        title={"text": title, "font": {"size": 14}},
        yaxis={"title": "price (log)", "type": "log"},
        xaxis={"rangeslider": {"visible": True, "thickness": 0.08}},
        height=520,
        **LAYOUT,
    )
    return fig


def _trade_markers(trades: pd.DataFrame, *, name: str, color: str) -> list[go.Scatter]:
    """Entry triangles (up = long, down = short) and exit crosses of one model's trades."""
    closed = trades[~trades["is_open"].astype(bool)]
    symbols = np.where(trades["side"].to_numpy() > 0, "triangle-up", "triangle-down")
    return [
        go.Scatter(
            x=utc_labels(trades["entry_time"]),
            y=significant(trades["entry_price"]),
            mode="markers",
            name=f"{name} entry",
            marker={"symbol": symbols.tolist(), "size": 9, "color": color},
        ),
        go.Scatter(
            x=utc_labels(closed["exit_time"]),
            y=significant(closed["exit_price"]),
            mode="markers",
            name=f"{name} exit",
            marker={"symbol": "x", "size": 8, "color": color},
        ),
    ]


def pick_trades(trades: pd.DataFrame, *, n: int = PANEL_TRADES) -> list[tuple[str, pd.Series]]:
    """The `n` best closed trades (by net P&L, best first), then the `n` worst (worst first);
    no trade appears twice.

    >>> t = pd.DataFrame({"pnl_net": [1.0, -2.0, 3.0], "is_open": [False, False, True]})
    >>> [(kind, row.pnl_net) for kind, row in pick_trades(t, n=1)]
    [('best', 1.0), ('worst', -2.0)]
    """
    closed = trades[~trades["is_open"].astype(bool)].sort_values("pnl_net", ascending=False)
    best = closed.head(n)
    worst = closed.drop(best.index).tail(n).iloc[::-1]
    return [("best", row) for _, row in best.iterrows()] + [
        ("worst", row) for _, row in worst.iterrows()
    ]


def trade_window(candles: pd.DataFrame, trade: pd.Series) -> pd.DataFrame:
    """The candles around one trade: as many before the entry and after the exit as it lasted
    (at least 8), merged down to `PANEL_BARS` bars."""
    index = pd.DatetimeIndex(candles.index)
    entry = int(index.searchsorted(trade["entry_time"]))
    exit_ = int(index.searchsorted(trade["exit_time"]))
    pad = max(8, exit_ - entry)
    window = candles.iloc[max(0, entry - pad) : min(len(candles), exit_ + pad + 1)]
    return resample_ohlc(window, max_bars=PANEL_BARS)


def trade_panels_figure(result: BacktestResult) -> go.Figure | None:
    """Candlestick panels centred on the best trades (first row) and the worst trades (second
    row) of the leading model; None when it closed no trade."""
    model = result.leaderboard()[0]
    trades = model.run.trades
    picked = pick_trades(trades.assign(net_return=trade_returns(trades)))
    if not picked:
        return None
    rows = [
        [t for kind, t in picked if kind == "best"],
        [t for kind, t in picked if kind == "worst"],
    ]
    rows = [row for row in rows if row]
    titles = [
        _panel_title(panels[col]) if col < len(panels) else ""
        for panels in rows
        for col in range(PANEL_TRADES)
    ]
    fig = make_subplots(
        rows=len(rows),
        cols=PANEL_TRADES,
        subplot_titles=titles,
        vertical_spacing=0.16,
        horizontal_spacing=0.06,
    )
    for row, panels in enumerate(rows, start=1):
        for col, trade in enumerate(panels, start=1):
            _add_panel(fig, result.candles, trade, row=row, col=col)
    fig.update_xaxes(rangeslider_visible=False, nticks=4)
    fig.update_layout(
        title=f"Best and worst trades of {model.name} by net P&L (entry ▲ long / ▼ short, exit ✕)",
        showlegend=False,
        height=300 * len(rows) + 90,
        **LAYOUT,
    )
    fig.update_annotations(font_size=11)
    return fig


def _panel_title(trade: pd.Series) -> str:
    side = "long" if int(trade["side"]) > 0 else "short"
    entry = pd.Timestamp(trade["entry_time"]).strftime("%Y-%m-%d %H:%M")
    return f"{trade['net_return']:+.2%} {side}, {int(trade['bars_held'])} bars, {entry}"


def _add_panel(
    fig: go.Figure, candles: pd.DataFrame, trade: pd.Series, *, row: int, col: int
) -> None:
    fig.add_trace(candlestick(trade_window(candles, trade), name="price"), row=row, col=col)
    color = "#2ca02c" if float(trade["pnl_net"]) > 0 else "#d62728"
    entry_symbol = "triangle-up" if int(trade["side"]) > 0 else "triangle-down"
    fig.add_trace(
        go.Scatter(
            x=utc_labels(pd.DatetimeIndex([trade["entry_time"], trade["exit_time"]])),
            y=significant(np.array([trade["entry_price"], trade["exit_price"]])),
            mode="lines+markers",
            line={"color": color, "dash": "dot", "width": 1.5},
            marker={"symbol": [entry_symbol, "x"], "size": 11, "color": color},
            name="trade",
            hovertemplate="%{x}<br>%{y}<extra></extra>",
        ),
        row=row,
        col=col,
    )
