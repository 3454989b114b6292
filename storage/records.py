"""Frozen dataclasses the repository accepts and returns (never ORM rows) and the page cursor."""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from core.echo import echo_value
from core.types import Direction, Signal

BotStatus = Literal["running", "stopped", "failed"]
"""What a bot process records about itself (the `bot_runs.status` column)."""
BotRunStatus = Literal["running", "stopped", "failed", "lost"]
"""As read back: "lost" is a "running" run whose heartbeat stopped (its process was killed)."""
ModelEventKind = Literal["promoted", "rejected", "retrained"]

MAX_CURSOR_PART = 2**63 - 1
"""Largest part of a page cursor: the range of the BIGINT columns it points into."""

_DIRECTIONS = ("UP", "DOWN")
_SIGNALS = (-1, 0, 1)


@dataclass(frozen=True, slots=True)
class NewPrediction:
    """A prediction to log, unique per (exchange, symbol, timeframe, candle_open_ms, model_id).

    `candle_open_ms` is the open time of the closed candle predicted from; `target_close_ms`
    is when the outcome is known (the close of candle t + horizon_bars). `direction` is the
    model's call at its threshold; `signal` (-1/0/1) and `size` (the traded fraction of
    `strategy.position_fraction`, 0 when flat) are the decision policy's action, and
    `policy_source` says which policy decided ("manifest", "config", ...).
    """

    exchange: str
    symbol: str
    timeframe: str
    candle_open_ms: int
    target_close_ms: int
    horizon_bars: int
    proba_up: float
    direction: Direction
    signal: Signal
    threshold: float
    model_id: str
    created_ms: int
    latency_ms: float
    is_backfill: bool = False
    size: float | None = None
    policy_source: str | None = None

    def __post_init__(self) -> None:
        where = f"prediction {self.symbol} {self.timeframe} @{self.candle_open_ms}"
        if not (math.isfinite(self.proba_up) and 0.0 <= self.proba_up <= 1.0):
            raise ValueError(f"{where}: proba_up must be in [0, 1], got {self.proba_up!r}")
        if self.direction not in _DIRECTIONS:
            raise ValueError(f"{where}: direction must be 'UP' or 'DOWN', got {self.direction!r}")
        if self.signal not in _SIGNALS:
            raise ValueError(f"{where}: signal must be -1, 0 or 1, got {self.signal!r}")
        if self.size is not None and not (math.isfinite(self.size) and 0.0 <= self.size <= 1.0):
            raise ValueError(f"{where}: size must be in [0, 1], got {self.size!r}")
        if self.horizon_bars < 1:
            raise ValueError(f"{where}: horizon_bars must be >= 1, got {self.horizon_bars}")
        if self.target_close_ms <= self.candle_open_ms:
            raise ValueError(
                f"{where}: target_close_ms ({self.target_close_ms}) must be after candle_open_ms"
            )


@dataclass(frozen=True, slots=True)
class StoredPrediction:
    """A logged prediction with its database id and, once resolved, its outcome.

    `size` and `policy_source` are None for rows logged before they were recorded.
    """

    id: int
    exchange: str
    symbol: str
    timeframe: str
    candle_open_ms: int
    target_close_ms: int
    horizon_bars: int
    proba_up: float
    direction: Direction
    signal: Signal
    threshold: float
    model_id: str
    created_ms: int
    latency_ms: float
    is_backfill: bool
    actual_return: float | None
    actual_direction: Direction | None
    is_correct: bool | None
    resolved_ms: int | None
    size: float | None = None
    policy_source: str | None = None

    @property
    def is_resolved(self) -> bool:
        """True once the outcome has been recorded."""
        return self.resolved_ms is not None


@dataclass(frozen=True, slots=True)
class Outcome:
    """The realised return of a prediction's target, known at `resolved_ms`."""

    prediction_id: int
    actual_return: float
    resolved_ms: int
    actual_direction: Direction | None = None
    """The realised label when it is not the sign of the return (triple-barrier models)."""

    def __post_init__(self) -> None:
        if not math.isfinite(self.actual_return):
            raise ValueError(
                f"outcome of prediction {self.prediction_id}: actual_return must be finite, "
                f"got {self.actual_return!r}"
            )


def direction_of_return(actual_return: float) -> Direction:
    """UP when the price rose, DOWN otherwise (a flat candle counts as DOWN, as in the labels).

    >>> direction_of_return(0.002), direction_of_return(0.0)
    ('UP', 'DOWN')
    """
    return "UP" if actual_return > 0 else "DOWN"


@dataclass(frozen=True, slots=True)
class PredictionPage:
    """One page of predictions, newest first; pass `next_cursor` to get the next page."""

    items: tuple[StoredPrediction, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class BotRun:
    """The heartbeat of one bot process."""

    id: int
    started_ms: int
    last_tick_ms: int | None
    finished_ms: int | None
    status: BotRunStatus
    ticks: int
    predictions_written: int
    temporary_errors: int
    data_errors: int
    other_errors: int
    last_error: str | None
    host: str
    pid: int


@dataclass(frozen=True, slots=True)
class NewBacktestRun:
    """A backtest run to record; `metrics` and `model_ids` are keyed by model name."""

    run_id: str
    created_ms: int
    config_hash: str
    symbol: str
    timeframe: str
    models: tuple[str, ...]
    period_start_ms: int
    period_end_ms: int
    metrics: Mapping[str, Any]
    model_ids: Mapping[str, str] = field(default_factory=dict)
    report_path: str | None = None
    json_path: str | None = None


@dataclass(frozen=True, slots=True)
class BacktestRun:
    """A recorded backtest run; paths are relative to the reports directory."""

    id: str
    created_ms: int
    config_hash: str
    symbol: str
    timeframe: str
    models: tuple[str, ...]
    period_start_ms: int
    period_end_ms: int
    metrics: dict[str, Any]
    model_ids: dict[str, str]
    report_path: str | None
    json_path: str | None


@dataclass(frozen=True, slots=True)
class ModelEvent:
    """A model promotion, rejection or retraining decision."""

    id: int
    created_ms: int
    symbol: str
    timeframe: str
    model_id: str
    previous_model_id: str | None
    event: ModelEventKind
    reason: str
    metrics: dict[str, Any] | None


def encode_cursor(candle_open_ms: int, prediction_id: int) -> str:
    """An opaque page cursor for the keyset (candle_open_ms, id).

    >>> decode_cursor(encode_cursor(1_700_000_000_000, 42))
    (1700000000000, 42)
    """
    raw = f"{candle_open_ms}:{prediction_id}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int]:
    """The (candle_open_ms, id) keyset behind a cursor.

    Both parts must be what `encode_cursor` writes: canonical non-negative integers that fit
    the database's signed 64-bit columns (a larger one made SQLite raise OverflowError).

    >>> decode_cursor(encode_cursor(MAX_CURSOR_PART, 1))
    (9223372036854775807, 1)

    Raises:
        ValueError: the cursor was not produced by `encode_cursor`.
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
        open_ms, prediction_id = (int(part) for part in text.split(":"))
    except (ValueError, UnicodeError, binascii.Error) as e:
        raise _invalid_cursor(cursor) from e
    if text != f"{open_ms}:{prediction_id}" or not (
        0 <= open_ms <= MAX_CURSOR_PART and 0 <= prediction_id <= MAX_CURSOR_PART
    ):
        raise _invalid_cursor(cursor)
    return open_ms, prediction_id


def _invalid_cursor(cursor: str) -> ValueError:
    return ValueError(
        f"invalid cursor {echo_value(cursor, max_chars=40)}; "
        "pass the next_cursor of the previous page unchanged"
    )


def json_safe(value: Any) -> Any:
    """Make a metrics tree storable as strict JSON: tuples become lists, NaN/inf become None.

    PostgreSQL's JSON type rejects NaN, which Python's json module would otherwise write.

    >>> json_safe({"sharpe": float("nan"), "folds": (1, 2.5)})
    {'sharpe': None, 'folds': [1, 2.5]}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value
