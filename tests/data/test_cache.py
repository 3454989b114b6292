"""The Parquet candle cache: layout, atomic writes, merging and incremental updates."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.errors import ConfigError, DataError, DataValidationError, ExchangeUnavailableError
from data.cache import (
    cache_path,
    list_cached,
    merge_candles,
    read_cache,
    update_cache,
    write_cache,
)
from data.exchange import CcxtCandleSource
from tests.data.conftest import N_CLOSED
from tests.emulator import BinanceEmulator, epoch_ms
from tests.factories import make_ohlcv

HOUR = timedelta(hours=1)
HOUR_MS = 3_600_000

Source = Callable[..., CcxtCandleSource]


def _update(source: CcxtCandleSource, cache_dir: Path, since: datetime, **kwargs) -> pd.DataFrame:
    return update_cache(
        source, cache_dir=cache_dir, symbol="BTC/USDT", timeframe="1h", since=since, **kwargs
    )


def _temp_files(directory: Path) -> list[Path]:
    return [path for path in directory.iterdir() if path.name.endswith(".tmp")]


def test_cache_path_is_exchange_dir_and_symbol_timeframe_file(tmp_path: Path) -> None:
    path = cache_path(tmp_path, "binance", "BTC/USDT", "1h")

    assert path == tmp_path / "binance" / "BTC_USDT-1h.parquet"


def test_cache_path_rejects_unsafe_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="exchange id"):
        cache_path(tmp_path, "../etc", "BTC/USDT", "1h")


def test_write_then_read_cache_round_trips_exactly(tmp_path: Path) -> None:
    frame = make_ohlcv(500)
    path = cache_path(tmp_path, "binance", "BTC/USDT", "1h")

    write_cache(frame, path)

    pd.testing.assert_frame_equal(read_cache(path), frame)
    assert _temp_files(path.parent) == []


def test_read_cache_missing_file_is_none(tmp_path: Path) -> None:
    assert read_cache(tmp_path / "binance" / "BTC_USDT-1h.parquet") is None


def test_read_cache_corrupt_file_says_delete_it(tmp_path: Path) -> None:
    path = cache_path(tmp_path, "binance", "BTC/USDT", "1h")
    write_cache(make_ohlcv(50), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    with pytest.raises(DataError, match=r"corrupt candle cache .*delete the file"):
        read_cache(path)


def test_read_cache_invalid_candles_is_data_error(tmp_path: Path) -> None:
    path = cache_path(tmp_path, "binance", "BTC/USDT", "1h")
    bad = make_ohlcv(50)
    bad.iloc[10, bad.columns.get_loc("high")] = 1.0  # high < low
    bad.to_parquet(path.parent.mkdir(parents=True) or path)

    with pytest.raises(DataError, match="invalid candle cache"):
        read_cache(path)


def test_write_cache_rejects_invalid_frame_and_keeps_old_file(tmp_path: Path) -> None:
    path = cache_path(tmp_path, "binance", "BTC/USDT", "1h")
    write_cache(make_ohlcv(50), path)
    before = path.read_bytes()
    bad = make_ohlcv(60)
    bad.iloc[5, bad.columns.get_loc("close")] = np.nan

    with pytest.raises(DataValidationError, match="non_finite"):
        write_cache(bad, path)

    assert path.read_bytes() == before


def test_write_cache_failed_rename_keeps_old_file(tmp_path: Path, monkeypatch) -> None:
    path = cache_path(tmp_path, "binance", "BTC/USDT", "1h")
    write_cache(make_ohlcv(50), path)
    before = path.read_bytes()

    def broken_replace(self: Path, target: Path) -> Path:
        raise OSError("disk full")

    monkeypatch.setattr(Path, "replace", broken_replace)
    with pytest.raises(DataError, match="cannot write the candle cache"):
        write_cache(make_ohlcv(80), path)

    assert path.read_bytes() == before
    assert _temp_files(path.parent) == []


def test_write_cache_crash_between_temp_write_and_rename_keeps_old_file(tmp_path: Path) -> None:
    path = cache_path(tmp_path, "binance", "BTC/USDT", "1h")
    write_cache(make_ohlcv(50), path)
    before = path.read_bytes()

    child = os.fork()
    if child == 0:  # the child dies the hard way right before the rename
        Path.replace = lambda self, target: os._exit(17)  # type: ignore[assignment,method-assign]
        write_cache(make_ohlcv(80), path)
        os._exit(0)
    _, status = os.waitpid(child, 0)

    assert os.waitstatus_to_exitcode(status) == 17
    assert path.read_bytes() == before
    assert len(read_cache(path)) == 50
    leftovers = _temp_files(path.parent)
    assert len(leftovers) == 1 and leftovers[0].stat().st_size > 0  # the temp file was written
    assert [d.rows for d in list_cached(tmp_path)] == [50]  # and is ignored


def test_merge_candles_new_wins_on_overlap() -> None:
    old = make_ohlcv(10)
    new = make_ohlcv(10, seed=7, start=old.index[5])

    merged = merge_candles(old, new)

    assert len(merged) == 15
    pd.testing.assert_frame_equal(merged.iloc[:5], old.iloc[:5])
    pd.testing.assert_frame_equal(merged.iloc[5:], new)


def test_merge_candles_with_empty_side() -> None:
    frame = make_ohlcv(10)

    pd.testing.assert_frame_equal(merge_candles(frame, frame.iloc[:0]), frame)
    pd.testing.assert_frame_equal(merge_candles(frame.iloc[:0], frame), frame)


def test_update_cache_downloads_then_fetches_only_from_last_cached(
    emulator: BinanceEmulator, make_source: Source, tmp_path: Path
) -> None:
    source = make_source(emulator)
    start = emulator.book.frame("BTC/USDT").index[0].to_pydatetime()
    emulator.clock.set(epoch_ms(start) + 2000 * HOUR_MS + 1)  # 2,000 closed candles so far

    first = _update(source, tmp_path, start)
    assert len(first) == 2000
    emulator.clock.advance(3 * HOUR_MS)
    calls_before = emulator.count("klines")

    second = _update(source, tmp_path, start)

    new_requests = emulator.requests_to("klines")[calls_before:]  # from the last cached candle
    assert [r.params["startTime"] for r in new_requests] == [str(epoch_ms(start) + 1999 * HOUR_MS)]
    assert len(second) == 2003
    pd.testing.assert_frame_equal(second, emulator.closed_candles("BTC/USDT"))
    pd.testing.assert_frame_equal(
        read_cache(cache_path(tmp_path, "binance", "BTC/USDT", "1h")), second
    )


def test_update_cache_never_stores_the_forming_candle(
    emulator: BinanceEmulator, make_source: Source, tmp_path: Path, source_candles: pd.DataFrame
) -> None:
    forming = source_candles.index[-1]
    _update(make_source(emulator), tmp_path, forming - 10 * HOUR)
    path = cache_path(tmp_path, "binance", "BTC/USDT", "1h")

    assert read_cache(path).index[-1] == forming - HOUR
    emulator.clock.set(epoch_ms(forming) + HOUR_MS)  # now it has closed: final values arrive
    frame = _update(make_source(emulator), tmp_path, forming - 10 * HOUR)
    served = emulator.book.frame("BTC/USDT")
    pd.testing.assert_series_equal(frame.loc[forming], served.loc[forming])


def test_update_cache_fetches_history_before_first_cached(
    emulator: BinanceEmulator, make_source: Source, tmp_path: Path
) -> None:
    start = emulator.book.frame("BTC/USDT").index[0].to_pydatetime()
    _update(make_source(emulator), tmp_path, start + 100 * HOUR)
    calls_before = emulator.count("klines")

    frame = _update(make_source(emulator), tmp_path, start)

    head = emulator.requests_to("klines")[calls_before]
    assert head.params["startTime"] == str(epoch_ms(start))
    assert head.params["endTime"] == str(epoch_ms(start + 99 * HOUR))
    assert len(frame) == N_CLOSED


def test_update_cache_failure_leaves_cache_byte_identical(
    emulator: BinanceEmulator, make_source: Source, tmp_path: Path, sleeps: list[float]
) -> None:
    start = emulator.book.frame("BTC/USDT").index[0].to_pydatetime()
    emulator.clock.set(epoch_ms(start) + 1000 * HOUR_MS + 1)
    _update(make_source(emulator), tmp_path, start)
    path = cache_path(tmp_path, "binance", "BTC/USDT", "1h")
    before = path.read_bytes()
    emulator.clock.advance(1500 * HOUR_MS)  # two more pages to fetch
    # the first page arrives, the second fails on every attempt
    emulator.inject("none", "nan_value", "server_error", "truncated_json")

    with pytest.raises(ExchangeUnavailableError, match="gave up after 3 attempts"):
        _update(make_source(emulator, max_attempts=3), tmp_path, start)

    assert emulator.pending_faults() == 0 and emulator.count("klines") == 1 + 4
    assert path.read_bytes() == before
    assert _temp_files(path.parent) == []


def test_update_cache_returns_requested_window(
    emulator: BinanceEmulator, make_source: Source, tmp_path: Path
) -> None:
    start = emulator.book.frame("BTC/USDT").index[0].to_pydatetime()

    frame = _update(make_source(emulator), tmp_path, start + 10 * HOUR, until=start + 19 * HOUR)

    assert len(frame) == 10
    assert frame.index[0] == start + 10 * HOUR and frame.index[-1] == start + 19 * HOUR


def test_list_cached_reports_rows_range_and_gaps(tmp_path: Path) -> None:
    btc = make_ohlcv(100)
    eth = make_ohlcv(48, timeframe="4h")
    eth = eth.drop(eth.index[[10, 11, 30]])
    write_cache(btc, cache_path(tmp_path, "binance", "BTC/USDT", "1h"))
    write_cache(eth, cache_path(tmp_path, "binance", "ETH/USDT", "4h"))
    (tmp_path / "binance" / "notes.parquet").write_bytes(b"not a cache file")

    datasets = list_cached(tmp_path)

    assert [(d.symbol, d.timeframe, d.rows) for d in datasets] == [
        ("BTC/USDT", "1h", 100),
        ("ETH/USDT", "4h", 45),
    ]
    assert (datasets[0].gaps, datasets[0].missing_bars) == (0, 0)
    assert (datasets[1].gaps, datasets[1].missing_bars) == (2, 3)
    assert datasets[0].first == btc.index[0] and datasets[0].last == btc.index[-1]
    assert datasets[1].exchange_id == "binance"


def test_update_cache_replaces_an_unfinished_last_candle(
    emulator: BinanceEmulator, make_source: Source, tmp_path: Path
) -> None:
    source = make_source(emulator)
    start = emulator.book.frame("BTC/USDT").index[0].to_pydatetime()
    emulator.clock.set(epoch_ms(start) + 100 * HOUR_MS + 1)
    path = cache_path(tmp_path, "binance", "BTC/USDT", "1h")
    truth = emulator.closed_candles("BTC/USDT")
    imported = truth.copy()
    imported.iloc[-1, imported.columns.get_loc("volume")] /= 10  # exported while still trading
    write_cache(imported, path)
    updated = _update(source, tmp_path, start)
    pd.testing.assert_frame_equal(updated, truth)
