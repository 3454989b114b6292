from datetime import UTC, datetime

import pytest

from core.errors import ConfigError
from core.timeframes import (
    bars_per_year,
    from_epoch_ms,
    last_closed_candle_open,
    next_close,
    timeframe_to_ms,
    to_epoch_ms,
)


@pytest.mark.parametrize(
    ("timeframe", "expected"),
    [("1m", 60_000), ("15m", 900_000), ("1h", 3_600_000), ("4h", 14_400_000), ("1d", 86_400_000)],
)
def test_timeframe_to_ms_known(timeframe: str, expected: int) -> None:
    assert timeframe_to_ms(timeframe) == expected


def test_timeframe_to_ms_rejects_unknown() -> None:
    with pytest.raises(ConfigError, match="Unsupported timeframe '2h'"):
        timeframe_to_ms("2h")


def test_last_closed_candle_open_exactly_at_close() -> None:
    now = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)
    assert last_closed_candle_open(now, "1h") == datetime(2024, 3, 1, 11, 0, tzinfo=UTC)


def test_last_closed_candle_open_mid_candle_excludes_forming() -> None:
    now = datetime(2024, 3, 1, 12, 59, 59, tzinfo=UTC)
    assert last_closed_candle_open(now, "1h") == datetime(2024, 3, 1, 11, 0, tzinfo=UTC)
    assert last_closed_candle_open(now, "4h") == datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
    assert last_closed_candle_open(now, "1d") == datetime(2024, 2, 29, tzinfo=UTC)


def test_next_close_is_strictly_after_now() -> None:
    now = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)
    assert next_close(now, "1h") == datetime(2024, 3, 1, 13, 0, tzinfo=UTC)
    assert next_close(now, "4h") == datetime(2024, 3, 1, 16, 0, tzinfo=UTC)


def test_epoch_round_trip_and_naive_is_utc() -> None:
    moment = datetime(2020, 8, 1, 23, 0, tzinfo=UTC)
    assert from_epoch_ms(to_epoch_ms(moment)) == moment
    assert to_epoch_ms(moment.replace(tzinfo=None)) == 1596322800000


def test_bars_per_year() -> None:
    assert bars_per_year("1h") == 8760
