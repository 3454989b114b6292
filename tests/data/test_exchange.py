"""CcxtCandleSource with the real ccxt client against the local Binance emulator."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import ccxt
import pandas as pd
import pytest

from core.errors import ConfigError, ExchangeUnavailableError, TemporaryExchangeError
from core.settings import ExchangeSettings
from data.exchange import CcxtCandleSource, batch_to_frame, is_temporary, make_client
from tests.conftest import log_has
from tests.data.conftest import N_CLOSED
from tests.emulator import EmulatorClock, epoch_ms, running_emulator
from tests.factories import make_ohlcv

ROOT = Path(__file__).resolve().parents[2]
HOUR = timedelta(hours=1)
HOUR_MS = 3_600_000

Source = Callable[..., CcxtCandleSource]


def _start(frame: pd.DataFrame) -> datetime:
    return frame.index[0].to_pydatetime()


def test_fetch_candles_paginates_over_1000_candles(emulator, make_source: Source) -> None:
    source = make_source(emulator)

    frame = source.fetch_candles("BTC/USDT", "1h", since=_start(emulator.book.frame("BTC/USDT")))

    assert len(frame) == N_CLOSED
    pd.testing.assert_frame_equal(frame, emulator.closed_candles("BTC/USDT"))
    assert emulator.count("klines") == 3  # 1000 + 1000 + 501 (with the forming one)
    assert emulator.count("exchangeInfo") == 1  # spot only: one market request
    starts = [int(r.params["startTime"]) for r in emulator.requests_to("klines")]
    first_ms = epoch_ms(frame.index[0])
    assert starts == [first_ms, first_ms + 1000 * HOUR_MS, first_ms + 2000 * HOUR_MS]
    assert all(r.params["limit"] == "1000" for r in emulator.requests_to("klines"))


def test_fetch_candles_never_returns_forming_candle(
    emulator, make_source: Source, source_candles: pd.DataFrame
) -> None:
    forming_open = source_candles.index[-1]
    source = make_source(emulator)

    frame = source.fetch_candles("BTC/USDT", "1h", since=forming_open - 5 * HOUR)

    assert frame.index[-1] == forming_open - HOUR
    assert len(frame) == 5
    # exactly at the boundary the new candle has just opened and is still forming
    emulator.clock.set(epoch_ms(forming_open))
    frame = source.fetch_candles("BTC/USDT", "1h", since=forming_open - 5 * HOUR)
    assert frame.index[-1] == forming_open - HOUR


def test_forming_candle_values_change_with_server_time(emulator) -> None:
    client = make_client(ExchangeSettings(base_url=emulator.base_url))
    first = client.fetch_ohlcv("BTC/USDT", "1h", limit=1)[-1]
    emulator.clock.advance(HOUR_MS // 4)
    later = client.fetch_ohlcv("BTC/USDT", "1h", limit=1)[-1]

    assert first[0] == later[0]
    assert first[4:] != later[4:]


def test_fetch_candles_returns_until_inclusive(emulator, make_source: Source) -> None:
    start = _start(emulator.book.frame("BTC/USDT"))
    until = start + 1500 * HOUR

    frame = make_source(emulator).fetch_candles("BTC/USDT", "1h", since=start, until=until)

    assert frame.index[0] == start
    assert frame.index[-1] == until
    assert len(frame) == 1501
    assert emulator.count("klines") == 2
    assert all(r.params["endTime"] == str(epoch_ms(until)) for r in emulator.requests_to("klines"))


def test_fetch_candles_mid_candle_since_starts_at_next_candle(emulator, make_source: Source):
    start = _start(emulator.book.frame("BTC/USDT"))

    frame = make_source(emulator).fetch_candles(
        "BTC/USDT", "1h", since=start + timedelta(minutes=30), until=start + 3 * HOUR
    )

    assert list(frame.index) == [pd.Timestamp(start + k * HOUR) for k in (1, 2, 3)]


def test_fetch_candles_after_last_closed_makes_no_kline_request(emulator, make_source: Source):
    now = make_source(emulator).server_time()

    frame = make_source(emulator).fetch_candles("BTC/USDT", "1h", since=now)

    assert frame.empty
    assert emulator.count("klines") == 0


def test_server_time_is_the_emulator_clock(emulator, make_source: Source) -> None:
    emulator.clock.set(epoch_ms("2021-02-03 04:05:06"))

    assert make_source(emulator).server_time() == datetime(2021, 2, 3, 4, 5, 6, tzinfo=UTC)


@pytest.mark.parametrize(
    "fault",
    [
        "rate_limit",
        "ban",
        "server_error",
        "bad_gateway",
        "unavailable",
        "slow",
        "disconnect",
        "truncated_json",
        "html",
        "empty_body",
        "nan_value",
        "empty_value",
        "null_value",
        "high_below_low",
        "conflicting_duplicate",
    ],
)
def test_fetch_candles_retries_fault_then_recovers(
    emulator, make_source: Source, sleeps: list[float], fault: str
) -> None:
    emulator.inject(fault)

    frame = make_source(emulator).fetch_candles(
        "BTC/USDT", "1h", since=_start(emulator.book.frame("BTC/USDT"))
    )

    pd.testing.assert_frame_equal(frame, emulator.closed_candles("BTC/USDT"))
    assert emulator.pending_faults() == 0
    assert emulator.count("klines") == 4  # one page asked twice
    assert len(sleeps) == 1


@pytest.mark.parametrize("fault", ["truncated_json", "html", "empty_body"])
def test_fetch_candles_garbage_reply_in_bounded_window_is_not_taken_as_empty(
    emulator, make_source: Source, sleeps: list[float], fault: str
) -> None:
    start = _start(emulator.book.frame("BTC/USDT"))
    emulator.inject("none", fault)  # an empty reply may be genuine here (e.g. before a listing)

    frame = make_source(emulator).fetch_candles(
        "BTC/USDT", "1h", since=start, until=start + 1500 * HOUR
    )

    assert len(frame) == 1501
    assert len(sleeps) == 1


@pytest.mark.parametrize("fault", ["duplicate_rows", "out_of_order"])
def test_fetch_candles_repairs_harmless_disorder_without_retry(
    emulator, make_source: Source, sleeps: list[float], fault: str
) -> None:
    emulator.inject(fault, fault)

    frame = make_source(emulator).fetch_candles(
        "BTC/USDT", "1h", since=_start(emulator.book.frame("BTC/USDT"))
    )

    pd.testing.assert_frame_equal(frame, emulator.closed_candles("BTC/USDT"))
    assert sleeps == []


def test_fetch_candles_honours_retry_after(source_candles, make_source: Source, sleeps) -> None:
    with running_emulator(source_candles, retry_after_seconds=3) as emu:
        emu.inject("rate_limit")
        make_source(emu).fetch_candles("BTC/USDT", "1h", since=_start(source_candles))

    assert sleeps[0] >= 3  # more than the 0.5 s backoff


def test_fetch_candles_refuses_retry_after_longer_than_max_backoff(
    source_candles, make_source: Source, sleeps
) -> None:
    with running_emulator(source_candles, retry_after_seconds=120) as emu:
        emu.inject("ban")
        with pytest.raises(ExchangeUnavailableError, match="asks to wait 120 s"):
            make_source(emu).fetch_candles("BTC/USDT", "1h", since=_start(source_candles))

    assert sleeps == []


def test_fetch_candles_gives_up_after_max_attempts(
    emulator, make_source: Source, sleeps: list[float], caplog
) -> None:
    emulator.inject("server_error", "bad_gateway", "truncated_json", "nan_value")
    caplog.set_level(logging.WARNING, logger="data.exchange")

    with pytest.raises(ExchangeUnavailableError) as info:
        make_source(emulator, max_attempts=4).fetch_candles(
            "BTC/USDT", "1h", since=datetime(2021, 1, 1, tzinfo=UTC)
        )

    message = str(info.value)
    assert "BTC/USDT 1h candles since 2021-01-01 00:00Z from binance" in message
    assert "gave up after 4 attempts" in message and "exchange.base_url" in message
    assert isinstance(info.value.__cause__, TemporaryExchangeError)
    assert sleeps == [0.5, 1.0, 2.0]
    assert sum(r.levelno == logging.WARNING for r in caplog.records) == 3


def test_fetch_candles_unknown_symbol_fails_at_once(emulator, make_source: Source, sleeps):
    with pytest.raises(ExchangeUnavailableError, match="ETH/USDT is not a market on binance"):
        make_source(emulator).fetch_candles("ETH/USDT", "1h", since=datetime(2021, 1, 1))

    assert sleeps == []
    assert emulator.count("klines") == 0


def test_fetch_candles_permanent_exchange_error_not_retried(emulator, make_source: Source, sleeps):
    with pytest.raises(ExchangeUnavailableError, match="BadRequest") as info:
        make_source(emulator).fetch_candles("BTC/USDT", "15m", since=datetime(2021, 1, 1))

    assert "BTC/USDT 15m" in str(info.value)
    assert isinstance(info.value.__cause__, ccxt.BadRequest)
    assert sleeps == []
    assert emulator.count("klines") == 1


def test_fetch_candles_retries_garbage_exchange_info(emulator, make_source: Source, sleeps):
    emulator.inject("html", endpoint="exchangeInfo")

    frame = make_source(emulator).fetch_candles(
        "BTC/USDT", "1h", since=_start(emulator.book.frame("BTC/USDT"))
    )

    assert len(frame) == N_CLOSED
    assert emulator.count("exchangeInfo") == 2
    assert len(sleeps) == 1


def test_fetch_candles_passes_gaps_through(make_source: Source) -> None:
    candles = make_ohlcv(1201)
    holed = candles.drop(candles.index[[100, 500, 501, 502]])
    with running_emulator(holed) as emu:
        frame = make_source(emu).fetch_candles("BTC/USDT", "1h", since=_start(candles))
        expected = emu.closed_candles("BTC/USDT")

    pd.testing.assert_frame_equal(frame, expected)
    assert len(frame) == 1200 - 4
    assert candles.index[100] not in frame.index


def test_fetch_candles_survives_random_faults(source_candles, make_source: Source) -> None:
    kinds = ("rate_limit", "server_error", "truncated_json", "nan_value", "duplicate_rows")
    with running_emulator(source_candles, fault_rate=0.5, seed=3, random_faults=kinds) as emu:
        source = make_source(emu, max_attempts=10)
        frame = source.fetch_candles("BTC/USDT", "1h", since=_start(source_candles))
        faults = [r.fault for r in emu.requests_to("klines") if r.fault]
        expected = emu.closed_candles("BTC/USDT")

    pd.testing.assert_frame_equal(frame, expected)
    assert len(faults) >= 2


def test_fetch_candles_serves_aggregated_4h(emulator, make_source: Source) -> None:
    frame = make_source(emulator).fetch_candles("BTC/USDT", "4h", since=datetime(2021, 1, 1))

    pd.testing.assert_frame_equal(frame, emulator.closed_candles("BTC/USDT", "4h"))
    assert len(frame) == N_CLOSED // 4


def test_fetch_candles_logs_one_info_line(emulator, make_source: Source, caplog) -> None:
    caplog.set_level(logging.INFO, logger="data.exchange")

    make_source(emulator).fetch_candles("BTC/USDT", "1h", since=datetime(2021, 1, 1))

    assert log_has(caplog, "Fetched BTC/USDT 1h from binance", logging.INFO)
    assert log_has(caplog, "2500 candles, 3 pages")


def test_make_client_rejects_unknown_exchange() -> None:
    with pytest.raises(ConfigError, match="'nosuchexchange'"):
        make_client(ExchangeSettings(id="nosuchexchange"))


def test_make_client_rewrites_every_api_url() -> None:
    client = make_client(ExchangeSettings(base_url="http://127.0.0.1:9999"))

    urls = client.urls["api"]
    assert urls["public"] == "http://127.0.0.1:9999/api/v3"
    assert urls["fapiPublic"] == "http://127.0.0.1:9999/fapi/v1"
    assert all(url.startswith("http://127.0.0.1:9999/") for url in urls.values())
    assert client.options["maxRetriesOnFailure"] == 0


def test_is_temporary_follows_the_ccxt_fault_table() -> None:
    temporary = [ccxt.OperationFailed, ccxt.BadResponse, ccxt.RequestTimeout, ccxt.ExchangeError]
    permanent = [ccxt.BadSymbol, ccxt.AuthenticationError, ccxt.PermissionDenied, ccxt.NotSupported]

    assert all(is_temporary(cls("x")) for cls in temporary)
    assert not any(is_temporary(cls("x")) for cls in permanent)


def test_batch_to_frame_rejects_empty_batch_only_when_candles_expected() -> None:
    with pytest.raises(TemporaryExchangeError, match="empty"):
        batch_to_frame([], timeframe="1h", server_ms=10**13, expected=True)

    frame, newest = batch_to_frame([], timeframe="1h", server_ms=10**13, expected=False)
    assert frame.empty and newest is None


def test_batch_to_frame_rejects_off_grid_candle() -> None:
    rows = [[HOUR_MS, 1.0, 2.0, 0.5, 1.5, 3.0], [2 * HOUR_MS + 60_000, 1.0, 2.0, 0.5, 1.5, 3.0]]

    with pytest.raises(TemporaryExchangeError, match="not on the 1h grid"):
        batch_to_frame(rows, timeframe="1h", server_ms=10**13, expected=True)


@pytest.mark.parametrize(
    ("row", "check"),
    [
        ([HOUR_MS, 1.0, float("inf"), 0.5, 1.5, 3.0], "non_finite"),
        ([HOUR_MS, 0.0, 2.0, 0.0, 1.5, 3.0], "non_positive"),
        ([HOUR_MS, 1.0, 1.2, 0.5, 1.5, 3.0], "body_outside_range"),
    ],
)
def test_batch_to_frame_rejects_bad_values(row: list[float], check: str) -> None:
    with pytest.raises(TemporaryExchangeError, match=check):
        batch_to_frame([row], timeframe="1h", server_ms=10**13, expected=True)


def test_batch_to_frame_drops_forming_candle_by_server_time() -> None:
    rows = [[k * HOUR_MS, 1.0, 2.0, 0.5, 1.5, 3.0] for k in range(3)]

    frame, newest = batch_to_frame(rows, timeframe="1h", server_ms=3 * HOUR_MS - 1, expected=True)

    assert len(frame) == 2 and newest == 2 * HOUR_MS


def test_emulator_clock_replays_one_candle_per_interval() -> None:
    wall = [100.0]
    clock = EmulatorClock(0, step_ms=HOUR_MS, seconds_per_candle=0.2, monotonic=lambda: wall[0])

    wall[0] += 0.5
    assert clock.now_ms() == int(2.5 * HOUR_MS)
    clock.set(10 * HOUR_MS)
    wall[0] += 0.2
    assert clock.now_ms() == 11 * HOUR_MS


@pytest.mark.slow
def test_emulator_process_serves_until_sigterm(make_source: Source) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.emulator", "--synthetic", "300", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().split()
        assert line[0] == "EMULATOR_URL"
        cfg = ExchangeSettings(base_url=line[1], timeout_ms=2000)
        frame = CcxtCandleSource(cfg).fetch_candles("BTC/USDT", "1h", since=datetime(2021, 1, 1))
        assert len(frame) == 299
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_emulator_serves_several_symbols_from_one_frame(make_source: Source) -> None:
    candles = make_ohlcv(101)
    symbols = {"BTC/USDT": candles, "ETH/USDT": candles, "SOL/USDT": make_ohlcv(101, seed=5)}
    with running_emulator(symbols) as emu:
        source = make_source(emu)
        frames = {s: source.fetch_candles(s, "1h", since=_start(candles)) for s in symbols}

    assert {s: len(f) for s, f in frames.items()} == dict.fromkeys(symbols, 100)
    pd.testing.assert_frame_equal(frames["BTC/USDT"], frames["ETH/USDT"])
    assert not frames["SOL/USDT"].equals(frames["BTC/USDT"])


@pytest.mark.slow
def test_emulator_process_replays_the_shared_file(shared_data: Path) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.emulator",
            "--data",
            str(shared_data / "Binance_BTCUSDT_1h.csv"),
            "--replay-start",
            "2021-01-01T00:00Z",
            "--seconds-per-candle",
            "0.1",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split()[1]
        source = CcxtCandleSource(ExchangeSettings(base_url=url, timeout_ms=2000))
        first = source.fetch_candles("BTC/USDT", "1h", since=datetime(2020, 12, 31, tzinfo=UTC))
        time.sleep(0.35)  # end-to-end: let the replay clock move on ~3 candles
        later = source.fetch_candles("BTC/USDT", "1h", since=datetime(2020, 12, 31, tzinfo=UTC))
        assert first.index[0] == pd.Timestamp("2020-12-31", tz="UTC")
        assert len(later) > len(first)  # time moved on: more candles have closed
        pd.testing.assert_frame_equal(later.iloc[: len(first)], first)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
