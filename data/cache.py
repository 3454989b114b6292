"""The candle cache: one Parquet file per (exchange, symbol, timeframe), updated incrementally."""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import ConfigError, DataError, DataValidationError
from core.timeframes import ensure_utc, timeframe_to_timedelta
from core.types import SUPPORTED_TIMEFRAMES
from data.exchange import CandleSource
from data.quality import find_gaps
from data.schema import empty_ohlcv, validate_ohlcv

logger = logging.getLogger(__name__)

CACHE_SUFFIX = ".parquet"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True, slots=True)
class CachedDataset:
    """One cache file: what it holds and how complete it is."""

    exchange_id: str
    symbol: str
    timeframe: str
    path: Path
    rows: int
    first: datetime | None
    last: datetime | None
    gaps: int
    missing_bars: int


def symbol_slug(symbol: str) -> str:
    """The file-name form of a ccxt symbol.

    >>> symbol_slug("BTC/USDT"), symbol_slug("BTC/USDT:USDT")
    ('BTC_USDT', 'BTC_USDT--USDT')
    """
    return symbol.replace(":", "--").replace("/", "_")


def symbol_from_slug(slug: str) -> str:
    """The ccxt symbol of a file-name slug (inverse of `symbol_slug` for ccxt symbols).

    >>> symbol_from_slug("BTC_USDT--USDT")
    'BTC/USDT:USDT'
    """
    return slug.replace("--", ":").replace("_", "/", 1)


def cache_path(cache_dir: Path, exchange_id: str, symbol: str, timeframe: str) -> Path:
    """The cache file of one dataset, e.g. var/cache/binance/BTC_USDT-1h.parquet.

    >>> cache_path(Path("var/cache"), "binance", "BTC/USDT", "1h").as_posix()
    'var/cache/binance/BTC_USDT-1h.parquet'
    """
    slug = symbol_slug(symbol)
    for label, value in (("exchange id", exchange_id), ("symbol", slug), ("timeframe", timeframe)):
        if not _SAFE_NAME.match(value):
            raise ConfigError(
                f"{label} {value!r} cannot name a cache file; use letters, digits, '/', '-', '_'"
            )
    return Path(cache_dir) / exchange_id / f"{slug}-{timeframe}{CACHE_SUFFIX}"


def parse_cache_path(path: Path) -> tuple[str, str, str] | None:
    """(exchange_id, symbol, timeframe) of a cache file name, or None if it is not one.

    >>> parse_cache_path(Path("var/cache/binance/BTC_USDT-1h.parquet"))
    ('binance', 'BTC/USDT', '1h')
    """
    name = path.name.removesuffix(CACHE_SUFFIX)
    slug, _, timeframe = name.rpartition("-")
    if not path.name.endswith(CACHE_SUFFIX) or not slug or timeframe not in SUPPORTED_TIMEFRAMES:
        return None
    return path.parent.name, symbol_from_slug(slug), timeframe


def read_cache(path: Path) -> pd.DataFrame | None:
    """The cached candles, or None when the file does not exist.

    Raises:
        DataError: the file is unreadable or breaks the candle contract (delete it and re-fetch).
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        frame = pq.read_table(path).to_pandas()
    except (pa.ArrowException, OSError, ValueError, KeyError) as e:
        raise DataError(
            f"{path}: corrupt candle cache ({e}); delete the file and fetch or import again"
        ) from e
    parsed = parse_cache_path(path)
    try:
        return validate_ohlcv(frame, timeframe=parsed[2] if parsed else None)
    except DataValidationError as e:
        raise DataError(
            f"{path}: invalid candle cache ({e}); delete the file and fetch or import again"
        ) from e


def write_cache(frame: pd.DataFrame, path: Path) -> None:
    """Validate and write candles atomically: a temp file in the same directory, then rename.

    A crash at any point leaves either the old file or the new one, never a half-written file.
    """
    path = Path(path)
    parsed = parse_cache_path(path)
    frame = validate_ohlcv(frame, timeframe=parsed[2] if parsed else None)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
        )
    except OSError as e:  # read-only or missing folder, a file in the way, no inodes left
        raise DataError(
            f"{path.parent}: cannot write the candle cache there ({e.strerror or e}); "
            "make data.cache_dir a writable folder (the existing cache is unchanged)"
        ) from e
    temp = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as sink:
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=True), sink)
            sink.flush()
            os.fsync(sink.fileno())
        temp.replace(path)  # atomic rename (os.replace) within one directory
    except OSError as e:
        temp.unlink(missing_ok=True)
        raise DataError(f"{path}: cannot write the candle cache ({e}); check disk space") from e
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    logger.debug("Wrote %d candles to %s", len(frame), path)


def merge_candles(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """Union of two candle frames, ascending; on a repeated open time the `new` row wins."""
    if new.empty:
        return validate_ohlcv(old)
    if old.empty:
        return validate_ohlcv(new)
    kept = old[~old.index.isin(new.index)]
    return validate_ohlcv(pd.concat([kept, new]).sort_index(kind="stable"))


def update_cache(
    source: CandleSource,
    *,
    cache_dir: Path,
    symbol: str,
    timeframe: str,
    since: datetime,
    until: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Bring the cache up to date and return its candles in [since, until].

    Only candles from the last cached one on are fetched (plus those before the first cached
    one when `since` is earlier), so the file stays contiguous. The last cached candle is fetched
    again because an imported file often ends with a candle that was still trading when it was
    exported; the exchange's final values replace it. Nothing is written if a fetch fails.
    """
    path = cache_path(cache_dir, source.exchange_id, symbol, timeframe)
    since = ensure_utc(since)
    until = None if until is None else ensure_utc(until)
    cached = read_cache(path)
    fetched = []
    if cached is None or cached.empty:
        cached = empty_ohlcv()
        fetched.append(_fetch(source, symbol, timeframe, since, until, progress))
    else:
        step = timeframe_to_timedelta(timeframe)
        first, last = cached.index[0].to_pydatetime(), cached.index[-1].to_pydatetime()
        if since < first:
            head_until = first - step if until is None else min(first - step, until)
            fetched.append(_fetch(source, symbol, timeframe, since, head_until, progress))
        if until is None or last <= until:
            fetched.append(_fetch(source, symbol, timeframe, last, until, progress))
    merged = cached
    for frame in fetched:
        merged = merge_candles(merged, frame)
    if not merged.equals(cached):
        write_cache(merged, path)
    logger.info(
        "Cache %s: %d new candles, %d in total", path, len(merged) - len(cached), len(merged)
    )
    window = merged.index >= pd.Timestamp(since)
    if until is not None:
        window &= merged.index <= pd.Timestamp(until)
    return merged[window]


def _fetch(
    source: CandleSource,
    symbol: str,
    timeframe: str,
    since: datetime,
    until: datetime | None,
    progress: Callable[[int], None] | None,
) -> pd.DataFrame:
    return source.fetch_candles(symbol, timeframe, since=since, until=until, progress=progress)


def list_cached(cache_dir: Path) -> list[CachedDataset]:
    """Every dataset in the cache directory, sorted by exchange, symbol and timeframe.

    Raises:
        DataError: a cache file is corrupt (the message says which one to delete).
    """
    datasets = []
    for path in sorted(Path(cache_dir).glob(f"*/*{CACHE_SUFFIX}")):
        parsed = parse_cache_path(path)
        if parsed is None:
            logger.warning("Ignoring %s: not a cache file name (SYMBOL-TIMEFRAME.parquet)", path)
            continue
        exchange_id, symbol, timeframe = parsed
        frame = read_cache(path)
        index = pd.DatetimeIndex([] if frame is None else frame.index)
        gaps = find_gaps(index, timeframe)
        datasets.append(
            CachedDataset(
                exchange_id=exchange_id,
                symbol=symbol,
                timeframe=timeframe,
                path=path,
                rows=len(index),
                first=index[0].to_pydatetime() if len(index) else None,
                last=index[-1].to_pydatetime() if len(index) else None,
                gaps=len(gaps),
                missing_bars=sum(gap.missing_bars for gap in gaps),
            )
        )
    return datasets
