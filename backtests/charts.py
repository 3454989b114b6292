"""Pure Plotly builders for the backtest report: (result) -> go.Figure, bounded in size."""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from backtests.plotting import HOLD_COLOR, LAYOUT, color_of, downsample, line
from backtests.price_charts import price_figure, trade_panels_figure
from backtests.run import BacktestResult, ModelBacktest
from ml.evaluation import calibration_curve_points, roc_curve_points
from strategy.costs import to_bps

__all__ = ["FIGURES", "downsample", "drawdown_of"]

logger = logging.getLogger(__name__)

MAX_ROC_POINTS = 400
TOP_FEATURES = 15
_HOLD_COLOR = HOLD_COLOR
_LAYOUT = LAYOUT


EQUITY_POINTS = 2000
"""Points per curve of the equity and drawdown panels (about two per pixel column)."""


def equity_figure(result: BacktestResult) -> go.Figure:
    """Equity against buy-and-hold (same cash, same candles) on one log axis, drawdowns below on
    the same time axis: each model's own path and, with several models or horizons, the traded
    decision path (the headline)."""
    cash = result.settings.strategy.cash
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.68, 0.32], vertical_spacing=0.05
    )
    for equity, name, color, dash in _equity_curves(result):
        fig.add_trace(_curve(equity, name=name, color=color, dash=dash), row=1, col=1)
        under = _curve(drawdown_of(equity, cash) * 100, name=name, color=color, dash=dash)
        under.update(showlegend=False, legendgroup=name)
        fig.add_trace(under, row=2, col=1)
    fig.update_yaxes(title_text="equity (log)", type="log", row=1, col=1)
    fig.update_yaxes(title_text="% below peak", row=2, col=1)
    fig.update_xaxes(title_text="UTC", row=2, col=1)
    fig.update_layout(title="Equity vs buy-and-hold, drawdown below", height=620, **_LAYOUT)
    return fig


def _curve(series: pd.Series, *, name: str, color: str, dash: str | None) -> go.Scattergl:
    trace = line(series, name=name, color=color, dash=dash, max_points=EQUITY_POINTS)
    trace.update(legendgroup=name)
    return trace


Curve = tuple[pd.Series, str, str, str | None]
"""(values, legend name, colour, dash)"""


def _equity_curves(result: BacktestResult) -> list[Curve]:
    curves: list[Curve] = [(result.buy_and_hold_equity, "buy-and-hold", _HOLD_COLOR, "dot")]
    if len(result.models) > 1 or len(result.settings.backtest.horizons) > 1:
        label = f"decision path ({result.selection.source})"
        curves.append((result.selection.run.equity, label, "#111111", None))
    curves += [
        (model.run.equity, model.name, color_of(position), None)
        for position, model in enumerate(result.models)
    ]
    return curves


def drawdown_of(equity: pd.Series, initial: float) -> pd.Series:
    """Fall from the running peak (<= 0), the initial cash counting as the first peak.

    >>> drawdown_of(pd.Series([110.0, 99.0, 120.0]), 100.0).round(3).tolist()
    [0.0, -0.1, 0.0]
    """
    peaks = np.maximum.accumulate(np.maximum(equity.to_numpy(dtype="float64"), initial))
    return pd.Series(equity.to_numpy(dtype="float64") / peaks - 1.0, index=equity.index)


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
    """Total return (top) and Sharpe (bottom) against the fee per side, each on its own axis
    with its zero line and buy-and-hold as the reference; break-even fees labelled one per row."""
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.6, 0.4], vertical_spacing=0.08
    )
    for position, model in enumerate(result.models):
        color = color_of(position)
        points = model.fee_sensitivity.points
        bps = [p.fee_bps for p in points]
        for row, values, unit in (
            (1, [p.total_return * 100 for p in points], "return %"),
            (2, [p.sharpe for p in points], "Sharpe"),
        ):
            fig.add_trace(
                go.Scatter(
                    x=bps,
                    y=values,
                    mode="lines+markers",
                    name=f"{model.name} {unit}",
                    line={"color": color},
                    showlegend=row == 1,
                    legendgroup=model.name,
                ),
                row=row,
                col=1,
            )
    _fee_references(fig, result)
    fig.update_xaxes(title_text="fee per side (bps)", row=2, col=1)
    fig.update_yaxes(title_text="total return (%)", zeroline=True, row=1, col=1)
    fig.update_yaxes(title_text="Sharpe (annualised)", zeroline=True, row=2, col=1)
    fig.update_layout(title="Fee sensitivity", height=560, **_LAYOUT)
    return fig


def _fee_references(fig: go.Figure, result: BacktestResult) -> None:
    """Buy-and-hold lines, the configured fee and each model's break-even (labels stacked)."""
    hold = result.buy_and_hold
    for row, value, text in (
        (1, hold.total_return * 100, f"buy-and-hold {hold.total_return:+.0%}"),
        (2, hold.sharpe, f"buy-and-hold {hold.sharpe:.2f}"),
    ):
        if math.isfinite(value):
            fig.add_hline(
                y=value,
                line={"color": _HOLD_COLOR, "dash": "dot"},
                annotation_text=text,
                annotation_position="bottom right",
                row=row,
                col=1,
            )
    configured = to_bps(result.settings.strategy.fee_rate)
    fig.add_vline(x=configured, line={"color": "#555", "dash": "dot"})
    labels = [(configured, f"configured {configured:g} bps", "#555")]
    labels += [
        (model.fee_sensitivity.break_even_bps, f"{model.name} break-even", color_of(position))
        for position, model in enumerate(result.models)
        if model.fee_sensitivity.break_even_bps is not None
    ]
    for row, (fee, text, color) in enumerate(labels):
        if row:
            fig.add_vline(x=fee, line={"color": color, "dash": "dash"})
            text = f"{text} {fee:.2f} bps"
        fig.add_annotation(
            x=fee,
            y=1.0 - 0.06 * row,
            xref="x",
            yref="paper",
            text=text,
            showarrow=False,
            xanchor="left",
            yanchor="top",
            font={"color": color, "size": 11},
            bgcolor="rgba(255,255,255,0.8)",
        )


FIGURES = {
    "price": price_figure,
    "trade_panels": trade_panels_figure,
    "equity": equity_figure,
    "roc": roc_figure,
    "confusion": confusion_figure,
    "calibration": calibration_figure,
    "importance": importance_figure,
    "folds": fold_figure,
    "fees": fee_figure,
}
"""Every chart of the HTML report, by div id, in page order."""
