"""Builders for strategy tests: deterministic probabilities and hand-made candles."""

from __future__ import annotations

import numpy as np
import pandas as pd

from data.schema import epoch_ms_to_index


def sma_proba(candles: pd.DataFrame, *, window: int = 24, scale: float = 40.0) -> pd.Series:
    """A deterministic past-only proba: squashed distance of the close from its SMA."""
    sma = candles["close"].rolling(window).mean()
    proba = 0.5 + 0.5 * np.tanh(scale * (candles["close"] / sma - 1.0))
    return proba.rename("proba_up")


def with_proba(candles: pd.DataFrame, proba: object) -> pd.DataFrame:
    """A copy of `candles` with a `proba_up` column."""
    out = candles.copy()
    out["proba_up"] = np.asarray(proba, dtype="float64")
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
