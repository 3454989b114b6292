"""Runtime look-ahead guard: features recomputed on truncated history must not change."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.errors import LookAheadError, NotEnoughDataError

logger = logging.getLogger(__name__)

_MIN_CANDLES = 3


@dataclass(frozen=True, slots=True)
class _Change:
    """The first row at which one feature differs between the truncated and the full build."""

    feature: str
    timestamp: pd.Timestamp
    cut: pd.Timestamp
    full_value: float
    truncated_value: float


def _cut_points(n_rows: int, *, n_cuts: int, seed: int) -> list[int]:
    """Row counts to keep: n_rows - 1 (drops only the newest candle) plus random earlier cuts.

    >>> _cut_points(10, n_cuts=1, seed=0)
    [9]
    """
    low = max(2, n_rows // 10)
    earlier = np.arange(low, n_rows - 1)
    rng = np.random.default_rng(seed)
    picked = rng.choice(earlier, size=min(n_cuts - 1, len(earlier)), replace=False)
    return sorted({n_rows - 1, *(int(k) for k in picked)})


def _compare(
    full: pd.DataFrame, truncated: pd.DataFrame, *, tolerance: float
) -> dict[str, tuple[int, float, float]]:
    """Features whose values differ (NaN == NaN), with their first differing row and values."""
    expected = full.reindex(index=truncated.index, columns=truncated.columns)
    old = expected.to_numpy(dtype="float64")
    new = truncated.to_numpy(dtype="float64")
    same = np.isclose(old, new, rtol=tolerance, atol=tolerance, equal_nan=True)
    changed: dict[str, tuple[int, float, float]] = {}
    for j in (int(k) for k in np.flatnonzero(~same.all(axis=0))):
        row = int(np.argmax(~same[:, j]))
        changed[str(truncated.columns[j])] = (row, float(old[row, j]), float(new[row, j]))
    return changed


def check_lookahead(
    ohlcv: pd.DataFrame,
    build: Callable[[pd.DataFrame], pd.DataFrame],
    *,
    n_cuts: int = 5,
    seed: int = 0,
    tolerance: float = 1e-12,
) -> None:
    """Fail if any feature at a row changes when later candles are removed.

    `build` runs on the full candles and on `n_cuts` truncations (always one that drops only the
    newest candle, the rest at random rows, reproducible by `seed`). Every feature value at a row
    kept by the cut must be unchanged (NaN equals NaN; `tolerance` absorbs only float rounding).

    Raises:
        LookAheadError: naming each feature that changed and its first changed row.
        NotEnoughDataError: fewer than 3 candles.
    """
    if n_cuts < 1:
        raise ValueError(f"n_cuts must be >= 1, got {n_cuts}")
    if len(ohlcv) < _MIN_CANDLES:
        raise NotEnoughDataError(
            f"look-ahead check needs at least {_MIN_CANDLES} candles, got {len(ohlcv)}"
        )
    full = build(ohlcv)
    changes: dict[str, _Change] = {}
    cuts = _cut_points(len(ohlcv), n_cuts=n_cuts, seed=seed)
    for keep in cuts:
        truncated = build(ohlcv.iloc[:keep])
        _check_columns(full, truncated)
        for name, (row, old, new) in _compare(full, truncated, tolerance=tolerance).items():
            stamp = truncated.index[row]
            if name not in changes or stamp < changes[name].timestamp:
                changes[name] = _Change(name, stamp, ohlcv.index[keep - 1], old, new)
    if changes:
        raise LookAheadError(_describe(changes))
    logger.info(
        "Look-ahead check passed: %d features unchanged under %d truncations of %d candles",
        full.shape[1],
        len(cuts),
        len(ohlcv),
    )


def _check_columns(full: pd.DataFrame, truncated: pd.DataFrame) -> None:
    if list(full.columns) != list(truncated.columns):
        missing = [c for c in full.columns if c not in truncated.columns]
        extra = [c for c in truncated.columns if c not in full.columns]
        raise LookAheadError(
            "the feature columns depend on how much future data there is: on truncated candles "
            f"{missing} are missing and {extra} are extra; build the same columns for any length"
        )


def _describe(changes: dict[str, _Change]) -> str:
    ordered = sorted(changes.values(), key=lambda change: (change.timestamp, change.feature))
    parts = [
        f"{c.feature!r} (first at {c.timestamp}: {c.full_value:.6g} with the full history, "
        f"{c.truncated_value:.6g} with candles up to {c.cut})"
        for c in ordered
    ]
    return (
        f"{len(ordered)} feature(s) use future candles: {'; '.join(parts)}. "
        "Fix them so that each row uses only candles at or before it (no shift(-k), no centred "
        "windows, no statistics over the whole history)"
    )
