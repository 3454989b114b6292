"""Pure Plotly builders for the backtest report: (result) -> go.Figure, light for 33k candles."""

from __future__ import annotations

import itertools
import logging
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from backtests.run import BacktestResult, ModelBacktest
from ml.evaluation import calibration_curve_points, roc_curve_points
from strategy.costs import to_bps

logger = logging.getLogger(__name__)

MAX_LINE_POINTS = 4000
"""Long lines are reduced to about this many points (min and max of each bucket kept)."""
MAX_ROC_POINTS = 400
TOP_FEATURES = 15
_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
_HOLD_COLOR = "#7f7f7f"
_LAYOUT = {"template": "plotly_white", "margin": {"l": 60, "r": 30, "t": 50, "b": 40}}


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


def _significant(values: pd.Series | np.ndarray) -> list[float]:
    """Floats rounded to 6 significant digits: enough for a chart, half the JSON."""
    array = np.asarray(values, dtype="float64")
    return [float(f"{v:.6g}") for v in array]


def color_of(position: int) -> str:
    """The line color of the model at `position` (stable across charts)."""
    return _PALETTE[position % len(_PALETTE)]


def _line(series: pd.Series, *, name: str, color: str, dash: str | None = None) -> go.Scattergl:
    reduced = downsample(series)
    return go.Scattergl(
        x=utc_labels(reduced.index),
        y=_significant(reduced),
        mode="lines",
        name=name,
        line={"color": color, "width": 1.3, "dash": dash},
    )


def price_figure(result: BacktestResult) -> go.Figure:
    """Close price with each model's entries (triangles up) and exits (triangles down)."""
    fig = go.Figure()
    fig.add_trace(_line(result.candles["close"], name="close", color=_HOLD_COLOR))
    for position, model in enumerate(result.models):
        trades = model.run.trades
        color = color_of(position)
        fig.add_trace(
            go.Scattergl(
                x=utc_labels(trades["entry_time"]),
                y=_significant(trades["entry_price"]),
                mode="markers",
                name=f"{model.algorithm} entry",
                marker={"symbol": "triangle-up", "size": 7, "color": color},
            )
        )
        closed = trades[~trades["is_open"].astype(bool)]
        fig.add_trace(
            go.Scattergl(
                x=utc_labels(closed["exit_time"]),
                y=_significant(closed["exit_price"]),
                mode="markers",
                name=f"{model.algorithm} exit",
                marker={"symbol": "triangle-down", "size": 7, "color": color, "opacity": 0.6},
            )
        )
    fig.update_layout(
        title="Price with entries and exits",
        xaxis_title="UTC",
        yaxis_title="price (log)",
        yaxis_type="log",
        **_LAYOUT,
    )
    return fig


def equity_figure(result: BacktestResult) -> go.Figure:
    """Equity of each model's strategy against buy-and-hold (same cash, same candles)."""
    fig = go.Figure()
    hold = result.buy_and_hold_equity
    fig.add_trace(_line(hold, name="buy-and-hold", color=_HOLD_COLOR, dash="dot"))
    for position, model in enumerate(result.models):
        fig.add_trace(_line(model.run.equity, name=model.algorithm, color=color_of(position)))
    fig.update_layout(
        title="Equity vs buy-and-hold",
        xaxis_title="UTC",
        yaxis_title="equity (log)",
        yaxis_type="log",
        **_LAYOUT,
    )
    return fig


def drawdown_of(equity: pd.Series, initial: float) -> pd.Series:
    """Fall from the running peak (<= 0), the initial cash counting as the first peak.

    >>> drawdown_of(pd.Series([110.0, 99.0, 120.0]), 100.0).round(3).tolist()
    [0.0, -0.1, 0.0]
    """
    peaks = np.maximum.accumulate(np.maximum(equity.to_numpy(dtype="float64"), initial))
    return pd.Series(equity.to_numpy(dtype="float64") / peaks - 1.0, index=equity.index)


def drawdown_figure(result: BacktestResult) -> go.Figure:
    """Drawdown curves (percent below the running peak) of each model and buy-and-hold."""
    cash = result.settings.strategy.cash
    fig = go.Figure()
    hold = drawdown_of(result.buy_and_hold_equity, cash) * 100
    fig.add_trace(_line(hold, name="buy-and-hold", color=_HOLD_COLOR, dash="dot"))
    for position, model in enumerate(result.models):
        curve = drawdown_of(model.run.equity, cash) * 100
        fig.add_trace(_line(curve, name=model.algorithm, color=color_of(position)))
    fig.update_layout(title="Drawdown", xaxis_title="UTC", yaxis_title="% below peak", **_LAYOUT)
    return fig


def _labelled(model: ModelBacktest) -> pd.DataFrame:
    return model.predictions.dropna(subset=["y_true", "proba_up"])


def roc_figure(result: BacktestResult) -> go.Figure:
    """Out-of-sample ROC curve of each model with the chance diagonal."""
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[0, 1], y=[0, 1], mode="lines", name="chance", line={"color": "#bbb", "dash": "dash"}
        )
    )
    for position, model in enumerate(result.models):
        rows = _labelled(model)
        points = roc_curve_points(rows["y_true"].astype("int64"), rows["proba_up"])
        step = max(1, math.ceil(len(points) / MAX_ROC_POINTS))
        points = pd.concat([points.iloc[::step], points.iloc[[-1]]])
        auc = model.classification.roc_auc
        fig.add_trace(
            go.Scatter(
                x=points["fpr"].round(5),
                y=points["tpr"].round(5),
                mode="lines",
                name=f"{model.algorithm} (AUC {auc:.3f})",
                line={"color": color_of(position)},
            )
        )
    fig.update_layout(
        title="ROC curve", xaxis_title="false positive rate", yaxis_title="true positive rate"
    )
    fig.update_layout(**_LAYOUT)
    return fig


def confusion_figure(result: BacktestResult) -> go.Figure:
    """Confusion matrix (counts) of each model at its own thresholds."""
    names = [m.algorithm for m in result.models]
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names)
    for column, model in enumerate(result.models, start=1):
        (tn, fp), (fn, tp) = model.classification.confusion
        counts = [[tn, fp], [fn, tp]]
        fig.add_trace(
            go.Heatmap(
                z=counts,
                x=["pred DOWN", "pred UP"],
                y=["true DOWN", "true UP"],
                text=[[f"{v:,}" for v in row] for row in counts],
                texttemplate="%{text}",
                colorscale="Blues",
                showscale=False,
            ),
            row=1,
            col=column,
        )
    fig.update_layout(title="Confusion matrix", **_LAYOUT)
    return fig


def calibration_figure(result: BacktestResult) -> go.Figure:
    """Reliability diagram: mean predicted UP probability vs the observed UP share per bin."""
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[0, 1], y=[0, 1], mode="lines", name="perfect", line={"color": "#bbb", "dash": "dash"}
        )
    )
    for position, model in enumerate(result.models):
        rows = _labelled(model)
        points = calibration_curve_points(rows["y_true"].astype("int64"), rows["proba_up"])
        fig.add_trace(
            go.Scatter(
                x=points["mean_proba"],
                y=points["fraction_up"],
                mode="lines+markers",
                name=model.algorithm,
                line={"color": color_of(position)},
                customdata=points["count"],
                hovertemplate="predicted %{x:.3f}<br>observed %{y:.3f}<br>n=%{customdata}",
            )
        )
    fig.update_layout(
        title="Calibration (quantile bins)",
        xaxis_title="mean predicted P(UP)",
        yaxis_title="observed UP share",
        **_LAYOUT,
    )
    return fig


def importance_figure(result: BacktestResult) -> go.Figure:
    """Top features of each model: permutation importance where known, else native."""
    names = [m.algorithm for m in result.models]
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.15)
    for column, model in enumerate(result.models, start=1):
        values, kind = _importance_values(model.importances)
        top = values.head(TOP_FEATURES).iloc[::-1]
        fig.add_trace(
            go.Bar(
                x=top.to_numpy(),
                y=[str(name) for name in top.index],
                orientation="h",
                name=f"{model.algorithm} ({kind})",
                marker_color=color_of(column - 1),
            ),
            row=1,
            col=column,
        )
    fig.update_layout(title="Feature importance", showlegend=True, height=520, **_LAYOUT)
    return fig


def _importance_values(importances: pd.DataFrame) -> tuple[pd.Series, str]:
    for kind in ("permutation", "native"):
        if kind in importances and importances[kind].notna().any():
            return importances[kind].dropna().sort_values(ascending=False), kind
    return pd.Series(dtype="float64"), "none"


def fold_figure(result: BacktestResult) -> go.Figure:
    """Per fold: accuracy and ROC-AUC (top), strategy vs buy-and-hold return (bottom)."""
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        subplot_titles=("Classification per fold", "Return per fold (%)"),
    )
    first = result.models[0]
    labels = [segment.label for segment in first.segments]
    scores: list[float] = []
    for position, model in enumerate(result.models):
        color = color_of(position)
        for metric, opacity in (("accuracy", 1.0), ("roc_auc", 0.55)):
            values = [
                getattr(s.classification, metric) if s.classification else None
                for s in model.segments
            ]
            scores += [v for v in values if v is not None and math.isfinite(v)]
            fig.add_trace(
                go.Bar(
                    x=labels,
                    y=values,
                    name=f"{model.algorithm} {metric}",
                    marker={"color": color, "opacity": opacity},
                ),
                row=1,
                col=1,
            )
        returns = [s.trading.total_return * 100 for s in model.segments]
        fig.add_trace(
            go.Bar(x=labels, y=returns, name=f"{model.algorithm} return", marker_color=color),
            row=2,
            col=1,
        )
    hold = [s.trading.buy_and_hold_return * 100 for s in first.segments]
    fig.add_trace(go.Bar(x=labels, y=hold, name="buy-and-hold", marker_color=_HOLD_COLOR), 2, 1)
    fig.add_hline(y=0.5, line={"color": "#999", "dash": "dot"}, row=1, col=1)
    if scores:  # bars around 0.5 look alike from zero: zoom on the values
        fig.update_yaxes(range=[min(*scores, 0.5) - 0.02, max(*scores, 0.5) + 0.02], row=1, col=1)
    fig.update_layout(title="Per-fold metrics", barmode="group", height=620, **_LAYOUT)
    return fig


def fee_figure(result: BacktestResult) -> go.Figure:
    """Total return (left axis) and Sharpe (right axis) against the fee per side."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for position, model in enumerate(result.models):
        color = color_of(position)
        points = model.fee_sensitivity.points
        bps = [p.fee_bps for p in points]
        fig.add_trace(
            go.Scatter(
                x=bps,
                y=[p.total_return * 100 for p in points],
                mode="lines+markers",
                name=f"{model.algorithm} return %",
                line={"color": color},
            ),
            secondary_y=False,
        )
        fig.add_trace(
            go.Scatter(
                x=bps,
                y=[p.sharpe for p in points],
                mode="lines+markers",
                name=f"{model.algorithm} Sharpe",
                line={"color": color, "dash": "dot"},
            ),
            secondary_y=True,
        )
        _mark_break_even(fig, model, color)
    configured = to_bps(result.settings.strategy.fee_rate)
    fig.add_vline(x=configured, line={"color": "#555", "dash": "dot"}, annotation_text="configured")
    fig.add_hline(y=0, line={"color": "#999"}, secondary_y=False)
    fig.update_xaxes(title_text="fee per side (bps)")
    fig.update_yaxes(title_text="total return (%)", secondary_y=False)
    fig.update_yaxes(title_text="Sharpe", secondary_y=True)
    fig.update_layout(title="Fee sensitivity", **_LAYOUT)
    return fig


def _mark_break_even(fig: go.Figure, model: ModelBacktest, color: str) -> None:
    fee = model.fee_sensitivity.break_even_bps
    if fee is None:
        return
    fig.add_vline(
        x=fee,
        line={"color": color, "dash": "dash"},
        annotation_text=f"{model.algorithm} break-even {fee:.1f} bps",
        annotation_position="top left",
    )


FIGURES = {
    "price": price_figure,
    "equity": equity_figure,
    "drawdown": drawdown_figure,
    "roc": roc_figure,
    "confusion": confusion_figure,
    "calibration": calibration_figure,
    "importance": importance_figure,
    "folds": fold_figure,
    "fees": fee_figure,
}
"""Every chart of the HTML report, by div id, in page order."""
