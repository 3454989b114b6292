"""Shared pieces of the report's Plotly charts: bounded traces, compact labels, colours."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import plotly.graph_objects as go

MAX_LINE_POINTS = 4000
"""Long lines are reduced to about this many points (min and max of each bucket kept)."""
MAX_CANDLES = 1500
"""Candlestick overviews merge consecutive candles until at most this many bars remain."""
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
HOLD_COLOR = "#7f7f7f"
LAYOUT = {"template": "plotly_white", "margin": {"l": 60, "r": 30, "t": 50, "b": 40}}


def downsample(series: pd.Series, *, max_points: int = MAX_LINE_POINTS) -> pd.Series:
    """Keep the minimum and maximum of each of `max_points / 2` equal buckets (shape-preserving).

    >>> s = pd.Series(np.arange(10.0))
    >>> downsample(s, max_points=4).tolist()
    [0.0, 4.0, 5.0, 9.0]
    """
    n = len(series)
    if n <= max_points:
        return series
    values = series.to_numpy(dtype="float64")
    edges = np.linspace(0, n, max_points // 2 + 1).astype(np.int64)
    keep: list[int] = []
    for low, high in itertools.pairwise(edges.tolist()):
        if high <= low:
            continue
        chunk = values[low:high]
        if np.isnan(chunk).all():
            keep.append(int(low))
            continue
        pair = {int(low + np.nanargmin(chunk)), int(low + np.nanargmax(chunk))}
        keep.extend(sorted(pair))
    return series.iloc[keep]


def utc_labels(times: pd.Series | pd.Index) -> list[str]:
    """Compact UTC time strings for Plotly date axes (a third shorter than ISO with offset).

    >>> utc_labels(pd.DatetimeIndex(["2024-01-02 03:00"], tz="UTC"))
    ['2024-01-02 03:00']
    """
    return [str(t) for t in pd.DatetimeIndex(times).strftime("%Y-%m-%d %H:%M")]


def significant(values: pd.Series | np.ndarray) -> list[float]:
    """Floats rounded to 6 significant digits: enough for a chart, half the JSON."""
    array = np.asarray(values, dtype="float64")
    return [float(f"{v:.6g}") for v in array]


def color_of(position: int) -> str:
    """The line color of the model at `position` (stable across charts)."""
    return PALETTE[position % len(PALETTE)]


def line(
    series: pd.Series,
    *,
    name: str,
    color: str,
    dash: str | None = None,
    max_points: int = MAX_LINE_POINTS,
) -> go.Scattergl:
    """A line trace of at most `max_points` points (extremes kept)."""
    reduced = downsample(series, max_points=max_points)
    return go.Scattergl(
        x=utc_labels(reduced.index),
        y=significant(reduced),
        mode="lines",
        name=name,
        line={"color": color, "width": 1.3, "dash": dash},
    )


def resample_ohlc(candles: pd.DataFrame, *, max_bars: int = MAX_CANDLES) -> pd.DataFrame:
    """Merge runs of `ceil(n / max_bars)` consecutive candles into one bar (first open, highest
    high, lowest low, last close), indexed by the first candle's open time.

    >>> idx = pd.date_range("2024-01-01", periods=5, freq="h", tz="UTC")
    >>> frame = pd.DataFrame({"open": [1, 2, 3, 4, 5], "high": [2, 9, 4, 5, 6],
    ...     "low": [0, 1, 2, 3, 4], "close": [2, 3, 4, 5, 6]}, index=idx, dtype=float)
    >>> resample_ohlc(frame, max_bars=3)[["open", "high", "low", "close"]].values.tolist()
    [[1.0, 9.0, 0.0, 3.0], [3.0, 5.0, 2.0, 5.0], [5.0, 6.0, 4.0, 6.0]]
    """
    n = len(candles)
    per_bar = max(1, -(-n // max_bars))
    if per_bar == 1:
        return candles[["open", "high", "low", "close"]]
    group = np.arange(n) // per_bar
    grouped = candles[["open", "high", "low", "close"]].groupby(group)
    bars = grouped.agg({"open": "first", "high": "max", "low": "min", "close": "last"})
    bars.index = candles.index[::per_bar][: len(bars)]
    return bars


def candlestick(bars: pd.DataFrame, *, name: str, showlegend: bool = False) -> go.Candlestick:
    """A candlestick trace (green up, red down) with 6-significant-digit prices."""
    return go.Candlestick(
        x=utc_labels(bars.index),
        open=significant(bars["open"]),
        high=significant(bars["high"]),
        low=significant(bars["low"]),
        close=significant(bars["close"]),
        name=name,
        showlegend=showlegend,
        increasing={"line": {"color": "#26a69a", "width": 1}},
        decreasing={"line": {"color": "#ef5350", "width": 1}},
    )
