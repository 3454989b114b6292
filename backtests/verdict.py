"""The selection-aware verdict: Deflated Sharpe, PBO, risk vs buy-and-hold, gross vs net."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from backtests.decisions import DecisionOutcome
from backtests.metrics import buy_and_hold_metrics, trading_metrics
from backtests.sensitivity import uses_exit_rules
from core.settings import Settings
from core.timeframes import timeframe_to_ms
from ml.overfitting import (
    BacktestOverfitting,
    DeflatedSharpe,
    SharpeDifference,
    deflated_sharpe_ratio,
    probability_of_backtest_overfitting,
    sharpe_difference,
    sharpe_ratios,
    trial_sharpe_variance,
)
from strategy.runner import StrategyRun
from strategy.vectorized import simulate_signals

logger = logging.getLogger(__name__)

_DAY_MS = 86_400_000
_SIGNIFICANT = 0.95  # DSR probability needed to call a Sharpe ratio "unlikely to be luck"


@dataclass(frozen=True, slots=True)
class FoldDecision:
    """One test window: the candidate it traded and what that earned, gross and net."""

    fold: int
    start: pd.Timestamp
    end: pd.Timestamp
    candidate: str
    reason: str
    gross_return: float
    net_return: float
    buy_and_hold_return: float
    n_trades: int


@dataclass(frozen=True, slots=True)
class SelectionStats:
    """What the search is worth once the search itself is accounted for.

    Attributes:
        deflated: Deflated Sharpe Ratio of the traded path's per-candle returns, deflated by
            every candidate tried (with one candidate: the Probabilistic Sharpe Ratio).
        overfitting: PBO by CSCV over the candidates' per-candle net returns (None with a
            single candidate or too few candles).
        sharpe_vs_buy_and_hold: block-bootstrap CI of per-candle Sharpe(strategy) - Sharpe(B&H).
        folds: per test window: chosen candidate, gross and net return, buy-and-hold.
        hindsight: every candidate over the WHOLE tested period (chosen with hindsight: a
            picture of the search space, never the result).
        gross_return: the traded path without fees and slippage.
        trades_per_day: closed and open trades per calendar day of the tested period.
        verdict: plain-words lines: the `caveats` first, then the line that answers "does
            it beat buy-and-hold after costs, risk-adjusted, and how likely is that luck?"
            (`headline_sentence`).
        caveats: warnings that make the verdict moot (e.g. no earlier candles to choose on).
    """

    deflated: DeflatedSharpe
    overfitting: BacktestOverfitting | None
    sharpe_vs_buy_and_hold: SharpeDifference
    folds: tuple[FoldDecision, ...]
    hindsight: pd.DataFrame
    gross_return: float
    trades_per_day: float
    verdict: tuple[str, ...]
    caveats: tuple[str, ...] = ()

    @property
    def headline_sentence(self) -> str:
        """The one sentence that answers the user's question (after the caveats)."""
        return self.verdict[len(self.caveats)] if len(self.verdict) > len(self.caveats) else ""


def selection_stats(
    decision: DecisionOutcome,
    run: StrategyRun,
    tested: pd.DataFrame,
    buy_and_hold: pd.Series,
    settings: Settings,
    *,
    timeframe: str,
) -> SelectionStats:
    """The verdict statistics of a traded decision path (see `SelectionStats`)."""
    returns = run.equity.pct_change().fillna(run.equity.iloc[0] / settings.strategy.cash - 1)
    bh_returns = buy_and_hold.pct_change().fillna(0.0)
    candidate_simple = np.expm1(decision.returns.log_net)
    sharpes = sharpe_ratios(candidate_simple)
    deflated = deflated_sharpe_ratio(
        returns.to_numpy(),
        n_trials=decision.n_trials,
        sharpe_variance=trial_sharpe_variance(candidate_simple),
    )
    blocks = settings.decision.pbo_blocks
    overfitting = None
    if decision.n_trials > 1 and len(candidate_simple) >= 4 * blocks:
        overfitting = probability_of_backtest_overfitting(candidate_simple, n_blocks=blocks)
    bars_per_day = max(1, _DAY_MS // timeframe_to_ms(timeframe))
    versus = sharpe_difference(
        returns.to_numpy(),
        bh_returns.to_numpy(),
        block_bars=bars_per_day,
        n_resamples=settings.decision.bootstrap_resamples,
        seed=settings.ml.seed,
    )
    gross = _gross_equity(decision, tested, settings)
    folds = _fold_decisions(
        decision, run.equity, gross, buy_and_hold, run.trades, initial=settings.strategy.cash
    )
    days = max(len(run.equity) / bars_per_day, 1e-9)
    stats = SelectionStats(
        deflated=deflated,
        overfitting=overfitting,
        sharpe_vs_buy_and_hold=versus,
        folds=folds,
        hindsight=hindsight_grid(decision, sharpes),
        gross_return=float(gross.iloc[-1] / settings.strategy.cash - 1),
        trades_per_day=len(run.trades) / days,
        verdict=(),
    )
    lines = verdict_words(stats, run, tested, settings, timeframe=timeframe, mode=decision.mode)
    caveats: tuple[str, ...] = ()
    if decision.mode == "auto" and all(c.start - c.window_start < 2 for c in decision.choices):
        caveats = (
            "The auto policy had NO earlier out-of-sample candles to choose on (a single test "
            "window, e.g. holdout mode): it stayed flat by construction, which says nothing about "
            "the model; use expanding/rolling walk-forward with several folds, or "
            "decision.mode: fixed.",
        )
    return _with_verdict(stats, (*caveats, *lines), caveats)


def _with_verdict(
    stats: SelectionStats, lines: tuple[str, ...], caveats: tuple[str, ...]
) -> SelectionStats:
    return replace(stats, verdict=lines, caveats=caveats)


def _gross_equity(decision: DecisionOutcome, tested: pd.DataFrame, settings: Settings) -> pd.Series:
    """Equity of the same targets without fees or slippage (numpy twin); NaN with stop or
    take-profit rules, which only backtrader simulates."""
    if uses_exit_rules(settings.strategy):
        return pd.Series(np.nan, index=tested.index)
    twin = simulate_signals(
        tested,
        decision.side,
        sizes=decision.size,
        cash=settings.strategy.cash,
        fee_rate=0.0,
        slippage_bps=0.0,
        position_fraction=settings.strategy.position_fraction,
    )
    return twin.equity


def verdict_words(
    stats: SelectionStats,
    run: StrategyRun,
    tested: pd.DataFrame,
    settings: Settings,
    *,
    timeframe: str,
    mode: str,
) -> tuple[str, ...]:
    """Plain-words verdict; the first line answers the user's question."""
    cash = settings.strategy.cash
    mine = trading_metrics(run.trades, run.equity, tested, timeframe=timeframe)
    bh = buy_and_hold_metrics(tested, cash=cash, timeframe=timeframe)
    beats_return = mine.total_return > bh.total_return
    beats_risk = _finite(mine.sharpe) > _finite(bh.sharpe)
    versus = stats.sharpe_vs_buy_and_hold
    luck = 1 - stats.deflated.probability
    if not len(run.trades):
        head = (
            "never found enough evidence to trade (it stayed flat in every fold), so it does "
            "NOT beat buy-and-hold"
        )
    elif beats_return and beats_risk:
        head = "BEATS buy-and-hold after costs, on return and risk-adjusted (Sharpe)"
    elif beats_risk:
        head = "beats buy-and-hold risk-adjusted (Sharpe) but NOT on total return after costs"
    elif beats_return:
        head = "beats buy-and-hold on total return but NOT risk-adjusted (Sharpe)"
    else:
        head = "does NOT beat buy-and-hold after costs (neither return nor Sharpe)"
    first = (
        f"The {mode} strategy {head}: {mine.total_return:+.1%} vs {bh.total_return:+.1%}, "
        f"Sharpe {mine.sharpe:.2f} vs {bh.sharpe:.2f}; the chance that its Sharpe is no better "
        f"than luck after {stats.deflated.n_trials} candidate(s) is {luck:.0%} (DSR "
        f"{stats.deflated.probability:.2f})."
    )
    lines = [first]
    lines.append(
        f"Per-candle Sharpe difference vs buy-and-hold {versus.difference:+.4f}, "
        f"{versus.confidence:.0%} block-bootstrap CI [{versus.low:+.4f}, {versus.high:+.4f}]"
        + (
            " (excludes 0)"
            if versus.low > 0 or versus.high < 0
            else " (includes 0: no clear difference)"
        )
    )
    if stats.overfitting is not None:
        lines.append(_pbo_words(stats.overfitting))
    significant = stats.deflated.probability >= _SIGNIFICANT
    lines.append(
        "The Sharpe ratio is unlikely to be selection luck (DSR >= 0.95)."
        if significant
        else "Not significant: the result is compatible with luck once the search is counted."
    )
    lines.append(
        f"Gross (no costs) {_gross_text(stats.gross_return)}, net {mine.total_return:+.1%}; "
        f"{len(run.trades)} trades, {stats.trades_per_day:.2f} per day, "
        f"exposure {mine.exposure:.0%}."
    )
    return tuple(lines)


def _pbo_words(pbo: BacktestOverfitting) -> str:
    """The PBO in words: how often the in-sample best fell to the out-of-sample median or below.

    >>> z = np.zeros(1)
    >>> fake = BacktestOverfitting(0.1, z, 70, 8, 5, 0.0, 0.0, z, z, 10, 0)
    >>> _pbo_words(fake)[-40:]
    'the ranking of candidates is informative'
    """
    share = pbo.probability
    if share >= 0.5:
        meaning = (
            "the in-sample best usually falls to the out-of-sample median or below: "
            "the search overfits"
        )
    elif share > 0.2:
        meaning = (
            "the in-sample best beats the out-of-sample median only somewhat more often "
            "than not: a weak ranking"
        )
    else:
        meaning = "the ranking of candidates is informative"
    return (
        f"Probability of backtest overfitting {share:.0%} over {pbo.n_candidates} candidates "
        f"({pbo.n_combinations:,} CSCV splits): {meaning}"
    )


def _gross_text(value: float) -> str:
    return f"{value:+.1%}" if math.isfinite(value) else "n/a (stop rules: backtrader only)"


def _finite(value: float) -> float:
    return value if math.isfinite(value) else -math.inf


def hindsight_grid(decision: DecisionOutcome, sharpes: np.ndarray) -> pd.DataFrame:
    """Every candidate's whole-period result (HINDSIGHT: for the picture, never the result)."""
    rows = []
    log_net = decision.returns.log_net.sum(axis=0)
    log_gross = decision.returns.log_gross.sum(axis=0)
    trades = decision.returns.entries.sum(axis=0)
    for i, candidate in enumerate(decision.candidates):
        policy = candidate.policy
        rows.append(
            {
                "candidate": candidate.label,
                "stream": candidate.stream,
                "entry_threshold": math.nan if policy.stay_flat else policy.entry_threshold,
                "exit_threshold": math.nan if policy.stay_flat else policy.exit_threshold,
                "min_hold_bars": policy.min_hold_bars,
                "cooldown_bars": policy.cooldown_bars,
                "sizing": policy.sizing,
                "net_return": float(np.expm1(log_net[i])),
                "gross_return": float(np.expm1(log_gross[i])),
                "n_trades": int(trades[i]),
                "sharpe": float(sharpes[i]),
            }
        )
    return pd.DataFrame(rows)


def _fold_decisions(
    decision: DecisionOutcome,
    equity: pd.Series,
    gross: pd.Series,
    buy_and_hold: pd.Series,
    trades: pd.DataFrame,
    *,
    initial: float,
) -> tuple[FoldDecision, ...]:
    out = []
    index = equity.index
    for choice in decision.choices:
        if choice.stop <= choice.start:
            continue
        first, last = choice.start, choice.stop - 1

        def change(series: pd.Series, first: int = first, last: int = last) -> float:
            # every curve starts from the initial cash (the first value already includes candle 0)
            before = series.iloc[first - 1] if first > 0 else initial
            return float(series.iloc[last] / before - 1)

        entered = trades["entry_time"].between(index[first], index[last])
        out.append(
            FoldDecision(
                fold=choice.fold,
                start=pd.Timestamp(index[first]),
                end=pd.Timestamp(index[last]),
                candidate=decision.chosen(choice).label,
                reason=choice.reason,
                gross_return=change(gross),
                net_return=change(equity),
                buy_and_hold_return=change(buy_and_hold),
                n_trades=int(entered.sum()),
            )
        )
    return tuple(out)
