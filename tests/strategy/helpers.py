"""Builders for strategy tests: deterministic probabilities, policy targets, hand-made candles."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from core.settings import DecisionPolicy
from data.schema import epoch_ms_to_index
from ml.decision import TargetPositions, positions_from_proba
from strategy.feeds import SIDE_COLUMN, SIZE_COLUMN


def sma_proba(candles: pd.DataFrame, *, window: int = 24, scale: float = 40.0) -> pd.Series:
    """A deterministic past-only proba: squashed distance of the close from its SMA."""
    sma = candles["close"].rolling(window).mean()
    proba = 0.5 + 0.5 * np.tanh(scale * (candles["close"] / sma - 1.0))
    return proba.rename("proba_up")


def targets(proba: npt.ArrayLike, policy: DecisionPolicy | None = None) -> TargetPositions:
    """The target positions `policy` (default: `DecisionPolicy()`) takes on `proba`."""
    return positions_from_proba(np.asarray(proba, dtype="float64"), policy or DecisionPolicy())


def with_targets(
    candles: pd.DataFrame, side: npt.ArrayLike, size: npt.ArrayLike | None = None
) -> pd.DataFrame:
    """A copy of `candles` with the feed's `target_side` and `target_size` columns."""
    out = candles.copy()
    out[SIDE_COLUMN] = np.asarray(side, dtype="float64")
    out[SIZE_COLUMN] = np.ones(len(out)) if size is None else np.asarray(size, dtype="float64")
    return out


def hand_candles(
    rows: list[tuple[float, float, float, float]], *, start: str = "2024-01-01"
) -> pd.DataFrame:
    """Hourly candles from (open, high, low, close) rows, volume 1."""
    array = np.asarray(rows, dtype="float64")
    start_ms = int(pd.Timestamp(start, tz="UTC").timestamp() * 1000)
    index = epoch_ms_to_index(start_ms + np.arange(len(rows), dtype="int64") * 3_600_000)
    return pd.DataFrame(
        {
            "open": array[:, 0],
            "high": array[:, 1],
            "low": array[:, 2],
            "close": array[:, 3],
            "volume": np.ones(len(rows)),
        },
        index=index,
    )
