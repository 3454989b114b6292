"""The headline cards: the few numbers a trader reads first, each against its reference.

One pure function (`headline`) builds them; the HTML page, the console and the JSON show the
same cards.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from backtests.formatting import fmt_num, fmt_pct, is_finite_number
from backtests.run import BacktestResult, ModelBacktest
from backtests.verdict import SelectionStats
from strategy.costs import to_bps

CardStatus = Literal["better", "worse", "neutral"]
SYMBOLS: dict[CardStatus, str] = {"better": "▲", "worse": "▼", "neutral": "●"}
"""The text mark of a status (never colour alone), on cards and in the compare table."""
MARKS: dict[CardStatus, str] = {
    "better": f"{SYMBOLS['better']} better",
    "worse": f"{SYMBOLS['worse']} worse",
    "neutral": f"{SYMBOLS['neutral']} info",
}
"""The text mark of a status (the colour is never the only cue)."""


@dataclass(frozen=True, slots=True)
class HeadlineCard:
    """One headline number against its reference (`status`: does it beat the reference?)."""

    key: str
    title: str
    value: float | None
    value_text: str
    reference: float | None
    reference_text: str
    status: CardStatus
    detail: str

    @property
    def mark(self) -> str:
        """The status in words with a symbol, e.g. "▲ better"."""
        return MARKS[self.status]

    def to_dict(self) -> dict[str, Any]:
        """Plain values, the mark included."""
        return {**asdict(self), "mark": self.mark}


@dataclass(frozen=True, slots=True)
class Headline:
    """The top of the report: the cards, the one-sentence verdict and the DSR/PBO line."""

    source: str
    verdict: str
    caveats: tuple[str, ...]
    selection_line: str
    cards: tuple[HeadlineCard, ...]

    def to_dict(self) -> dict[str, Any]:
        """The `headline` section of the JSON report."""
        return {
            "source": self.source,
            "verdict": self.verdict,
            "caveats": list(self.caveats),
            "selection_line": self.selection_line,
            "cards": [card.to_dict() for card in self.cards],
        }


def compare(
    value: float | None, reference: float | None, *, higher_is_better: bool = True
) -> CardStatus:
    """ "better"/"worse" than the reference; "neutral" when either is unknown or they tie.

    >>> compare(0.2, 0.1), compare(-0.3, -0.1, higher_is_better=True), compare(None, 1.0)
    ('better', 'worse', 'neutral')
    """
    if value is None or reference is None or value == reference:
        return "neutral"
    if not (math.isfinite(value) and math.isfinite(reference)):
        return "neutral"
    return "better" if (value > reference) == higher_is_better else "worse"


def _number(value: Any) -> float | None:
    return float(value) if is_finite_number(value) else None


def headline_model(result: BacktestResult) -> ModelBacktest:
    """The model behind the headline path (the best-ranked one when the path mixes models)."""
    named = [model for model in result.models if model.name == result.selection.source]
    return named[0] if named else result.leaderboard()[0]


def _return_cards(result: BacktestResult) -> list[HeadlineCard]:
    mine, hold = result.selection.trading, result.buy_and_hold
    return [
        HeadlineCard(
            "net_return", "Net return", _number(mine.total_return), fmt_pct(mine.total_return),
            _number(hold.total_return), f"buy-and-hold {fmt_pct(hold.total_return)}",
            compare(mine.total_return, hold.total_return),
            f"after fees and slippage; CAGR {fmt_pct(mine.cagr)} vs {fmt_pct(hold.cagr)}",
        ),
        HeadlineCard(
            "sharpe", "Sharpe ratio", _number(mine.sharpe), fmt_num(mine.sharpe, 2),
            _number(hold.sharpe), f"buy-and-hold {fmt_num(hold.sharpe, 2)}",
            compare(mine.sharpe, hold.sharpe),
            f"annualised; Sortino {fmt_num(mine.sortino, 2)} vs {fmt_num(hold.sortino, 2)}",
        ),
        HeadlineCard(
            "max_drawdown", "Max drawdown", _number(mine.max_drawdown),
            fmt_pct(mine.max_drawdown), _number(hold.max_drawdown),
            f"buy-and-hold {fmt_pct(hold.max_drawdown)}",
            compare(mine.max_drawdown, hold.max_drawdown),  # both <= 0: closer to 0 is better
            "deepest fall from a peak of equity",
        ),
    ]  # fmt: skip


def _model_cards(result: BacktestResult, model: ModelBacktest) -> tuple[HeadlineCard, HeadlineCard]:
    sig = model.significance
    low, high = sig.roc_auc_ci
    significant: CardStatus = "better" if sig.is_significant() else "worse"
    return (
        HeadlineCard(
            "roc_auc", "ROC-AUC", _number(sig.roc_auc), fmt_num(sig.roc_auc),
            _number(sig.p_value), f"p = {sig.p_value:.3g} vs best baseline ({sig.baseline})",
            significant if math.isfinite(sig.p_value) else "neutral",
            f"{sig.level:.0%} CI {fmt_num(low)}-{fmt_num(high)}; accuracy "
            f"{fmt_num(sig.accuracy)} vs {fmt_num(sig.baseline_accuracy)} ({model.name})",
        ),
        _break_even_card(result, model),
    )  # fmt: skip


def _break_even_card(result: BacktestResult, model: ModelBacktest) -> HeadlineCard:
    """The fee at which the net return falls to zero, against the configured fee."""
    fees, configured = model.fee_sensitivity, to_bps(result.settings.strategy.fee_rate)
    even = fees.break_even_bps
    status: CardStatus = compare(even, configured)
    text = "n/a" if even is None else f"{even:.2f} bps"
    if fees.status == "above_range":
        status, text = "better", f"> {max(p.fee_bps for p in fees.points):g} bps"
    elif fees.status == "never_profitable" and model.trading.n_trades > 0:
        status, text = "worse", f"none (loses at {min(p.fee_bps for p in fees.points):g} bps)"
    return HeadlineCard(
        "break_even_fee", "Break-even fee", _number(even), text, configured,
        f"configured {configured:g} bps per side", status, f"{fees.note} ({model.name})",
    )  # fmt: skip


def _activity_card(result: BacktestResult) -> HeadlineCard:
    mine, stats = result.selection.trading, result.selection.stats
    return HeadlineCard(
        "trades", "Trades and exposure", float(mine.n_trades), f"{mine.n_trades:,} trades",
        1.0, "buy-and-hold: 1 trade, 100 % exposure", "neutral",
        f"exposure {fmt_pct(mine.exposure, signed=False)}, {stats.trades_per_day:.2f} per day, "
        f"average hold {fmt_num(mine.avg_holding_bars, 1)} candles",
    )  # fmt: skip


def selection_line(stats: SelectionStats) -> str:
    """The Deflated Sharpe Ratio and the probability of backtest overfitting in one line."""
    deflated = stats.deflated
    line = (
        f"Deflated Sharpe Ratio {deflated.probability:.2f} over {deflated.n_trials} "
        f"candidate(s): a {1 - deflated.probability:.0%} chance that the Sharpe ratio is luck"
    )
    if stats.overfitting is None:
        return (
            line + "; probability of backtest overfitting: n/a (one candidate or too few candles)."
        )
    return line + f"; probability of backtest overfitting {stats.overfitting.probability:.0%}."


def headline(result: BacktestResult) -> Headline:
    """The headline of a run: the traded path against buy-and-hold, the model's edge."""
    stats = result.selection.stats
    roc_auc, break_even = _model_cards(result, headline_model(result))
    cards = (*_return_cards(result), roc_auc, _activity_card(result), break_even)
    return Headline(
        source=result.selection.source,
        verdict=stats.headline_sentence,
        caveats=stats.caveats,
        selection_line=selection_line(stats),
        cards=cards,
    )
