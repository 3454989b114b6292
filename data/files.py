"""Read candle files (CryptoDataDownload, Binance klines, freqtrade JSON, plain OHLCV; .gz too)."""

from __future__ import annotations

import gzip
import io
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from core.errors import DataFormatError, DataNotFoundError
from core.timeframes import timeframe_to_ms
from core.types import SUPPORTED_TIMEFRAMES
from data.schema import OHLCV_COLUMNS, epoch_ms_to_index, index_to_epoch_ms

logger = logging.getLogger(__name__)

SUPPORTED_FORMATS: dict[str, str] = {
    "cryptodatadownload": "CryptoDataDownload CSV: [URL line,] unix,date,symbol,open,high,low,"
    "close,Volume <BASE>,Volume <QUOTE>[,tradecount]",
    "binance_klines": "Binance kline CSV without header: open_time(ms|us),open,high,low,close,"
    "volume,...",
    "freqtrade_json": "freqtrade JSON: [[timestamp_ms, open, high, low, close, volume], ...]",
    "plain_csv": "CSV with a header: timestamp|date|datetime|time|open_time column (epoch "
    "s/ms/us or ISO 8601) and open,high,low,close,volume",
}
TIME_COLUMNS = ("timestamp", "datetime", "date", "time", "open_time", "unix", "ts")
MISSING_TOKENS = frozenset({"", "nan", "null", "none", "na", "n/a"})
PRICE_COLUMNS = ("open", "high", "low", "close")
_QUOTES = ("USDT", "BUSD", "USDC", "TUSD", "FDUSD", "USD", "EUR", "BTC", "ETH", "BNB")
_AMPM_RE = r"^\d{4}-\d{2}-\d{2} \d{2}-[AaPp][Mm]$"
_URL_RE = re.compile(r"^\s*(https?://|www\.)|cryptodatadownload", re.IGNORECASE)
_EARLIEST_MS = 946_684_800_000  # 2000-01-01: anything earlier is not a crypto candle
_LATEST_MS = 4_102_444_800_000  # 2100-01-01
_HEAD_LINES = 8
# A Unix epoch in seconds stays below 1e11 until the year 5138; ms below 1e14, us below 1e17.
_UNIT_LIMITS: tuple[tuple[str, float, float], ...] = (
    ("s", 1e11, 1000.0),
    ("ms", 1e14, 1.0),
    ("us", 1e17, 1e-3),
    ("ns", np.inf, 1e-6),
)


@dataclass(frozen=True, slots=True)
class RawCandles:
    """Candles as read from a file, before any quality policy.

    `frame` has a UTC `timestamp` index (unsorted, may repeat), float64 OHLCV columns and an
    int `precision` column (decimal places of the price text) used to pick among duplicates.
    """

    frame: pd.DataFrame
    format_name: str
    rows_read: int
    source: Path
    notes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Layout:
    format_name: str
    header_line: int | None  # 0-based physical line of the header; None = headerless
    first_data_line: int  # 0-based physical line of the first data row
    delimiter: str
    notes: tuple[str, ...]


def read_candle_file(path: str | Path) -> RawCandles:
    """Detect the layout of a candle file from its content and read it.

    Raises:
        DataNotFoundError: the file does not exist.
        DataFormatError: the layout is unknown (the message lists what was seen and the supported
            layouts) or a value is malformed (the message names the line).
    """
    source = Path(path)
    if not source.is_file():
        raise DataNotFoundError(f"{source}: no such candle file; check the path")
    compressed = _is_gzip(source)
    head = _read_head(source, compressed=compressed)
    first = next((line for line in head if line.strip()), None)
    if first is None:
        raise DataFormatError(f"{source}: the file is empty; {_supported()}")
    if first.lstrip().startswith(("[", "{")):
        frame, rows_read, notes = _read_freqtrade_json(source, compressed=compressed)
        format_name = "freqtrade_json"
    else:
        layout = _sniff_csv(head, source)
        frame, rows_read, notes = _read_csv(source, layout, compressed=compressed)
        format_name = layout.format_name
    logger.info(
        "Read %d candle rows from %s (%s)%s",
        rows_read,
        source,
        format_name,
        "".join(f"; {note}" for note in notes),
    )
    return RawCandles(frame, format_name, rows_read, source, notes)


def infer_timeframe(index: pd.DatetimeIndex) -> str | None:
    """The supported timeframe matching the most common step between candles, if any.

    >>> infer_timeframe(pd.date_range("2021-01-01", periods=5, freq="4h", tz="UTC"))
    '4h'
    """
    epoch_ms = np.unique(index_to_epoch_ms(index))
    if len(epoch_ms) < 2:
        return None
    steps, counts = np.unique(np.diff(epoch_ms), return_counts=True)
    step = int(steps[np.argmax(counts)])
    by_step = {timeframe_to_ms(tf): tf for tf in SUPPORTED_TIMEFRAMES}
    return by_step.get(step)


def epoch_to_ms(values: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """Epoch numbers in s, ms, us or ns (mixed, judged per value by magnitude) to int64 ms.

    Non-finite or absurdly large values become 0 (1970), which callers reject.

    >>> epoch_to_ms(np.array([1502942400.0, 1596322800000.0]))[0].tolist()
    [1502942400000, 1596322800000]
    """
    values = np.asarray(values, dtype="float64")
    magnitude = np.abs(values)
    out = np.full(len(values), np.nan)
    counts: dict[str, int] = {}
    lower = -np.inf
    for unit, upper, to_ms in _UNIT_LIMITS:
        mask = (magnitude >= lower) & (magnitude < upper)
        out[mask] = values[mask] * to_ms
        if mask.any():
            counts[unit] = int(mask.sum())
        lower = upper
    out = np.where(np.isfinite(out) & (np.abs(out) < 9e15), out, 0.0)
    return np.round(out).astype("int64"), counts


# ------------------------------------------------------------------ sniffing
def _is_gzip(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def _open_text(path: Path, *, compressed: bool) -> IO[str]:
    if compressed:
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return path.open(encoding="utf-8-sig", newline="")


def _read_head(path: Path, *, compressed: bool) -> list[str]:
    try:
        with _open_text(path, compressed=compressed) as handle:
            return [
                line.rstrip("\r\n") for _, line in zip(range(_HEAD_LINES), handle, strict=False)
            ]
    except (UnicodeDecodeError, OSError, EOFError) as e:
        raise DataFormatError(
            f"{path}: not a readable text candle file ({e}); {_supported()}"
        ) from e


def _sniff_csv(head: list[str], path: Path) -> _Layout:
    """Find the header line (skipping a URL line) and recognise the CSV layout."""
    notes: list[str] = []
    numbered = [(i, line) for i, line in enumerate(head) if line.strip()]
    line_no, line = numbered[0]
    if _URL_RE.search(line) and len(numbered) > 1 and not _has_ohlc(_split(line)):
        notes.append(f"skipped URL line {line.strip()!r}")
        line_no, line = numbered[1]
    delimiter = max((",", ";", "\t"), key=line.count)
    fields = _split(line, delimiter)
    if len(fields) >= 6 and all(_is_number(field) for field in fields):
        return _Layout("binance_klines", None, line_no, delimiter, tuple(notes))
    has_time = bool({*TIME_COLUMNS, "unix timestamp"} & set(fields))
    has_volume = any(field == "volume" or field.startswith("volume ") for field in fields)
    if _has_ohlc(fields) and has_time and has_volume:
        is_cdd = "symbol" in fields and not {"volume", "timestamp"} & set(fields)
        name = "cryptodatadownload" if is_cdd else "plain_csv"
        return _Layout(name, line_no, line_no + 1, delimiter, tuple(notes))
    raise DataFormatError(
        f"{path}: unrecognised candle file layout; first line {head[0][:120]!r}, "
        f"columns seen {list(fields)[:12]}; {_supported()}"
    )


def _split(line: str, delimiter: str = ",") -> tuple[str, ...]:
    return tuple(field.strip().strip("\"'").strip().lower() for field in line.split(delimiter))


def _has_ohlc(fields: tuple[str, ...]) -> bool:
    return all(column in fields for column in PRICE_COLUMNS)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _supported() -> str:
    return "supported layouts: " + "; ".join(SUPPORTED_FORMATS.values())


# ------------------------------------------------------------------ CSV layouts
def _read_csv(
    path: Path, layout: _Layout, *, compressed: bool
) -> tuple[pd.DataFrame, int, tuple[str, ...]]:
    table = _read_table(path, layout, compressed=compressed)
    # Physical 1-based line number of every data row, for error messages.
    lines = table.index.to_numpy(dtype="int64") + layout.first_data_line + 1
    table = table.reset_index(drop=True)
    notes = list(layout.notes)
    if layout.format_name == "binance_klines":
        times, volume = table.iloc[:, 0], table.iloc[:, 5]
        prices = table.iloc[:, 1:5].set_axis(list(PRICE_COLUMNS), axis=1)
    else:
        times = _time_column(table, layout.format_name)
        volume = table[_volume_column(table, notes)]
        prices = table[list(PRICE_COLUMNS)]
    epoch_ms = _parse_times(times, lines, path, notes)
    if times.name in ("unix", "unix timestamp") and "date" in table.columns:
        _check_cdd_dates(table["date"], epoch_ms, lines, path, notes)
    columns = {name: _to_float(prices[name], name, lines, path) for name in PRICE_COLUMNS}
    columns["volume"] = _to_float(volume, "volume", lines, path)
    decimals = [_decimals(text) for text in (*(prices[name] for name in PRICE_COLUMNS), volume)]
    frame = pd.DataFrame(columns, index=epoch_ms_to_index(epoch_ms))
    frame["precision"] = np.max(np.vstack(decimals), axis=0).astype("int64")
    return frame, len(frame), tuple(notes)


def _read_table(path: Path, layout: _Layout, *, compressed: bool) -> pd.DataFrame:
    """All cells as text, blank lines removed; the index keeps each row's position in the file."""
    try:
        with _open_text(path, compressed=compressed) as handle:
            text = handle.read()
        _check_field_counts(text.split("\n"), layout, path)
        table = pd.read_csv(
            io.StringIO(text),
            sep=layout.delimiter,
            skiprows=layout.first_data_line if layout.header_line is None else layout.header_line,
            header=None if layout.header_line is None else 0,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,
        )
    except (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError, ValueError) as e:
        raise DataFormatError(f"{path}: cannot parse as {layout.format_name}: {e}") from e
    if layout.header_line is not None:
        table.columns = [_split(str(column))[0] for column in table.columns]
    elif table.shape[1] < 6:
        raise DataFormatError(f"{path}: Binance klines need >= 6 columns, found {table.shape[1]}")
    blank = (table.fillna("").apply(lambda column: column.str.strip()) == "").all(axis=1)
    table = table[~blank.to_numpy()]
    if table.empty:
        raise DataFormatError(f"{path}: no candle rows after the header")
    return table


def _check_field_counts(physical: list[str], layout: _Layout, path: Path) -> None:
    """Every data line has as many fields as the header (or the first line): no truncation."""
    body = pd.Series(physical[layout.first_data_line :], dtype="str").str.rstrip("\r")
    counts = body.str.count(re.escape(layout.delimiter)).to_numpy() + 1
    filled = (body.str.strip() != "").to_numpy()
    if layout.header_line is None:
        expected, like = int(counts[np.argmax(filled)]), "the first line"
    else:
        expected, like = physical[layout.header_line].count(layout.delimiter) + 1, "the header"
    quoted = body.str.contains('"', regex=False).to_numpy()  # quoted fields may hold delimiters
    bad = np.flatnonzero(filled & ~quoted & (counts != expected))
    if len(bad):
        line = layout.first_data_line + int(bad[0]) + 1
        raise DataFormatError(
            f"{path}: line {line} has {counts[bad[0]]} fields, {like} has {expected} "
            "(truncated or malformed line); fix or delete that line"
        )


def _time_column(table: pd.DataFrame, format_name: str) -> pd.Series:
    preferred = ("unix", "unix timestamp") if format_name == "cryptodatadownload" else TIME_COLUMNS
    name = next(column for column in (*preferred, *TIME_COLUMNS) if column in table.columns)
    return table[name]


def _volume_column(table: pd.DataFrame, notes: list[str]) -> str:
    """`volume`, or CryptoDataDownload's `Volume <BASE>` (not the quote volume)."""
    if "volume" in table.columns:
        return "volume"
    candidates = [column for column in table.columns if column.startswith("volume ")]
    base = _base_currency(table)
    if base and f"volume {base}" in candidates:
        return f"volume {base}"
    quote_like = {f"volume {quote.lower()}" for quote in _QUOTES}
    chosen = next(
        (c for c in candidates if c not in quote_like), candidates[0] if candidates else None
    )
    if chosen is None:
        raise DataFormatError(f"no volume column among {list(table.columns)}")
    notes.append(f"volume taken from {chosen!r}")
    return chosen


def _base_currency(table: pd.DataFrame) -> str | None:
    if "symbol" not in table.columns:
        return None
    symbol = str(table["symbol"].iloc[0]).strip().upper()
    if "/" in symbol:
        return symbol.split("/")[0].lower()
    quote = next((q for q in _QUOTES if symbol.endswith(q) and len(symbol) > len(q)), None)
    return symbol[: -len(quote)].lower() if quote else None


def _parse_times(texts: pd.Series, lines: np.ndarray, path: Path, notes: list[str]) -> np.ndarray:
    """Epoch numbers (s/ms/us, mixed) or date strings to int64 epoch ms."""
    stripped = texts.fillna("").str.strip()
    if (stripped == "").any():
        first = int(np.flatnonzero((stripped == "").to_numpy())[0])
        raise DataFormatError(f"{path}: line {lines[first]}: the timestamp is empty")
    numbers = pd.to_numeric(stripped, errors="coerce").to_numpy(dtype="float64")
    not_number = np.isnan(numbers)
    if not_number.mean() > 0.5:
        epoch_ms = _parse_dates(stripped, lines, path)
        notes.append(f"timestamps: {len(epoch_ms):,} date strings")
    elif not_number.any():
        first = int(np.flatnonzero(not_number)[0])
        raise DataFormatError(
            f"{path}: line {lines[first]}: timestamp {texts.iloc[first]!r} is not a number "
            "like the other rows' Unix epochs"
        )
    else:
        epoch_ms, counts = epoch_to_ms(numbers)
        notes.append("timestamps: " + ", ".join(f"{n:,} in {u}" for u, n in counts.items()))
    _check_epochs(epoch_ms, path, lambda i: f"line {lines[i]}: timestamp {texts.iloc[i]!r}")
    return epoch_ms


def _check_epochs(epoch_ms: np.ndarray, path: Path, describe: Callable[[int], str]) -> None:
    """Reject times outside 2000..2100 (not a crypto candle: wrong unit, NaN or garbage)."""
    bad = np.flatnonzero((epoch_ms < _EARLIEST_MS) | (epoch_ms >= _LATEST_MS))
    if len(bad):
        raise DataFormatError(
            f"{path}: {describe(int(bad[0]))} is not a plausible candle time (outside 2000-2100); "
            "expected a Unix epoch in s/ms/us or an ISO date"
        )


def _parse_dates(texts: pd.Series, lines: np.ndarray, path: Path) -> np.ndarray:
    """ISO 8601 dates (naive = UTC) and CryptoDataDownload's `2017-08-17 08-AM` form."""
    ampm = texts.str.match(_AMPM_RE).to_numpy(dtype=bool)
    parsed = pd.Series(pd.NaT, index=texts.index, dtype="datetime64[ms, UTC]")
    if ampm.any():
        parsed[ampm] = pd.to_datetime(texts[ampm], format="%Y-%m-%d %I-%p", utc=True)
    if (~ampm).any():
        iso = pd.to_datetime(texts[~ampm], format="ISO8601", utc=True, errors="coerce")
        parsed[~ampm] = iso.dt.as_unit("ms")
    bad = parsed.isna().to_numpy()
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataFormatError(
            f"{path}: line {lines[first]}: timestamp {texts.iloc[first]!r} is neither a Unix "
            "epoch nor a date like 2021-06-10 00:00:00 / 2021-06-10T00:00:00Z / 2017-08-17 08-AM"
        )
    return index_to_epoch_ms(pd.DatetimeIndex(parsed))


def _check_cdd_dates(
    dates: pd.Series, epoch_ms: np.ndarray, lines: np.ndarray, path: Path, notes: list[str]
) -> None:
    """Cross-check CryptoDataDownload's `date` text against `unix` (which wins)."""
    from_dates = _parse_dates(dates.fillna("").str.strip(), lines, path)
    differ = np.flatnonzero(from_dates != epoch_ms)
    if len(differ):
        at = differ[0]
        note = (
            f"date column disagrees with unix in {len(differ):,} rows (first line {lines[at]}: "
            f"unix {pd.Timestamp(epoch_ms[at], unit='ms'):%Y-%m-%d %H:%M}Z, "
            f"date {dates.iloc[at]!r}); unix used"
        )
        notes.append(note)
        logger.warning("%s: %s", path, note)


def _to_float(texts: pd.Series, column: str, lines: np.ndarray, path: Path) -> np.ndarray:
    """Numbers from text; missing tokens become NaN (reported by quality), garbage raises."""
    stripped = texts.fillna("").str.strip()
    values = pd.to_numeric(stripped, errors="coerce").to_numpy(dtype="float64")
    missing = stripped.str.lower().isin(MISSING_TOKENS).to_numpy()
    garbage = np.isnan(values) & ~missing
    if garbage.any():
        first = int(np.flatnonzero(garbage)[0])
        raise DataFormatError(
            f"{path}: line {lines[first]}: {column} is {texts.iloc[first]!r}, not a number; "
            "fix or delete that line"
        )
    return values


def _decimals(texts: pd.Series) -> np.ndarray:
    """Decimal places written in each number's text (`11783.31000000` -> 8, `12000` -> 0)."""
    stripped = texts.fillna("").str.strip()
    dot = stripped.str.find(".").to_numpy(dtype="int64")
    length = stripped.str.len().to_numpy(dtype="int64")
    return np.where(dot >= 0, length - dot - 1, 0)


# ------------------------------------------------------------------ freqtrade JSON
def _read_freqtrade_json(
    path: Path, *, compressed: bool
) -> tuple[pd.DataFrame, int, tuple[str, ...]]:
    try:
        with _open_text(path, compressed=compressed) as handle:
            data: Any = json.load(handle)
    except json.JSONDecodeError as e:
        raise DataFormatError(
            f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}"
        ) from e
    if not isinstance(data, list) or not data:
        raise DataFormatError(
            f"{path}: expected a non-empty JSON list of candles; "
            f"{SUPPORTED_FORMATS['freqtrade_json']}"
        )
    array = _json_array(path, data)
    epoch_ms, counts = epoch_to_ms(array[:, 0])
    _check_epochs(epoch_ms, path, lambda i: f"candle #{i} (0-based) timestamp")
    frame = pd.DataFrame(array[:, 1:6], columns=list(OHLCV_COLUMNS))
    frame.index = epoch_ms_to_index(epoch_ms)
    frame["precision"] = np.zeros(len(frame), dtype="int64")
    notes = ("timestamps: " + ", ".join(f"{n:,} in {u}" for u, n in counts.items()),)
    return frame, len(frame), notes


def _json_array(path: Path, data: list[Any]) -> np.ndarray:
    """An (n, 6) float array; null -> NaN (reported by quality), anything else raises."""
    try:
        array = np.asarray(data, dtype="float64")
        if array.ndim == 2 and array.shape[1] >= 6:
            return array[:, :6]
    except (ValueError, TypeError):
        pass  # ragged or non-numeric: find and name the first bad row below
    for number, row in enumerate(data):
        ok = isinstance(row, list) and len(row) >= 6
        if not (ok and all(v is None or isinstance(v, int | float) for v in row[:6])):
            raise DataFormatError(
                f"{path}: candle #{number} (0-based) is {str(row)[:80]}; expected "
                "[timestamp_ms, open, high, low, close, volume] with numbers"
            )
    return np.asarray([row[:6] for row in data], dtype="float64")
