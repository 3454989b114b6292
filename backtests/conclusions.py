"""The report's conclusions in plain words: money vs buy-and-hold, significance, costs."""

from __future__ import annotations

import math

from backtests.run import BacktestResult, ModelBacktest
from strategy.costs import to_bps


def _pct(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:+.2%}"


def model_verdict(model: ModelBacktest, *, fee_bps: float) -> list[str]:
    """Plain-words conclusions for one model: money vs buy-and-hold, significance, costs."""
    trading = model.trading
    gap_pp = abs(model.excess_return) * 100
    side = "BEAT" if model.excess_return > 0 else "LOST to"
    if trading.n_trades == 0 and trading.n_open_trades == 0:
        outcome = "It never traded (the policy stayed flat): no money made or lost."
    else:
        outcome = (
            f"It {'made' if trading.total_return > 0 else 'lost'} money after costs "
            f"({fee_bps:g} bps fee per side, {trading.n_trades:,} closed trades)."
        )
    lines = [
        f"The strategy {side} buy-and-hold by {gap_pp:.1f} pp "
        f"({_pct(trading.total_return)} vs {_pct(trading.buy_and_hold_return)}).",
        outcome,
    ]
    sig = model.significance
    better = "significantly better" if sig.is_significant() else "NOT significantly better"
    lines.append(
        f"Accuracy {sig.accuracy:.4f} is {better} than the best baseline "
        f"({sig.baseline} {sig.baseline_accuracy:.4f}): one-sided binomial p = {sig.p_value:.3g}."
    )
    low, high = sig.roc_auc_ci
    lines.append(
        f"ROC-AUC {sig.roc_auc:.4f} ({sig.level:.0%} block-bootstrap CI {low:.4f}-{high:.4f}); "
        f"context: the previous candle's return alone scores ROC-AUC "
        f"{model.previous_return_auc:.4f} ({1 - model.previous_return_auc:.4f} betting the "
        "other way)."
    )
    fees = model.fee_sensitivity
    if fees.break_even_bps is not None:
        verdict = "above" if fee_bps > fees.break_even_bps else "below"
        lines.append(
            f"Break-even fee {fees.break_even_bps:.2f} bps per side; the configured "
            f"{fee_bps:g} bps is {verdict} it."
        )
    else:
        lines.append(f"Fee sensitivity: {fees.note}.")
    if model.in_sample:
        lines.insert(0, in_sample_warning(model))
    return lines


def in_sample_warning(model: ModelBacktest) -> str:
    """The banner text for a model tested on candles it was trained on."""
    low, high = model.train_range or (None, None)
    return (
        f"IN-SAMPLE: {model.in_sample_bars:,} tested candles lie inside the training range of "
        f"{model.model_id} ({low} .. {high}); results on them are not evidence."
    )


def verdict_lines(result: BacktestResult) -> list[str]:
    """In-sample warnings first, then the decision layer's verdict, then conclusions for every
    model (prefixed by the model name when there are several)."""
    fee_bps = to_bps(result.settings.strategy.fee_rate)
    several = len(result.models) > 1
    warnings = [in_sample_warning(model) for model in result.leaderboard() if model.in_sample]
    lines = warnings + list(result.selection.stats.verdict)
    for model in result.leaderboard():
        prefix = f"{model.name}: " if several else ""
        own = [line for line in model_verdict(model, fee_bps=fee_bps) if line not in warnings]
        lines += [prefix + line for line in own]
    return lines
