import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from core.errors import CandleGapError, DataValidationError
from core.settings import QualitySettings
from data.files import read_candle_file
from data.quality import (
    DataQualityReport,
    Gap,
    clean_candles,
    find_gaps,
    jump_score,
    load_report,
    report_table,
    save_report,
)
from data.schema import empty_ohlcv, index_to_epoch_ms, validate_ohlcv
from tests.conftest import log_has
from tests.factories import make_ohlcv

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
DEFAULT = QualitySettings()


def _clean(frame: pd.DataFrame, **policies: object):
    return clean_candles(frame, timeframe="1h", cfg=QualitySettings(**policies))


def _ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def _set(frame: pd.DataFrame, row: int, **values: float) -> pd.DataFrame:
    out = frame.copy()
    for column, value in values.items():
        out.iloc[row, out.columns.get_loc(column)] = value
    return out


def test_clean_candles_sorts_and_normalises_epoch_units() -> None:
    candles = make_ohlcv(6)
    epoch_ms = index_to_epoch_ms(candles.index).astype("float64")
    mixed = candles.copy()
    mixed.index = pd.Index(np.where(np.arange(6) % 2 == 0, epoch_ms / 1000, epoch_ms * 1000))
    result = _clean(mixed.iloc[::-1])
    pd.testing.assert_frame_equal(result.frame, validate_ohlcv(candles))
    assert str(result.frame.index.dtype) == "datetime64[ms, UTC]"


def test_clean_candles_keep_precise_prefers_precise_row_in_any_order() -> None:
    candles = make_ohlcv(5)
    precise = candles.assign(precision=8)
    rounded = candles.round(1).assign(precision=1)
    for raw in (pd.concat([precise, rounded]), pd.concat([rounded, precise])):
        result = clean_candles(raw, timeframe="1h", cfg=DEFAULT)
        pd.testing.assert_frame_equal(result.frame, validate_ohlcv(candles))
        assert result.report.duplicated_timestamps == 5
        assert result.report.duplicate_rows_removed == 5


def test_clean_candles_keep_last_and_fail_policies() -> None:
    candles = make_ohlcv(4)
    later = _set(candles, 2, low=candles["low"].iloc[2] * 0.99)
    raw = pd.concat([candles, later.iloc[[2]]])
    kept = _clean(raw, duplicates="keep_last").frame
    assert kept["low"].iloc[2] == later["low"].iloc[2]
    with pytest.raises(DataValidationError, match=r"1 duplicated timestamp.*2021-01-01 02:00"):
        _clean(raw, duplicates="fail")


def test_clean_candles_counts_conflicts_on_prices() -> None:
    candles = make_ohlcv(6)
    twins = pd.concat(
        [
            candles.iloc[[0]],  # identical: no conflict
            _set(candles, 1, volume=candles["volume"].iloc[1] + 1).iloc[[1]],  # volume only
            _set(candles, 2, open=candles["open"].iloc[2] * 1.00001).iloc[[2]],  # rounding
            _set(candles, 3, high=candles["high"].iloc[3] * 1.01).iloc[[3]],  # > 0.1 %
        ]
    )
    report = clean_candles(pd.concat([candles, twins]), timeframe="1h", cfg=DEFAULT).report
    assert report.duplicated_timestamps == 4
    assert report.duplicate_conflicts == 2
    assert report.duplicate_major_conflicts == 1
    first = report.examples_for("duplicate_conflict")[0]
    assert first.timestamp == candles.index[3]


def test_clean_candles_accepts_frames_without_precision() -> None:
    candles = make_ohlcv(10)
    assert "precision" not in candles.columns
    result = clean_candles(candles, timeframe="1h", cfg=DEFAULT)
    assert result.report.rows_kept == 10
    assert list(result.frame.columns) == ["open", "high", "low", "close", "volume"]


def test_clean_candles_reports_gaps_without_filling() -> None:
    candles = make_ohlcv(30).drop(make_ohlcv(30).index[[5, 6, 7, 20]])
    report = _clean(candles).report
    assert report.rows_kept == 26
    assert report.gaps == (
        Gap(candles.index[4] + pd.Timedelta(hours=1), candles.index[4] + pd.Timedelta(hours=3), 3),
        Gap(
            pd.Timestamp("2021-01-01 20:00", tz="UTC"),
            pd.Timestamp("2021-01-01 20:00", tz="UTC"),
            1,
        ),
    )
    assert report.missing_bars == 4
    with pytest.raises(CandleGapError, match=r"2 gap\(s\), 4 missing.*2021-01-01 05:00Z"):
        _clean(candles, gaps="fail")


def test_find_gaps_ignores_order_and_duplicates() -> None:
    index = pd.DatetimeIndex(["2021-01-02", "2021-01-01", "2021-01-02", "2021-01-05"], tz="UTC")
    assert find_gaps(index, "1d") == (
        Gap(pd.Timestamp("2021-01-03", tz="UTC"), pd.Timestamp("2021-01-04", tz="UTC"), 2),
    )
    assert find_gaps(index[:2], "1d") == ()


def test_clean_candles_invalid_ohlc_drop_repair_fail() -> None:
    candles = make_ohlcv(20)
    low, high = candles["low"].iloc[4], candles["high"].iloc[4]
    bad = _set(candles, 4, high=low * 0.99)  # high below low
    bad = _set(bad, 9, low=bad[["open", "close"]].iloc[9].min() * 1.001)  # body below low
    dropped = _clean(bad).report
    assert (dropped.high_below_low_rows, dropped.body_outside_range_rows) == (1, 1)
    assert (dropped.rows_dropped, dropped.rows_kept) == (2, 18)
    repaired = _clean(bad, invalid_ohlc="repair")
    assert repaired.report.rows_repaired == 2
    assert repaired.report.rows_kept == 20
    row = repaired.frame.iloc[4]
    assert row["high"] == max(row["open"], row["close"], low) and row["high"] < high
    with pytest.raises(DataValidationError, match=r"2 candle.*invalid OHLC.*2021-01-01 04:00"):
        _clean(bad, invalid_ohlc="fail")


def test_clean_candles_non_positive_and_nan() -> None:
    candles = make_ohlcv(20)
    bad = _set(_set(candles, 3, close=np.nan), 8, open=0.0)
    bad = _set(bad, 12, volume=-1.0)
    report = _clean(bad).report
    assert (report.non_finite_rows, report.non_positive_rows, report.rows_kept) == (1, 2, 17)
    with pytest.raises(DataValidationError, match=r"3 candle.*non-positive.*2021-01-01 03:00"):
        _clean(bad, non_positive="fail")


def test_clean_candles_jump_flags_bogus_print_not_crash() -> None:
    returns = np.zeros(60)
    returns[30] = np.log(0.55)  # a real crash: -45 % that stays down
    candles = make_ohlcv(60, log_returns=returns, volatility=0.002)
    bogus = _set(
        candles, 0, open=candles["close"].iloc[0] * 3.8, high=candles["high"].iloc[0] * 3.8
    )
    bogus = _set(bogus, 45, close=bogus["close"].iloc[45] * 2)
    bogus = _set(bogus, 45, high=bogus["close"].iloc[45])
    result = _clean(bogus)
    assert result.report.jump_rows == 2
    assert [e.timestamp for e in result.report.examples_for("jump")] == list(bogus.index[[0, 45]])
    assert result.report.first_kept == candles.index[1]
    assert candles.index[30] in result.frame.index
    kept = _clean(bogus, jumps="warn")
    assert kept.report.jump_rows == 2 and kept.report.rows_kept == 60
    with pytest.raises(DataValidationError, match=r"implausible jump.*2021-01-01 00:00"):
        _clean(bogus, jumps="fail")


def test_jump_score_tolerates_wicks_twice_as_far() -> None:
    candles = make_ohlcv(30, log_returns=np.zeros(30), volatility=0.001)
    wick = _set(candles, 15, low=candles["close"].iloc[15] * 0.45)  # -0.8 log flash-crash wick
    assert jump_score(wick)[15] == pytest.approx(0.4, abs=0.01)
    assert _clean(wick).report.jump_rows == 0
    spike = _set(candles, 15, high=candles["close"].iloc[15] * 100)
    assert _clean(spike).report.jump_rows == 1


def test_clean_candles_warns_on_unfinished_last_candle() -> None:
    candles = make_ohlcv(40)
    report = _clean(candles).report
    assert not report.unfinished_last_candle
    tiny = _set(candles, -1, volume=candles["volume"].iloc[-25:-1].median() * 0.05)
    result = _clean(tiny)
    assert result.report.unfinished_last_candle
    assert result.report.rows_kept == 40  # warning only
    detail = result.report.examples_for("unfinished_last_candle")[0].detail
    assert "5.0% of the median of the previous 24 candles" in detail


def test_clean_candles_off_grid_fails_naming_timeframe() -> None:
    with pytest.raises(DataValidationError, match=r"not on the 4h grid.*look like 1h"):
        clean_candles(make_ohlcv(10), timeframe="4h", cfg=DEFAULT)


def test_clean_candles_logs_counts_at_warning(caplog: pytest.LogCaptureFixture) -> None:
    candles = make_ohlcv(30)
    raw = pd.concat([candles, candles.iloc[:3]]).drop(candles.index[10])
    with caplog.at_level(logging.INFO):
        clean_candles(raw, timeframe="1h", cfg=DEFAULT, symbol="BTC/USDT")
    assert log_has(caplog, "BTC/USDT 1h: 3 duplicated timestamps", logging.WARNING)
    assert log_has(caplog, "1 gaps with 1 missing candles", logging.WARNING)
    assert sum(r.levelno == logging.WARNING for r in caplog.records) == 2


def test_clean_candles_report_bookkeeping_and_examples_limit() -> None:
    candles = make_ohlcv(50)
    bad = candles.copy()
    bad.iloc[[5, 10, 15, 20], bad.columns.get_loc("close")] = np.nan
    raw = pd.concat([bad, candles.iloc[:7]])
    report = clean_candles(
        raw, timeframe="1h", cfg=QualitySettings(max_examples=2), rows_read=57
    ).report
    assert (
        report.rows_read == report.duplicate_rows_removed + report.rows_dropped + report.rows_kept
    )
    # row 5 is read again later with a valid close, and the later row wins (same precision)
    assert (report.distinct_candles, report.rows_kept) == (50, 47)
    assert report.non_finite_rows == 3
    assert len(report.examples_for("non_finite")) == 2


def test_clean_candles_does_not_mutate_input() -> None:
    raw = _set(make_ohlcv(20), 4, high=1.0)
    before = raw.copy()
    _clean(raw, invalid_ohlc="repair")
    pd.testing.assert_frame_equal(raw, before)


def test_clean_candles_real_overlap_fixture() -> None:
    raw = read_candle_file(FIXTURES / "cdd_btc_1h_overlap.csv")
    result = clean_candles(raw.frame, timeframe="1h", cfg=DEFAULT, rows_read=raw.rows_read)
    report = result.report
    assert (report.rows_read, report.distinct_candles, report.duplicated_timestamps) == (
        266,
        254,
        12,
    )
    assert (report.duplicate_conflicts, report.duplicate_major_conflicts) == (7, 1)
    assert report.gaps == (
        Gap(
            pd.Timestamp("2020-11-30 06:00", tz="UTC"),
            pd.Timestamp("2020-11-30 06:00", tz="UTC"),
            1,
        ),
    )
    # the millisecond export is the precise one: its values win
    assert result.frame.loc["2020-11-20 07:00", "close"] == 18212.0
    assert result.frame.loc["2020-11-20 07:00", "volume"] == pytest.approx(6097.86638)
    validate_ohlcv(result.frame, timeframe="1h")


def test_clean_candles_real_bogus_first_candle_and_unfinished_day() -> None:
    start = read_candle_file(FIXTURES / "cdd_btc_1h_start_url.csv")
    report = clean_candles(start.frame, timeframe="1h", cfg=DEFAULT).report
    assert report.jump_rows == 1
    assert report.examples_for("jump")[0].timestamp == pd.Timestamp("2017-08-17 04:00", tz="UTC")
    assert report.first_kept == pd.Timestamp("2017-08-17 05:00", tz="UTC")
    daily = read_candle_file(FIXTURES / "cdd_btc_d_end.csv.gz")
    daily_report = clean_candles(daily.frame, timeframe="1d", cfg=DEFAULT).report
    assert daily_report.unfinished_last_candle
    assert daily_report.rows_kept == 40


def test_report_dict_round_trip_is_json_ready() -> None:
    raw = read_candle_file(FIXTURES / "cdd_btc_1h_overlap.csv")
    report = clean_candles(
        raw.frame, timeframe="1h", cfg=DEFAULT, symbol="BTC/USDT", notes=raw.notes
    ).report
    data = json.loads(json.dumps(report.to_dict()))
    assert data["gaps"][0]["start"] == "2020-11-30T06:00:00Z"
    assert data["policies"]["duplicates"] == "keep_precise"
    assert DataQualityReport.from_dict(data) == report


def test_save_report_atomic_and_loadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = _clean(make_ohlcv(10)).report
    target = tmp_path / "cache" / "r.json"
    save_report(report, target)
    assert load_report(target) == report
    worse = _clean(make_ohlcv(10).drop(make_ohlcv(10).index[3])).report

    def broken_replace(self: Path, other: Path) -> Path:
        raise OSError("disk full")

    monkeypatch.setattr(Path, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        save_report(worse, target)
    assert load_report(target) == report  # the old report is intact
    assert [p.name for p in target.parent.iterdir()] == ["r.json"]  # no temp file left


def test_report_table_shows_counts_and_examples() -> None:
    raw = read_candle_file(FIXTURES / "cdd_btc_1h_start_url.csv")
    report = clean_candles(raw.frame, timeframe="1h", cfg=DEFAULT, symbol="BTC/USDT").report
    console = Console(record=True, width=200)
    console.print(report_table(report))
    text = console.export_text()
    assert "Data quality: BTC/USDT 1h" in text
    assert "Implausible jumps" in text and "2017-08-17 04:00 o=16199.91" in text
    assert "47 candles kept" in text and "1 dropped, 0 repaired" in text


def test_clean_candles_empty_and_all_bad_frames() -> None:
    empty = clean_candles(empty_ohlcv(), timeframe="1h", cfg=DEFAULT)
    assert (empty.report.rows_kept, empty.report.first_timestamp, empty.report.gaps) == (
        0,
        None,
        (),
    )
    all_bad = make_ohlcv(3).assign(close=np.nan)
    report = _clean(all_bad).report
    assert (report.rows_kept, report.rows_dropped, report.first_kept) == (0, 3, None)
    assert DataQualityReport.from_dict(report.to_dict()) == report
