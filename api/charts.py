"""Pure Plotly builders for the dashboard: (DataFrame, ...) -> go.Figure, plus HTML embedding."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

UP_COLOUR = "#1a7f37"
DOWN_COLOUR = "#cf222e"
LINE_COLOUR = "#0969da"
REFERENCE_COLOURS = ("#8250df", "#bc4c00", "#6e7781")
_LAYOUT = {
    "template": "plotly_white",
    "margin": {"l": 56, "r": 16, "t": 40, "b": 40},
    "height": 320,
    "legend": {"orientation": "h", "y": -0.2},
    "font": {"family": "system-ui, sans-serif", "size": 12},
}


def accuracy_figure(series: pd.DataFrame, *, references: Mapping[str, float]) -> go.Figure:
    """Rolling live accuracy over time with flat reference lines (expectations, coin flip).

    Args:
        series: index = candle open time; column `rolling_accuracy` (0..1).
        references: label -> accuracy drawn as a dashed horizontal line across the chart.
    """
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=series.index,
            y=series["rolling_accuracy"],
            mode="lines+markers" if len(series) < 60 else "lines",
            name="live (rolling)",
            line={"color": LINE_COLOUR, "width": 2},
            hovertemplate="%{x|%Y-%m-%d %H:%M}Z<br>accuracy %{y:.1%}<extra></extra>",
        )
    )
    if len(series):
        x_span = [series.index[0], series.index[-1]]
        for colour, (label, value) in zip(REFERENCE_COLOURS, references.items(), strict=False):
            fig.add_trace(
                go.Scatter(
                    x=x_span,
                    y=[value, value],
                    mode="lines",
                    name=label,
                    hovertemplate=f"{label} {value:.1%}<extra></extra>",
                    line={"color": colour, "dash": "dash", "width": 1.5},
                )
            )
    fig.update_layout(**_LAYOUT, title="Rolling live accuracy vs expected")
    values = [*series["rolling_accuracy"].dropna(), *references.values()]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    fig.update_yaxes(
        tickformat=".0%", title="accuracy", range=[max(0.0, low - 0.05), min(1.0, high + 0.05)]
    )
    return fig


def importance_figure(importance: pd.Series, *, top: int = 20) -> go.Figure:
    """Horizontal bars of the `top` features by absolute importance (largest on top)."""
    ranked = importance.reindex(importance.abs().sort_values(ascending=False).index).head(top)
    ranked = ranked.iloc[::-1]
    fig = go.Figure(
        go.Bar(
            x=ranked.to_numpy(),
            y=[str(name) for name in ranked.index],
            orientation="h",
            marker={"color": [UP_COLOUR if value >= 0 else DOWN_COLOUR for value in ranked]},
            hovertemplate="%{y}: %{x:.4g}<extra></extra>",
        )
    )
    layout = {**_LAYOUT, "height": max(280, 22 * len(ranked) + 80)}
    fig.update_layout(**layout, title=f"Feature importance (top {len(ranked)})")
    fig.update_yaxes(automargin=True)
    return fig


def probability_figure(predictions: pd.DataFrame, *, threshold: float) -> go.Figure:
    """Logged `proba_up` over time; markers show the outcome (right, wrong, pending).

    Args:
        predictions: index = candle open time; columns `proba_up` and `is_correct`
            (True, False or None while the target candle is still open).
        threshold: the UP/DOWN decision threshold, drawn as a dashed line.
    """
    fig = go.Figure()
    outcome = predictions["is_correct"].map({True: "right", False: "wrong"}).fillna("pending")
    styles = {"right": UP_COLOUR, "wrong": DOWN_COLOUR, "pending": "#6e7781"}
    for label, colour in styles.items():
        part = predictions[outcome == label]
        if part.empty:
            continue
        fig.add_trace(
            go.Scatter(
                x=part.index,
                y=part["proba_up"],
                mode="markers",
                name=label,
                marker={"color": colour, "size": 7},
                hovertemplate="%{x|%Y-%m-%d %H:%M}Z<br>P(up) %{y:.3f}<extra></extra>",
            )
        )
    if len(predictions):
        fig.add_trace(
            go.Scatter(
                x=[predictions.index.min(), predictions.index.max()],
                y=[threshold, threshold],
                mode="lines",
                name=f"threshold {threshold:.2f}",
                line={"color": "#6e7781", "dash": "dot", "width": 1},
                hoverinfo="skip",
            )
        )
    fig.update_layout(**_LAYOUT, title="Logged P(up) and outcomes")
    fig.update_yaxes(title="P(up)")
    return fig


CHART_CONFIG = {"displaylogo": False, "responsive": True}
"""The Plotly config of every dashboard chart (first drawing and refreshes alike)."""


def figure_json(fig: go.Figure) -> dict[str, Any]:
    """A figure's `data`, `layout` and `config` as JSON values (what `Plotly.react` takes)."""
    return {**json.loads(pio.to_json(fig, validate=False)), "config": CHART_CONFIG}


def figure_html(fig: go.Figure, *, div_id: str, nonce: str | None = None) -> str:
    """A `<div>` + script fragment; the page loads Plotly itself from /static/plotly.min.js.

    `nonce` goes on the inline script, which the page's Content-Security-Policy then allows.
    """
    html = str(
        pio.to_html(
            fig,
            include_plotlyjs=False,
            full_html=False,
            div_id=div_id,
            config=CHART_CONFIG,
        )
    )
    # the first tag is the fragment's own script; its JSON data escapes "<" (\u003c)
    return html if nonce is None else html.replace("<script", f'<script nonce="{nonce}"', 1)


def paper_figure(equity: pd.DataFrame) -> go.Figure:
    """Paper equity and buy-and-hold equity since the paper account started.

    Args:
        equity: index = candle open time; columns `equity` and `buy_and_hold`.
    """
    fig = go.Figure()
    for column, label, colour in (
        ("equity", "paper (policy, fees, slippage)", LINE_COLOUR),
        ("buy_and_hold", "buy & hold", REFERENCE_COLOURS[2]),
    ):
        fig.add_trace(
            go.Scatter(
                x=equity.index,
                y=equity[column],
                mode="lines",
                name=label,
                line={"color": colour, "width": 2 if column == "equity" else 1.5},
                hovertemplate="%{x|%Y-%m-%d %H:%M}Z<br>%{y:,.2f}<extra></extra>",
            )
        )
    fig.update_layout(**_LAYOUT, title="Paper equity vs buy & hold")
    fig.update_yaxes(title="equity")
    return fig


def band_figure(returns: pd.Series, *, window_bars: int, band: Mapping[str, float]) -> go.Figure:
    """Rolling paper net return over `window_bars` candles inside the out-of-sample band.

    Args:
        returns: index = candle open time; the paper return over the preceding window.
        band: quantiles `p01`, `p05`, `p50`, `p95`, `p99` of the out-of-sample returns.
    """
    fig = go.Figure()
    if len(returns):
        x = [returns.index[0], returns.index[-1]]
        fig.add_trace(go.Scatter(x=x, y=[band["p05"]] * 2, mode="lines", line={"width": 0},
                                 showlegend=False, hoverinfo="skip"))  # fmt: skip
        fig.add_trace(
            go.Scatter(
                x=x,
                y=[band["p95"]] * 2,
                mode="lines",
                fill="tonexty",
                fillcolor="rgba(9, 105, 218, 0.12)",
                line={"width": 0},
                name="expected 5-95 %",
                hoverinfo="skip",
            )
        )
        for key, label in (("p01", "alarm below (1 %)"), ("p99", "alarm above (99 %)")):
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=[band[key]] * 2,
                    mode="lines",
                    name=label,
                    line={"color": DOWN_COLOUR, "dash": "dash", "width": 1},
                    hovertemplate=f"{label} {band[key]:.2%}<extra></extra>",
                )
            )
    fig.add_trace(
        go.Scatter(
            x=returns.index,
            y=returns,
            mode="lines",
            name=f"paper, last {window_bars} candles",
            line={"color": LINE_COLOUR, "width": 2},
            hovertemplate="%{x|%Y-%m-%d %H:%M}Z<br>%{y:.2%}<extra></extra>",
        )
    )
    fig.update_layout(**_LAYOUT, title=f"{window_bars}-candle net return vs expectation band")
    fig.update_yaxes(tickformat=".1%", title="net return")
    return fig
