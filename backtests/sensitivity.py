"""Fee sensitivity of a strategy (return and Sharpe vs fee, break-even fee) and the engine check."""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from backtests.metrics import trading_metrics
from core.settings import StrategySettings
from strategy.costs import BPS
from strategy.runner import run_strategy
from strategy.vectorized import simulate_signals

logger = logging.getLogger(__name__)

BreakEvenStatus = Literal["crossed", "never_profitable", "above_range"]
TWIN_ENGINE = "numpy twin"
BACKTRADER_ENGINE = "backtrader"
_BISECTION_STEPS = 30  # halves the bracket to < 1e-7 bps of a 30 bps range


@dataclass(frozen=True, slots=True)
class FeePoint:
    """Strategy result at one fee level (per side, basis points), same signals otherwise."""

    fee_bps: float
    total_return: float
    sharpe: float
    n_trades: int
    fees_paid: float


@dataclass(frozen=True, slots=True)
class FeeSensitivity:
    """Return and Sharpe versus the fee, and the fee at which the return falls to zero.

    `break_even_bps` is None unless the return crosses zero inside the fees tried; `status`
    says why: "crossed", "never_profitable" (loses even at the lowest fee) or "above_range"
    (still profitable at the highest fee); `note` says it in words. `engine` names what
    produced the points: the numpy twin of the fill rules (`simulate_signals`, exact for runs
    without stop rules) or backtrader itself.
    """

    points: tuple[FeePoint, ...]
    break_even_bps: float | None
    status: BreakEvenStatus
    note: str
    engine: str


def uses_exit_rules(strategy: StrategySettings) -> bool:
    """True when a stop-loss or take-profit is on (the numpy twin does not simulate them)."""
    return strategy.stop_loss.kind != "none" or strategy.take_profit.kind != "none"


def fee_sensitivity(
    frame: pd.DataFrame,
    *,
    timeframe: str,
    side: npt.NDArray[np.int8],
    size: npt.NDArray[np.float64],
    strategy: StrategySettings,
    fee_bps: Sequence[float],
) -> FeeSensitivity:
    """Re-run the same targets (`side`/`size`) on `frame` at each fee per side in `fee_bps`.

    Without stop rules the numpy twin replays the same fill rules as backtrader in
    milliseconds, and the break-even fee is found by bisection; with stop rules backtrader
    runs once per fee and the break-even is interpolated between the points.
    """
    levels = sorted({float(bps) for bps in fee_bps})
    twin = not uses_exit_rules(strategy)
    evaluate = _twin_evaluator if twin else _backtrader_evaluator
    point_at = evaluate(frame, timeframe=timeframe, side=side, size=size, strategy=strategy)
    points = tuple(point_at(bps) for bps in levels)
    refine = (lambda bps: point_at(bps).total_return) if twin else None
    break_even, status, note = _break_even(points, refine)
    return FeeSensitivity(
        points=points,
        break_even_bps=break_even,
        status=status,
        note=note,
        engine=TWIN_ENGINE if twin else BACKTRADER_ENGINE,
    )


PointAt = Callable[[float], FeePoint]


def _twin_evaluator(
    frame: pd.DataFrame,
    *,
    timeframe: str,
    side: npt.NDArray[np.int8],
    size: npt.NDArray[np.float64],
    strategy: StrategySettings,
) -> PointAt:
    def point_at(bps: float) -> FeePoint:
        run = simulate_signals(
            frame,
            side,
            sizes=size,
            cash=strategy.cash,
            fee_rate=bps * BPS,
            slippage_bps=strategy.slippage_bps,
            position_fraction=strategy.position_fraction,
        )
        metrics = trading_metrics(
            run.trades, run.equity, frame, timeframe=timeframe, fees_paid=run.fees_paid
        )
        return FeePoint(bps, metrics.total_return, metrics.sharpe, run.n_trades, run.fees_paid)

    return point_at


def _backtrader_evaluator(
    frame: pd.DataFrame,
    *,
    timeframe: str,
    side: npt.NDArray[np.int8],
    size: npt.NDArray[np.float64],
    strategy: StrategySettings,
) -> PointAt:
    def point_at(bps: float) -> FeePoint:
        costs = strategy.model_copy(update={"fee_rate": bps * BPS})
        run = run_strategy(frame, timeframe=timeframe, side=side, size=size, strategy=costs)
        metrics = trading_metrics(
            run.trades, run.equity, frame, timeframe=timeframe, fees_paid=run.fees_paid
        )
        return FeePoint(bps, metrics.total_return, metrics.sharpe, len(run.trades), run.fees_paid)

    return point_at


def _break_even(
    points: tuple[FeePoint, ...], refine: Callable[[float], float] | None
) -> tuple[float | None, BreakEvenStatus, str]:
    """Fee per side where the return crosses zero: bisection with `refine`, else interpolation."""
    if points and all(p.n_trades == 0 for p in points):
        return None, "never_profitable", "the policy never trades at any of these fees"
    if not points or points[0].total_return <= 0:
        first = f"{points[0].fee_bps:g}" if points else "0"
        return None, "never_profitable", f"loses money even at {first} bps per side"
    for low, high in itertools.pairwise(points):
        if high.total_return <= 0:
            fee = _solve(low, high, refine)
            return fee, "crossed", f"the return falls to zero at {fee:.2f} bps per side"
    last = points[-1].fee_bps
    return None, "above_range", f"still profitable at {last:g} bps per side (break-even higher)"


def _solve(low: FeePoint, high: FeePoint, refine: Callable[[float], float] | None) -> float:
    if refine is None:  # linear interpolation between the two points around zero
        share = low.total_return / (low.total_return - high.total_return)
        return low.fee_bps + share * (high.fee_bps - low.fee_bps)
    lo, hi = low.fee_bps, high.fee_bps
    for _ in range(_BISECTION_STEPS):
        mid = (lo + hi) / 2
        if refine(mid) > 0:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def engine_gap(
    frame: pd.DataFrame,
    final_equity: float,
    *,
    side: npt.NDArray[np.int8],
    size: npt.NDArray[np.float64],
    strategy: StrategySettings,
) -> float:
    """Relative gap between backtrader's final equity and the numpy twin's at the same costs.

    NaN when stop rules are on (the twin does not simulate them). A gap above 1e-6 means
    the two engines disagree about fills; the report shows the figure.
    """
    if uses_exit_rules(strategy):
        return math.nan
    twin = simulate_signals(
        frame,
        side,
        sizes=size,
        cash=strategy.cash,
        fee_rate=strategy.fee_rate,
        slippage_bps=strategy.slippage_bps,
        position_fraction=strategy.position_fraction,
    )
    difference = abs(twin.final_equity - final_equity)
    gap = difference / abs(final_equity) if final_equity else (0.0 if not difference else math.inf)
    if gap > 1e-6:
        logger.warning(
            "backtrader and the numpy twin disagree: final equity %.6f vs %.6f (gap %.2e)",
            final_equity,
            twin.final_equity,
            gap,
        )
    return float(gap)
