"""The canonical candle frame: columns, dtypes, row checks and `validate_ohlcv`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final

import numpy as np
import pandas as pd

from core.errors import DataValidationError
from core.timeframes import timeframe_to_ms

logger = logging.getLogger(__name__)

OHLCV_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
INDEX_NAME = "timestamp"
TIMESTAMP_UNIT: Final = "ms"
_EPOCH = pd.Timestamp(0, tz="UTC")


def empty_ohlcv() -> pd.DataFrame:
    """An empty canonical frame."""
    index = pd.DatetimeIndex([], tz="UTC", name=INDEX_NAME).as_unit(TIMESTAMP_UNIT)
    return pd.DataFrame({col: pd.Series(dtype="float64") for col in OHLCV_COLUMNS}, index=index)


def epoch_ms_to_index(epoch_ms: Sequence[int] | np.ndarray) -> pd.DatetimeIndex:
    """A UTC `DatetimeIndex` named `timestamp` from epoch milliseconds."""
    values = np.asarray(epoch_ms, dtype="int64")
    index = pd.DatetimeIndex(pd.to_datetime(values, unit="ms", utc=True), name=INDEX_NAME)
    return index.as_unit(TIMESTAMP_UNIT)


def index_to_epoch_ms(index: pd.DatetimeIndex) -> np.ndarray:
    """Epoch milliseconds of a tz-aware index, whatever its unit.

    >>> index_to_epoch_ms(pd.DatetimeIndex(["1970-01-01 00:00:01"], tz="UTC")).tolist()
    [1000]
    """
    return np.asarray((index - _EPOCH) // pd.Timedelta(milliseconds=1), dtype="int64")


def frame_from_rows(rows: Sequence[Sequence[float | int | None]]) -> pd.DataFrame:
    """A canonical frame from `[[open_time_ms, o, h, l, c, v], ...]` rows (no validation)."""
    if len(rows) == 0:
        return empty_ohlcv()
    array = np.asarray([list(row)[:6] for row in rows], dtype="float64")
    frame = pd.DataFrame(array[:, 1:6], columns=list(OHLCV_COLUMNS))
    frame.index = epoch_ms_to_index(array[:, 0].astype("int64"))
    return frame


def row_problems(frame: pd.DataFrame) -> pd.DataFrame:
    """One boolean column per row-level problem (True = the row has that problem)."""
    prices = frame[["open", "high", "low", "close"]]
    values = frame[list(OHLCV_COLUMNS)].to_numpy(dtype="float64")
    non_finite = ~np.isfinite(values).all(axis=1)
    non_positive = (prices <= 0).any(axis=1).to_numpy() | (frame["volume"] < 0).to_numpy()
    body_high = np.maximum(frame["open"], frame["close"])
    body_low = np.minimum(frame["open"], frame["close"])
    high_below_low = (frame["high"] < frame["low"]).to_numpy()
    body_outside = ((frame["high"] < body_high) | (frame["low"] > body_low)).to_numpy()
    return pd.DataFrame(
        {
            "non_finite": non_finite,
            "non_positive": non_positive & ~non_finite,
            "high_below_low": high_below_low & ~non_finite,
            "body_outside_range": body_outside & ~high_below_low & ~non_finite,
        },
        index=frame.index,
    )


def validate_ohlcv(frame: pd.DataFrame, *, timeframe: str | None = None) -> pd.DataFrame:
    """Check the canonical contract and return the frame with canonical dtypes.

    Raises:
        DataValidationError: naming the first bad timestamp and the rule it breaks.
    """
    missing = [col for col in OHLCV_COLUMNS if col not in frame.columns]
    if missing:
        raise DataValidationError(
            f"candles lack columns {missing}; expected {list(OHLCV_COLUMNS)} "
            f"(got {list(frame.columns)})"
        )
    if not isinstance(frame.index, pd.DatetimeIndex) or frame.index.tz is None:
        raise DataValidationError("candles need a tz-aware UTC DatetimeIndex of candle open times")
    out = frame[list(OHLCV_COLUMNS)].astype("float64")
    out.index = frame.index.tz_convert("UTC").as_unit(TIMESTAMP_UNIT).rename(INDEX_NAME)
    _check_order(out.index)
    if timeframe is not None:
        _check_grid(out.index, timeframe)
    problems = row_problems(out)
    for column in problems.columns:
        bad = problems.index[problems[column].to_numpy()]
        if len(bad):
            raise DataValidationError(
                f"{len(bad)} candle(s) fail the {column!r} check, first at {bad[0]:%Y-%m-%d %H:%M}Z"
            )
    return out


def _check_order(index: pd.DatetimeIndex) -> None:
    if len(index) < 2:
        return
    steps = np.diff(index_to_epoch_ms(index))
    bad = np.flatnonzero(steps <= 0)
    if len(bad):
        at = index[bad[0] + 1]
        kind = "duplicated" if steps[bad[0]] == 0 else "out of order"
        raise DataValidationError(f"candle timestamps are {kind} at {at:%Y-%m-%d %H:%M}Z")


def _check_grid(index: pd.DatetimeIndex, timeframe: str) -> None:
    off_grid = np.flatnonzero(index_to_epoch_ms(index) % timeframe_to_ms(timeframe) != 0)
    if len(off_grid):
        at = index[off_grid[0]]
        raise DataValidationError(
            f"candle at {at:%Y-%m-%d %H:%M:%S}Z is not on the {timeframe} grid; "
            "is the timeframe right?"
        )
