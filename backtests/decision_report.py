"""The decision-layer part of the report: chosen policies, gross vs net, DSR, PBO, hindsight."""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go

from backtests.decisions import DecisionOutcome
from backtests.run import BacktestResult
from ml.policy_search import describe_policy

HINDSIGHT_ROWS = 12  # candidates listed in the hindsight table (the full grid is in the JSON)
_LAYOUT = {"template": "plotly_white", "margin": {"l": 60, "r": 30, "t": 60, "b": 50}}


def choices_payload(decision: DecisionOutcome) -> list[dict[str, Any]]:
    """One entry per test window: the chosen candidate and the evidence it was chosen on."""
    rows = []
    for choice in decision.choices:
        candidate = decision.chosen(choice)
        rows.append(
            {
                "fold": choice.fold,
                "candidate": candidate.label,
                "stream": None if candidate.policy.stay_flat else candidate.stream,
                "horizon_bars": None if candidate.policy.stay_flat else candidate.horizon_bars,
                "policy": candidate.policy.model_dump(mode="json"),
                "selection_candles": choice.start - choice.window_start,
                "score": choice.score,
                "t_stat": choice.t_stat,
                "n_trades_in_selection": choice.n_trades,
                "n_eligible": choice.n_eligible,
                "reason": choice.reason,
            }
        )
    return rows


def decision_payload(result: BacktestResult) -> dict[str, Any]:
    """The `decision` section of the JSON report (see REPORT_SCHEMA.md)."""
    selection = result.selection
    stats = selection.stats
    deflated, versus, pbo = stats.deflated, stats.sharpe_vs_buy_and_hold, stats.overfitting
    hindsight = stats.hindsight.sort_values("net_return", ascending=False)
    return {
        "mode": selection.decision.mode,
        "source": selection.source,
        "n_candidates": selection.decision.n_trials,
        "objective": result.settings.decision.objective,
        "choices": choices_payload(selection.decision),
        "folds": [
            {
                "fold": f.fold,
                "start": f.start.isoformat(),
                "end": f.end.isoformat(),
                "candidate": f.candidate,
                "gross_return": f.gross_return,
                "net_return": f.net_return,
                "buy_and_hold_return": f.buy_and_hold_return,
                "n_trades": f.n_trades,
            }
            for f in stats.folds
        ],
        "trading": selection.trading.to_dict(),
        "gross_return": stats.gross_return,
        "trades_per_day": stats.trades_per_day,
        "engine_gap": selection.engine_gap,
        "deflated_sharpe": {
            "sharpe": deflated.sharpe,
            "expected_max_sharpe": deflated.expected_max_sharpe,
            "probability": deflated.probability,
            "n_trials": deflated.n_trials,
            "sharpe_variance": deflated.sharpe_variance,
            "skewness": deflated.skewness,
            "kurtosis": deflated.kurtosis,
            "n_observations": deflated.n_observations,
        },
        "overfitting": None
        if pbo is None
        else {
            "probability": pbo.probability,
            "n_combinations": pbo.n_combinations,
            "n_blocks": pbo.n_blocks,
            "n_candidates": pbo.n_candidates,
            "performance_degradation": pbo.performance_degradation,
            "logit_histogram": _histogram(np.asarray(pbo.logits)),
        },
        "sharpe_vs_buy_and_hold": {
            "difference": versus.difference,
            "low": versus.low,
            "high": versus.high,
            "confidence": versus.confidence,
            "p_value": versus.p_value,
            "n_resamples": versus.n_resamples,
            "block_bars": versus.block_bars,
        },
        "hindsight": {
            "note": "HINDSIGHT: every candidate over the whole tested period; picked after the "
            "fact, never the result",
            "rows": hindsight.to_dict(orient="records"),
        },
        "verdict": list(stats.verdict),
    }


def _histogram(logits: np.ndarray) -> dict[str, list[float]]:
    finite = logits[np.isfinite(logits)]
    if not len(finite):
        return {"edges": [], "counts": []}
    counts, edges = np.histogram(finite, bins=min(30, max(5, len(np.unique(finite)))))
    return {"edges": edges.tolist(), "counts": counts.astype(float).tolist()}


def describe_fixed(result: BacktestResult) -> str:
    """The policy line of the report header."""
    decision = result.settings.decision
    if decision.mode == "fixed":
        return f"fixed policy: {describe_policy(decision.policy)}"
    n = result.selection.decision.n_trials
    return (
        f"policy chosen per fold (nested, on earlier out-of-sample candles only) among {n} "
        f"candidates by net {decision.objective}; evidence rule: >= {decision.min_trades} "
        f"trades and a timing t-statistic that the best of them exceeds by luck only "
        f"{decision.evidence_alpha:.0%} of the time"
        f"{' + ' + format(decision.min_t_stat, 'g') if decision.min_t_stat else ''}, else stay flat"
    )


# ----------------------------------------------------------------------------- charts
def pbo_figure(result: BacktestResult) -> go.Figure:
    """Histogram of the CSCV logits (left of 0 = the in-sample best fell below the median)."""
    fig = go.Figure()
    pbo = result.selection.stats.overfitting
    title = "Probability of backtest overfitting: not computed (one candidate)"
    if pbo is not None:
        # binned here: the page carries 30 bars, not one number per split (12,870 at 16 blocks)
        histogram = _histogram(np.asarray(pbo.logits))
        edges = np.asarray(histogram["edges"])
        fig.add_bar(
            x=((edges[:-1] + edges[1:]) / 2).round(4),
            y=histogram["counts"],
            width=np.diff(edges).round(4),
            marker_color="#1f77b4",
        )
        fig.add_vline(x=0, line_dash="dash", line_color="#d62728")
        title = (
            f"PBO {pbo.probability:.0%}: logits of the in-sample best's out-of-sample rank "
            f"({pbo.n_combinations:,} CSCV splits, {pbo.n_candidates} candidates)"
        )
    fig.update_layout(
        title=title, xaxis_title="logit (<= 0: overfit split)", yaxis_title="splits", **_LAYOUT
    )
    return fig


def hindsight_figure(result: BacktestResult) -> go.Figure:
    """HINDSIGHT heatmap: whole-period net return by entry threshold x minimum hold."""
    grid = result.selection.stats.hindsight
    rows = grid[grid["candidate"] != "stay flat"]
    fig = go.Figure()
    if len(rows):
        table = rows.groupby(["min_hold_bars", "entry_threshold"])["net_return"].max().unstack()
        fig.add_heatmap(
            z=(table.to_numpy() * 100).round(1),
            x=[f"entry {v:g}" for v in table.columns],
            y=[f"hold {v}" for v in table.index],
            colorscale="RdBu",
            zmid=0,
            colorbar={"title": "net %"},
            hovertemplate="%{y}, %{x}: best net %{z} %<extra></extra>",
        )
    fig.update_layout(
        title="HINDSIGHT, not a result: best whole-period net return per cell over the other "
        "parameters",
        **_LAYOUT,
    )
    return fig


DECISION_FIGURES = {
    "pbo": pbo_figure,
    "hindsight": hindsight_figure,
}
