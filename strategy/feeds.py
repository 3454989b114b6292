"""`PredictionFeed`: candles plus the policy's precomputed target positions (and `atr`) as lines."""

from __future__ import annotations

import logging
import math
from array import array
from typing import Any

import backtrader as bt
import numpy as np
import pandas as pd

from core.errors import DataValidationError
from core.timeframes import timeframe_to_ms
from data.schema import OHLCV_COLUMNS, validate_ohlcv

logger = logging.getLogger(__name__)

PROBA_COLUMN = "proba_up"
SIDE_COLUMN = "target_side"
SIZE_COLUMN = "target_size"
ATR_COLUMN = "atr"
_MINUTE_MS = 60_000
_DAY_MS = 86_400_000
_EPOCH = pd.Timestamp("1970-01-01")
_EPOCH_ORDINAL = 719_163  # date(1970, 1, 1).toordinal()


class PredictionFeed(bt.feeds.PandasData):
    """`PandasData` with the extra lines `target_side` (-1/0/1), `target_size` and `atr`.

    The targets come from `ml.decision.positions_from_proba` (decided at each candle's close).

    Same column mapping as `PandasData`, but `_load` reads rows from C double arrays built
    once in `start()` instead of `DataFrame.iloc` per field per bar: identical values, about
    twice the bars/s (NOTES.md, "Performance facts").
    """

    lines: Any = (SIDE_COLUMN, SIZE_COLUMN, ATR_COLUMN)
    params: Any = ((SIDE_COLUMN, -1), (SIZE_COLUMN, -1), (ATR_COLUMN, -1))

    def start(self) -> None:
        """Resolve the column mapping, then copy each mapped column to a C double array once.

        `array("d")` indexes about as fast as a list but holds 8 bytes per value instead of
        a list's 32 (pointer + float object): ~64 MB less per column-million of candles.
        """
        super().start()
        frame: pd.DataFrame = self.p.dataname
        self._rows = len(frame)
        self._columns: list[tuple[Any, array[float]]] = []
        for field, position in self._colmapping.items():
            if field == "datetime" or position is None:
                continue
            values = _doubles(frame.iloc[:, position].to_numpy(dtype="float64"))
            self._columns.append((getattr(self.lines, field), values))
        self._datenums = _doubles(np.asarray(backtrader_datenums(pd.DatetimeIndex(frame.index))))

    def _tick_nullify(self) -> None:
        """backtrader's per-bar reset of the `tick_*` prices, for the priced lines only.

        The stock version loops over every line alias with `setattr`, the target lines
        included; the broker reads only `tick_open/high/low/close` (bbroker `_try_exec`).
        """
        self.tick_open = self.tick_high = self.tick_low = self.tick_close = None
        self.tick_volume = self.tick_last = None

    def _tick_fill(self, force: bool = False) -> None:
        """The bar is the tick (no replay/resampling here): the stock logic on the priced lines."""
        if force or self.tick_close is None:
            lines = self.lines
            self.tick_open = lines.open[0]
            self.tick_high = lines.high[0]
            self.tick_low = lines.low[0]
            self.tick_close = self.tick_last = lines.close[0]
            self.tick_volume = lines.volume[0]

    def _load(self) -> bool:
        self._idx += 1
        if self._idx >= self._rows:
            return False
        row = self._idx
        for line, values in self._columns:
            line[0] = values[row]
        self.lines.datetime[0] = self._datenums[row]
        return True


def _doubles(values: np.ndarray) -> array[float]:
    out = array("d")
    out.frombytes(np.ascontiguousarray(values, dtype=np.float64).tobytes())
    return out


def backtrader_datenums(index: pd.DatetimeIndex) -> list[float]:
    """`bt.date2num` of every timestamp (naive UTC days since 0001-01-01), bit for bit.

    The same `math.fsum` of the ordinal day and the hour/minute/second/microsecond fractions
    that `date2num` (and so `PandasData`) computes per bar, from integer arrays instead of one
    `datetime` object per candle (several times faster on long feeds).

    >>> stamps = pd.DatetimeIndex(["1970-01-01 00:00", "2024-03-01 13:37:05.25"], tz="UTC")
    >>> backtrader_datenums(stamps) == [bt.date2num(t.to_pydatetime()) for t in stamps]
    True
    """
    utc = index.tz_convert("UTC").tz_localize(None) if index.tz is not None else index
    ordinal = (utc.normalize() - _EPOCH).days.to_numpy() + _EPOCH_ORDINAL
    parts = (utc.hour, utc.minute, utc.second, utc.microsecond)
    hours, minutes, seconds, micros = (part.to_numpy().tolist() for part in parts)
    return [
        math.fsum((float(day), h / 24.0, m / 1440.0, s / 86400.0, us / 86400e6))
        for day, h, m, s, us in zip(ordinal.tolist(), hours, minutes, seconds, micros, strict=True)
    ]


def backtrader_timeframe(timeframe: str) -> tuple[int, int]:
    """backtrader's `(TimeFrame, compression)` for one of our timeframe strings.

    >>> backtrader_timeframe("4h") == (bt.TimeFrame.Minutes, 240)
    True
    >>> backtrader_timeframe("1d") == (bt.TimeFrame.Days, 1)
    True
    """
    step_ms = timeframe_to_ms(timeframe)
    if step_ms % _DAY_MS == 0:
        return bt.TimeFrame.Days, step_ms // _DAY_MS
    return bt.TimeFrame.Minutes, step_ms // _MINUTE_MS


def make_prediction_feed(frame: pd.DataFrame, *, timeframe: str) -> PredictionFeed:
    """A validated `PredictionFeed` over candles with target columns (and optional `atr`).

    Args:
        frame: canonical candles (UTC open-time index) plus `target_side` (-1, 0 or 1) and
            `target_size` in [0, 1] (fraction of `strategy.position_fraction`); `atr` if ATR
            exit rules are used.
        timeframe: the candle timeframe ("1m" ... "1d"); sets backtrader's bar size, which
            otherwise defaults to daily bars.

    Raises:
        DataValidationError: candles break the schema, or a target/`atr` column is invalid.
    """
    prepared = prepare_prediction_frame(frame, timeframe=timeframe)
    bt_timeframe, compression = backtrader_timeframe(timeframe)
    return PredictionFeed(
        dataname=prepared,
        timeframe=bt_timeframe,
        compression=compression,
        openinterest=None,
        atr=ATR_COLUMN if ATR_COLUMN in prepared.columns else None,
    )


def prepare_prediction_frame(frame: pd.DataFrame, *, timeframe: str) -> pd.DataFrame:
    """Canonical candles plus float target columns (and `atr` when present), checked.

    Raises:
        DataValidationError: see `make_prediction_feed`.
    """
    missing = [c for c in (SIDE_COLUMN, SIZE_COLUMN) if c not in frame.columns]
    if missing:
        raise DataValidationError(
            f"the backtest frame has no {missing} column(s) (columns: {list(frame.columns)}); "
            "add the policy's targets (ml.decision.positions_from_proba) to the candles first"
        )
    if len(frame) < 2:
        raise DataValidationError(f"a backtest needs at least 2 candles, got {len(frame)}")
    candles = validate_ohlcv(frame[list(OHLCV_COLUMNS)], timeframe=timeframe)
    out = candles.copy()
    side = _checked_column(frame, SIDE_COLUMN, low=-1.0, high=1.0)
    if not np.isin(side, (-1.0, 0.0, 1.0)).all():
        bad = np.flatnonzero(~np.isin(side, (-1.0, 0.0, 1.0)))[0]
        raise DataValidationError(
            f"{SIDE_COLUMN} must be -1, 0 or 1; got {side[bad]!r} at {frame.index[bad]}"
        )
    out[SIDE_COLUMN] = side
    size = _checked_column(frame, SIZE_COLUMN, low=0.0, high=1.0)
    if np.isnan(size).any():  # the numpy twin refuses NaN sizes too: no silent "no entry"
        at = frame.index[np.flatnonzero(np.isnan(size))[0]]
        raise DataValidationError(
            f"{SIZE_COLUMN} must be in [0, 1] (0 when flat), got NaN at {at:%Y-%m-%d %H:%M}Z"
        )
    out[SIZE_COLUMN] = size
    if ATR_COLUMN in frame.columns:
        out[ATR_COLUMN] = _checked_column(frame, ATR_COLUMN, low=0.0, high=np.inf)
    return out


def _checked_column(frame: pd.DataFrame, column: str, *, low: float, high: float) -> np.ndarray:
    try:
        values = frame[column].to_numpy(dtype="float64", copy=True)
    except (TypeError, ValueError) as e:
        raise DataValidationError(f"column {column!r} must be numeric: {e}") from e
    finite = np.isfinite(values)
    bad = np.flatnonzero(np.isinf(values) | (finite & ((values < low) | (values > high))))
    if len(bad):
        at = frame.index[bad[0]]
        raise DataValidationError(
            f"{len(bad)} value(s) of {column!r} outside [{low}, {high}], first {values[bad[0]]!r} "
            f"at {at:%Y-%m-%d %H:%M}Z; use NaN for 'no prediction'"
        )
    return values


def add_atr(candles: pd.DataFrame, *, window: int = 14) -> pd.DataFrame:
    """A copy of `candles` with a past-only Wilder ATR column `atr` (NaN during warm-up).

    True range uses the previous close, so the ATR at candle t is known at its close.

    >>> frame = pd.DataFrame({"high": [2.0, 3.0, 4.0], "low": [1.0, 1.0, 2.0],
    ...                       "close": [1.5, 2.0, 3.0]})
    >>> add_atr(frame, window=2)["atr"].round(3).tolist()
    [nan, 1.5, 1.75]
    """
    previous_close = candles["close"].shift(1)
    true_range = pd.concat(
        [
            candles["high"] - candles["low"],
            (candles["high"] - previous_close).abs(),
            (candles["low"] - previous_close).abs(),
        ],
        axis=1,
    ).max(axis=1)
    # Wilder's smoothing = an EMA with alpha = 1/window (Wilder 1978, "New Concepts").
    atr = true_range.ewm(alpha=1.0 / window, adjust=False, min_periods=window).mean()
    out = candles.copy()
    out[ATR_COLUMN] = atr
    return out
