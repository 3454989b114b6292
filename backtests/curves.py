"""The equity curves stored in the JSON report (sampled, so that runs can be compared later)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from backtests.plotting import significant
from backtests.run import BacktestResult

MAX_CURVE_POINTS = 1000
"""The JSON keeps every k-th candle's equity (and the last one): at most about this many."""


def sample_positions(n: int, *, max_points: int = MAX_CURVE_POINTS) -> list[int]:
    """Every `ceil(n / max_points)`-th position from 0, plus the last one.

    >>> sample_positions(10, max_points=4)
    [0, 3, 6, 9]
    >>> sample_positions(3), sample_positions(0)
    ([0, 1, 2], [])
    """
    if n <= 0:
        return []
    step = max(1, math.ceil(n / max_points))
    positions = list(range(0, n, step))
    if positions[-1] != n - 1:
        positions.append(n - 1)
    return positions


def equity_payload(result: BacktestResult) -> dict[str, Any]:
    """The `equity` section of the JSON report: the decision path (the headline), each model's
    own path and buy-and-hold, after costs, at the close of the same sampled candles."""
    hold = result.buy_and_hold_equity
    positions = sample_positions(len(hold))
    index = pd.DatetimeIndex(hold.index[positions])

    def sampled(equity: pd.Series) -> list[float]:
        return significant(equity.reindex(index).to_numpy(dtype="float64"))

    return {
        "time": [t.isoformat() for t in index],
        "step_candles": positions[1] - positions[0] if len(positions) > 1 else 1,
        "initial_cash": result.settings.strategy.cash,
        "decision": sampled(result.selection.run.equity),
        "buy_and_hold": sampled(hold),
        "models": {model.name: sampled(model.run.equity) for model in result.models},
    }
