import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.errors import DataFormatError, DataNotFoundError
from data.files import epoch_to_ms, infer_timeframe, read_candle_file

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
OVERLAP = FIXTURES / "cdd_btc_1h_overlap.csv"
SAME_48 = (
    "binance_klines_ms.csv",
    "binance_klines_us.csv",
    "freqtrade_btc_1h.json",
    "plain_iso.csv",
)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _tamper(tmp_path: Path, line_no: int, column: int, value: str) -> Path:
    """A copy of the overlap fixture with one cell replaced (1-based physical line)."""
    lines = OVERLAP.read_text(encoding="utf-8").splitlines()
    cells = lines[line_no - 1].split(",")
    cells[column] = value
    lines[line_no - 1] = ",".join(cells)
    return _write(tmp_path, "tampered.csv", "\n".join(lines) + "\n")


def test_read_candle_file_cdd_overlap_mixed_units_and_precision() -> None:
    raw = read_candle_file(OVERLAP)
    frame = raw.frame
    assert raw.format_name == "cryptodatadownload"
    assert raw.rows_read == len(frame) == 266
    assert "timestamps: 12 in s, 254 in ms" in raw.notes
    assert str(frame.index.dtype) == "datetime64[ms, UTC]"
    assert frame.index.name == "timestamp"
    assert list(frame.columns) == ["open", "high", "low", "close", "volume", "precision"]
    assert frame.index.is_monotonic_decreasing  # read order kept; quality sorts
    assert frame.index.duplicated().sum() == 12
    doubled = frame.loc["2020-11-20 07:00"]
    assert sorted(doubled["precision"]) == [2, 8]
    assert sorted(doubled["close"]) == [18143.03, 18212.0]


def test_read_candle_file_cdd_volume_is_base_currency() -> None:
    frame = read_candle_file(OVERLAP).frame
    assert frame.loc["2020-11-30 10:00", "volume"].item() == pytest.approx(2240.917883)


def test_read_candle_file_cdd_dates_cross_checked_against_unix(tmp_path: Path) -> None:
    assert not any("disagrees" in note for note in read_candle_file(OVERLAP).notes)
    tampered = _tamper(tmp_path, 5, 1, "2020-11-30 01:00:00")
    notes = read_candle_file(tampered).notes
    assert any("disagrees with unix in 1 rows (first line 5" in note for note in notes)


def test_read_candle_file_cdd_url_line_seconds_and_ampm_dates() -> None:
    raw = read_candle_file(FIXTURES / "cdd_btc_1h_start_url.csv")
    assert raw.format_name == "cryptodatadownload"
    assert raw.rows_read == 48
    assert "skipped URL line 'https://www.CryptoDataDownload.com'" in raw.notes
    assert "timestamps: 48 in s" in raw.notes
    assert raw.frame.index.min() == pd.Timestamp("2017-08-17 04:00", tz="UTC")
    assert raw.frame.loc["2017-08-17 04:00", "open"].item() == 16199.91
    assert not any("disagrees" in note for note in raw.notes)  # 08-AM dates parsed


def test_read_candle_file_cdd_daily_gz_and_date_only() -> None:
    gz = read_candle_file(FIXTURES / "cdd_btc_d_end.csv.gz")
    assert (gz.format_name, gz.rows_read) == ("cryptodatadownload", 40)
    assert infer_timeframe(pd.DatetimeIndex(gz.frame.index)) == "1d"
    dated = read_candle_file(FIXTURES / "cdd_btc_d_dateonly.csv")
    assert dated.rows_read == 24
    assert not any("disagrees" in note for note in dated.notes)  # `2017-12-18` parsed as a day
    assert dated.frame.index.duplicated().sum() == 1


def test_read_candle_file_klines_freqtrade_and_plain_agree() -> None:
    frames = {name: read_candle_file(FIXTURES / name) for name in SAME_48}
    expected = frames["binance_klines_ms.csv"].frame.drop(columns="precision")
    assert len(expected) == 48
    assert expected.index[0] == pd.Timestamp("2021-06-08 01:00", tz="UTC")
    for name, raw in frames.items():
        pd.testing.assert_frame_equal(raw.frame.drop(columns="precision"), expected, obj=name)
    assert frames["binance_klines_us.csv"].format_name == "binance_klines"
    assert "timestamps: 48 in us" in frames["binance_klines_us.csv"].notes
    assert frames["freqtrade_btc_1h.json"].format_name == "freqtrade_json"
    assert frames["plain_iso.csv"].format_name == "plain_csv"


@pytest.mark.parametrize("name", [*SAME_48, "cdd_btc_1h_start_url.csv", "cdd_btc_1h_overlap.csv"])
def test_read_candle_file_gz_detected_from_content(tmp_path: Path, name: str) -> None:
    plain = read_candle_file(FIXTURES / name)
    target = tmp_path / "candles.dat"  # no telling suffix: the layout comes from the content
    with (FIXTURES / name).open("rb") as src, gzip.open(target, "wb") as dst:
        shutil.copyfileobj(src, dst)
    packed = read_candle_file(target)
    assert packed.format_name == plain.format_name
    pd.testing.assert_frame_equal(packed.frame, plain.frame)


def test_read_candle_file_layout_from_content_not_name(tmp_path: Path) -> None:
    misnamed = tmp_path / "candles.csv"
    shutil.copy(FIXTURES / "freqtrade_btc_1h.json", misnamed)
    assert read_candle_file(misnamed).format_name == "freqtrade_json"


def test_read_candle_file_plain_epoch_seconds_semicolons(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "p.csv",
        "Date;Open;High;Low;Close;Volume\n1609459200;10;12;9;11;5\n1609462800;11;13;10;12;6\n",
    )
    raw = read_candle_file(path)
    assert raw.format_name == "plain_csv"
    assert raw.frame.index[1] == pd.Timestamp("2021-01-01 01:00", tz="UTC")
    assert raw.frame["close"].tolist() == [11.0, 12.0]


def test_read_candle_file_unknown_layout_lists_what_was_seen() -> None:
    with pytest.raises(DataFormatError, match=r"Name,Age,City.*supported layouts: Crypto"):
        read_candle_file(FIXTURES / "garbage.csv")


def test_read_candle_file_binary_empty_and_missing(tmp_path: Path) -> None:
    binary = tmp_path / "x.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(DataFormatError, match="not a readable text candle file"):
        read_candle_file(binary)
    with pytest.raises(DataFormatError, match="empty"):
        read_candle_file(_write(tmp_path, "empty.csv", "\n\n"))
    with pytest.raises(DataFormatError, match="no candle rows"):
        read_candle_file(_write(tmp_path, "h.csv", "timestamp,open,high,low,close,volume\n"))
    with pytest.raises(DataNotFoundError, match="no such candle file"):
        read_candle_file(tmp_path / "absent.csv")


def test_read_candle_file_malformed_value_names_line(tmp_path: Path) -> None:
    path = _tamper(tmp_path, 10, 6, "18x03.1")
    with pytest.raises(DataFormatError, match=r"line 10: close is '18x03.1', not a number"):
        read_candle_file(path)


def test_read_candle_file_malformed_timestamp_names_line(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match=r"line 7: timestamp 'yesterday'"):
        read_candle_file(_tamper(tmp_path, 7, 0, "yesterday"))
    with pytest.raises(DataFormatError, match=r"line 3: timestamp '86400'.*not a plausible"):
        read_candle_file(_tamper(tmp_path, 3, 0, "86400"))


def test_read_candle_file_blank_lines_keep_line_numbers(tmp_path: Path) -> None:
    text = (
        "timestamp,open,high,low,close,volume\n\n"
        "1609459200000,1,2,1,2,3\n\n"
        "1609462800000,1,2,x,2,3\n"
    )
    with pytest.raises(DataFormatError, match="line 5: low is 'x'"):
        read_candle_file(_write(tmp_path, "b.csv", text))


def test_read_candle_file_missing_value_becomes_nan_not_error(tmp_path: Path) -> None:
    raw = read_candle_file(_tamper(tmp_path, 10, 6, "NaN"))
    assert raw.frame["close"].isna().sum() == 1  # the quality layer reports and drops it


def test_read_candle_file_freqtrade_bad_rows(tmp_path: Path) -> None:
    rows = [[1609459200000, 1, 2, 1, 2, 3], [1609462800000, 1, 2, 3]]
    with pytest.raises(DataFormatError, match=r"candle #1 \(0-based\)"):
        read_candle_file(_write(tmp_path, "a.json", json.dumps(rows)))
    with pytest.raises(DataFormatError, match="invalid JSON at line 1"):
        read_candle_file(_write(tmp_path, "b.json", "[[1609459200000, 1, 2"))
    with pytest.raises(DataFormatError, match="non-empty JSON list"):
        read_candle_file(_write(tmp_path, "c.json", "[]"))


def test_epoch_to_ms_judges_each_value_unit() -> None:
    values = np.array([1609459200.0, 1609459200000.0, 1609459200000000.0, 1.6094592e18])
    epoch_ms, counts = epoch_to_ms(values)
    assert epoch_ms.tolist() == [1609459200000] * 4
    assert counts == {"s": 1, "ms": 1, "us": 1, "ns": 1}


def test_infer_timeframe_most_common_supported_step() -> None:
    hourly = pd.date_range("2021-01-01", periods=10, freq="1h", tz="UTC")
    assert infer_timeframe(hourly.delete([3, 4])) == "1h"
    assert infer_timeframe(pd.date_range("2021-01-01", periods=5, freq="2h", tz="UTC")) is None
    assert infer_timeframe(hourly[:1]) is None


def test_read_candle_file_truncated_line_names_line(tmp_path: Path) -> None:
    text = OVERLAP.read_text(encoding="utf-8").rstrip("\n")
    cut = _write(tmp_path, "cut.csv", text[: text.rindex(",BTC/USDT,") + 20])
    with pytest.raises(DataFormatError, match=r"line 267 has 5 fields, the header has 10"):
        read_candle_file(cut)


def test_read_candle_file_freqtrade_nulls_and_extra_columns(tmp_path: Path) -> None:
    rows = [[1609459200000, 1, 2, 1, 2, 3, 99], [1609462800000, 2, None, 1, 2, 3]]
    frame = read_candle_file(_write(tmp_path, "n.json", json.dumps(rows))).frame
    assert frame["volume"].tolist() == [3.0, 3.0]
    assert np.isnan(frame["high"].iloc[1])  # reported and dropped by the quality layer


def test_read_candle_file_headed_kline_csv_is_plain(tmp_path: Path) -> None:
    text = (
        "open_time,open,high,low,close,volume,close_time\n1609459200000,1,2,1,2,3,1609462799999\n"
    )
    raw = read_candle_file(_write(tmp_path, "k.csv", text))
    assert raw.format_name == "plain_csv"
    assert raw.frame.index[0] == pd.Timestamp("2021-01-01", tz="UTC")
