"""Timeframe arithmetic: "1h" <-> milliseconds, the last closed candle and the next close (UTC)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from core.errors import ConfigError
from core.types import SUPPORTED_TIMEFRAMES, Timeframe

_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000}


def timeframe_to_ms(timeframe: str) -> int:
    """Length of one candle in milliseconds.

    >>> timeframe_to_ms("1h")
    3600000
    """
    if timeframe not in SUPPORTED_TIMEFRAMES:
        raise ConfigError(
            f"Unsupported timeframe {timeframe!r}; use one of {', '.join(SUPPORTED_TIMEFRAMES)}"
        )
    return int(timeframe[:-1]) * _UNIT_MS[timeframe[-1]]


def timeframe_to_timedelta(timeframe: str) -> timedelta:
    """Length of one candle as a timedelta.

    >>> timeframe_to_timedelta("4h")
    datetime.timedelta(seconds=14400)
    """
    return timedelta(milliseconds=timeframe_to_ms(timeframe))


def tick_interval_ms(timeframes: Iterable[str], *, poll_seconds: float | None = None) -> int:
    """How often the bot ticks: every `poll_seconds`, else at each close of its shortest timeframe.

    >>> tick_interval_ms(["4h", "15m"]), tick_interval_ms(["1h"], poll_seconds=2.5)
    (900000, 2500)
    """
    if poll_seconds is not None:
        return max(1, round(poll_seconds * 1000))
    return min(timeframe_to_ms(timeframe) for timeframe in timeframes)


def bars_per_year(timeframe: str) -> float:
    """Number of candles in a 365-day year (crypto trades around the clock).

    >>> bars_per_year("1d")
    365.0
    """
    return 365 * 86_400_000 / timeframe_to_ms(timeframe)


def ensure_utc(moment: datetime) -> datetime:
    """Read a naive datetime as UTC; convert an aware one to UTC.

    >>> ensure_utc(datetime(2024, 1, 1)).isoformat()
    '2024-01-01T00:00:00+00:00'
    """
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def to_epoch_ms(moment: datetime) -> int:
    """Milliseconds since the Unix epoch; naive datetimes are read as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def from_epoch_ms(epoch_ms: int) -> datetime:
    """UTC datetime of an epoch in milliseconds."""
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)


def last_closed_candle_open(now: datetime, timeframe: Timeframe | str) -> datetime:
    """Open time of the newest candle that has fully closed at `now`.

    >>> last_closed_candle_open(datetime(2024, 1, 1, 10, 0, 5, tzinfo=UTC), "1h")
    datetime.datetime(2024, 1, 1, 9, 0, tzinfo=datetime.timezone.utc)
    """
    step_ms = timeframe_to_ms(timeframe)
    current_open_ms = to_epoch_ms(now) // step_ms * step_ms
    return from_epoch_ms(current_open_ms - step_ms)


def next_close(now: datetime, timeframe: Timeframe | str) -> datetime:
    """The first candle close strictly after `now`.

    >>> next_close(datetime(2024, 1, 1, 10, 0, 0, tzinfo=UTC), "1h")
    datetime.datetime(2024, 1, 1, 11, 0, tzinfo=datetime.timezone.utc)
    """
    step_ms = timeframe_to_ms(timeframe)
    return from_epoch_ms((to_epoch_ms(now) // step_ms + 1) * step_ms)
