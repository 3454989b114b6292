"""The six real CryptoDataDownload files in ../shared/data import and clean (a few seconds)."""

import time
from pathlib import Path

import pandas as pd
import pytest

from core.settings import QualitySettings
from data.files import infer_timeframe, read_candle_file
from data.quality import Gap, clean_candles
from data.schema import validate_ohlcv
from tests.prerequisites import require_shared_file

FILES = {
    "Binance_BTCUSDT_1h.csv": "1h",
    "Binance_ETHUSDT_1h.csv": "1h",
    "Binance_BNBUSDT_1h.csv": "1h",
    "Binance_ADAUSDT_1h.csv": "1h",
    "Binance_BTCUSDT_d.csv": "1d",
    "Binance_BNBUSDT_d.csv": "1d",
}
UTC = "UTC"


def _import(path: Path, timeframe: str):
    raw = read_candle_file(path)
    clean = clean_candles(
        raw.frame, timeframe=timeframe, cfg=QualitySettings(), rows_read=raw.rows_read
    )
    return raw, clean


@pytest.fixture(scope="module")
def btc_1h_clean():
    """The cleaned BTC 1h file, imported once for the tests that only inspect it."""
    return _import(require_shared_file("Binance_BTCUSDT_1h.csv"), "1h")[1]


@pytest.mark.parametrize("name", sorted(FILES))
def test_shared_file_imports_and_cleans(shared_data: Path, name: str) -> None:
    raw, clean = _import(shared_data / name, FILES[name])
    assert raw.format_name == "cryptodatadownload"
    assert infer_timeframe(pd.DatetimeIndex(raw.frame.index)) == FILES[name]
    validate_ohlcv(clean.frame, timeframe=FILES[name])
    report = clean.report
    assert report.rows_kept > 1000
    assert (
        report.rows_read == report.duplicate_rows_removed + report.rows_dropped + report.rows_kept
    )
    # every shared export was cut while its last candle was still trading
    assert report.unfinished_last_candle


def test_shared_btc_1h_expected_figures(shared_data: Path) -> None:
    started = time.perf_counter()
    raw, clean = _import(shared_data / "Binance_BTCUSDT_1h.csv", "1h")
    elapsed = time.perf_counter() - started
    report = clean.report
    assert report.rows_read == 36_062
    assert report.distinct_candles == 33_413
    assert report.first_timestamp == pd.Timestamp("2017-08-17 04:00", tz=UTC)
    assert report.last_timestamp == pd.Timestamp("2021-06-10 00:00", tz=UTC)
    assert report.duplicated_timestamps == 2_649
    assert (report.duplicate_conflicts, report.duplicate_major_conflicts) == (1_442, 2)
    assert (len(report.gaps), report.missing_bars) == (8, 16)
    assert report.gaps[0] == Gap(
        pd.Timestamp("2017-09-22 20:00", tz=UTC), pd.Timestamp("2017-09-22 23:00", tz=UTC), 4
    )
    assert [issue.timestamp for issue in report.examples_for("jump")] == [
        pd.Timestamp("2017-08-17 04:00", tz=UTC)
    ]
    assert (report.jump_rows, report.rows_dropped, report.rows_kept) == (1, 1, 33_412)
    assert report.first_kept == pd.Timestamp("2017-08-17 05:00", tz=UTC)
    assert "timestamps: 28,584 in s, 7,478 in ms" in raw.notes
    assert elapsed < 2.0, f"importing the 3.7 MB BTC file took {elapsed:.2f} s"


def test_shared_btc_1h_keeps_real_crashes(btc_1h_clean) -> None:
    frame = btc_1h_clean.frame
    crash = frame.loc["2020-03-12":"2020-03-13"]
    assert len(crash) == 48 and crash["low"].min() == pytest.approx(3782.13)
    assert len(frame.loc["2021-05-19"]) == 24
    assert frame.loc["2020-11-20 07:00", "close"] == 18212.0  # the precise (ms) export won


@pytest.mark.parametrize(
    ("name", "timeframe", "crash_day"),
    [
        ("Binance_BTCUSDT_d.csv", "1d", "2020-03-12"),
        ("Binance_BTCUSDT_d.csv", "1d", "2020-03-13"),
        ("Binance_BTCUSDT_d.csv", "1d", "2021-05-19"),
        ("Binance_BNBUSDT_d.csv", "1d", "2017-12-22"),
    ],
)
def test_shared_daily_crashes_not_flagged(
    shared_data: Path, name: str, timeframe: str, crash_day: str
) -> None:
    _, clean = _import(shared_data / name, timeframe)
    assert clean.report.jump_rows == 0
    assert pd.Timestamp(crash_day, tz=UTC) in clean.frame.index


def test_shared_eth_1h_bogus_first_candle_flagged(shared_data: Path) -> None:
    _, clean = _import(shared_data / "Binance_ETHUSDT_1h.csv", "1h")
    jumps = clean.report.examples_for("jump")
    assert [issue.timestamp for issue in jumps] == [pd.Timestamp("2017-08-17 04:00", tz=UTC)]
