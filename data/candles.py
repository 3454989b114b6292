"""Getting the configured candles: import a file or download via ccxt; clean, report, cache."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from core.errors import (
    ConfigError,
    DataError,
    DataNotFoundError,
    ExchangeError,
    ExchangeUnavailableError,
)
from core.settings import DataSettings, ExchangeSettings, Secrets, Settings
from data.cache import cache_path, merge_candles, read_cache, update_cache, write_cache
from data.exchange import CandleSource, CcxtCandleSource
from data.files import infer_timeframe, read_candle_file
from data.quality import DataQualityReport, clean_candles, save_report
from data.samples import CandleSample, find_sample, read_sample

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PreparedCandles:
    """Clean candles plus the quality report that describes how they were obtained."""

    frame: pd.DataFrame
    report: DataQualityReport
    cache_file: Path
    symbol: str
    timeframe: str
    origin: str  # "exchange:<id>", "file:<path>", "cache:<path>" or "sample:<file name>"

    @property
    def is_sample(self) -> bool:
        """True when these are the bundled sample's candles, not the user's."""
        return self.origin.startswith("sample:")

    def describe(self) -> str:
        """Where the candles came from, in words: the data-source line of the reports."""
        kind, _, where = self.origin.partition(":")
        sample = find_sample(self.symbol, self.timeframe) if kind == "sample" else None
        if sample is not None:
            return sample.describe()
        if kind == "exchange":
            return f"{where} through ccxt (cache {self.cache_file})"
        return f"{'candle cache' if kind == 'cache' else kind} {where}"


def report_path_for(cache_file: Path) -> Path:
    """Where the quality report of a cache file lives (next to it).

    >>> report_path_for(Path("var/cache/binance/BTC_USDT-1h.parquet")).name
    'BTC_USDT-1h.quality.json'
    """
    return cache_file.with_name(cache_file.name.removesuffix(".parquet") + ".quality.json")


def resolve_file_timeframe(path: Path, frame: pd.DataFrame, requested: str | None) -> str:
    """The timeframe of a candle file: the requested one, checked against what the file holds."""
    inferred = infer_timeframe(pd.DatetimeIndex(frame.index))
    if requested is None:
        if inferred is None:
            raise DataError(f"{path}: cannot tell the timeframe of these candles; pass --timeframe")
        return inferred
    if inferred is not None and inferred != requested:
        raise DataError(
            f"{path} holds {inferred} candles but timeframe {requested} was requested; "
            f"pass --timeframe {inferred} (or the matching file)"
        )
    return requested


def import_candles(
    path: Path,
    *,
    symbol: str,
    timeframe: str | None,
    exchange_id: str,
    cfg: DataSettings,
) -> PreparedCandles:
    """Read a candle file, clean it with the configured policies, merge it into the cache."""
    raw = read_candle_file(path)
    resolved = resolve_file_timeframe(path, raw.frame, timeframe)
    clean = clean_candles(
        raw.frame,
        timeframe=resolved,
        cfg=cfg.quality,
        rows_read=raw.rows_read,
        symbol=symbol,
        source=str(path),
        format_name=raw.format_name,
        notes=raw.notes,
    )
    target = cache_path(cfg.cache_dir, exchange_id, symbol, resolved)
    existing = read_cache(target)
    merged = clean.frame if existing is None else merge_candles(existing, clean.frame)
    write_cache(merged, target)
    save_report(clean.report, report_path_for(target))
    logger.info("Imported %d candles from %s into %s", len(clean.frame), path, target)
    return PreparedCandles(clean.frame, clean.report, target, symbol, resolved, f"file:{path}")


def download_candles(
    source: CandleSource,
    *,
    symbol: str,
    timeframe: str,
    since: datetime,
    until: datetime | None = None,
    cfg: DataSettings,
    progress: Callable[[int], None] | None = None,
) -> PreparedCandles:
    """Bring the cache up to date through `source`, then report on the cached candles."""
    frame = update_cache(
        source,
        cache_dir=cfg.cache_dir,
        symbol=symbol,
        timeframe=timeframe,
        since=since,
        until=until,
        progress=progress,
    )
    frame = frame.loc[frame.index >= pd.Timestamp(since)]
    if until is not None:
        frame = frame.loc[frame.index <= pd.Timestamp(until)]
    if frame.empty:
        raise DataError(
            f"{source.exchange_id} returned no {symbol} {timeframe} candles since {since}"
        )
    clean = clean_candles(
        frame,
        timeframe=timeframe,
        cfg=cfg.quality,
        symbol=symbol,
        source=f"exchange:{source.exchange_id}",
        format_name="ccxt",
    )
    target = cache_path(cfg.cache_dir, source.exchange_id, symbol, timeframe)
    save_report(clean.report, report_path_for(target))
    return PreparedCandles(
        clean.frame, clean.report, target, symbol, timeframe, f"exchange:{source.exchange_id}"
    )


def open_exchange(cfg: ExchangeSettings, *, secrets: Secrets | None = None) -> CcxtCandleSource:
    """A ccxt source after one quick reachability probe, so an offline machine fails fast."""
    probe = CcxtCandleSource(
        cfg.model_copy(update={"retry": cfg.retry.model_copy(update={"max_attempts": 1})})
    )
    try:
        probe.server_time()
    except ExchangeError as e:
        raise ExchangeUnavailableError(
            f"cannot reach {cfg.id} ({e}); offline? import candles instead: "
            "`make run DATA=path/to/file.csv` or `--data FILE`"
        ) from e
    return CcxtCandleSource(cfg, secrets=secrets)


def load_cached_candles(
    cfg: DataSettings, *, exchange_id: str, symbol: str, timeframe: str
) -> PreparedCandles:
    """The cached candles of one dataset, cleaned with the configured policies; no network.

    Every cached candle is returned (an imported file's whole history included); callers
    restrict the period themselves. Nothing is written.

    Raises:
        DataNotFoundError: nothing is cached for (exchange, symbol, timeframe); the message
            names the `cryptopred data import` command that fills the cache.
    """
    target = cache_path(cfg.cache_dir, exchange_id, symbol, timeframe)
    frame = read_cache(target)
    if frame is None or frame.empty:
        raise DataNotFoundError(
            f"no cached {symbol} {timeframe} candles of {exchange_id} ({target} is missing or "
            f"empty); import them first: `cryptopred data import FILE --symbol {symbol} "
            f"--timeframe {timeframe}` (or `cryptopred data fetch` when online)"
        )
    clean = clean_candles(
        frame,
        timeframe=timeframe,
        cfg=cfg.quality,
        symbol=symbol,
        source=f"cache:{target}",
        format_name="parquet cache",
    )
    logger.info("Read %d cached %s %s candles from %s", len(clean.frame), symbol, timeframe, target)
    return PreparedCandles(clean.frame, clean.report, target, symbol, timeframe, f"cache:{target}")


def load_sample_candles(sample: CandleSample, cfg: DataSettings) -> PreparedCandles:
    """The bundled sample's candles, cleaned with the configured policies; no network, no cache."""
    clean = clean_candles(
        read_sample(sample),
        timeframe=sample.timeframe,
        cfg=cfg.quality,
        symbol=sample.symbol,
        source=f"sample:{sample.file_name}",
        format_name="bundled sample",
    )
    return PreparedCandles(
        clean.frame,
        clean.report,
        sample.path,
        sample.symbol,
        sample.timeframe,
        f"sample:{sample.file_name}",
    )


def describe_cached(
    cfg: DataSettings, *, exchange_id: str, symbol: str, timeframe: str
) -> str | None:
    """'N SYMBOL TF candles (first .. last UTC) are cached in PATH', or None if none are."""
    target = cache_path(cfg.cache_dir, exchange_id, symbol, timeframe)
    cached = read_cache(target)
    if cached is None or cached.empty:
        return None
    first, last = cached.index[0], cached.index[-1]
    return (
        f"{len(cached):,} {symbol} {timeframe} candles ({first:%Y-%m-%d %H:%M} .. "
        f"{last:%Y-%m-%d %H:%M} UTC) are cached in {target}"
    )


def candles_without_exchange(
    cfg: DataSettings,
    error: ExchangeUnavailableError,
    *,
    exchange_id: str,
    symbol: str,
    timeframe: str,
    use_sample: bool,
) -> PreparedCandles:
    """What the exchange could not give: never silently, and never instead of the user's cache.

    Raises:
        ExchangeUnavailableError: the cache holds these candles (the message names it and
            `--offline`), or there is no bundled sample to fall back to (or `use_sample` is off).
    """
    cached = describe_cached(cfg, exchange_id=exchange_id, symbol=symbol, timeframe=timeframe)
    if cached is not None:
        raise ExchangeUnavailableError(
            f"cannot reach {exchange_id} ({error.__cause__ or error}); {cached}: use them with "
            "--offline (`make run OFFLINE=1`), or pass --data FILE"
        ) from error
    sample = find_sample(symbol, timeframe) if use_sample else None
    if sample is None:
        raise error
    logger.warning(
        "Cannot reach %s: running on the %s; connect, or pass --data FILE, for real candles",
        exchange_id,
        sample.describe(),
    )
    return load_sample_candles(sample, cfg)


def prepare_candles(
    settings: Settings,
    *,
    file: Path | None = None,
    symbol: str | None = None,
    timeframe: str | None = None,
    offline: bool = False,
    sample_fallback: bool = False,
    progress: Callable[[int], None] | None = None,
) -> PreparedCandles:
    """The main jobs' candles: import `file` (or `data.file`) if given, else download via ccxt.

    `offline` reads the candle cache instead (`load_cached_candles`), ignoring `data.file`.
    An unreachable exchange is an error naming the cache when it holds the candles; otherwise,
    with `sample_fallback`, the bundled sample of the market is used, with a warning
    (`candles_without_exchange`).
    """
    symbol = symbol or settings.data.symbol
    if offline:
        if file is not None:
            raise ConfigError(f"pass either a candle file ({file}) or --offline, not both")
        return load_cached_candles(
            settings.data,
            exchange_id=settings.exchange.id,
            symbol=symbol,
            timeframe=timeframe or settings.data.timeframe,
        )
    file = file or settings.data.file
    if file is not None:
        return import_candles(
            file,
            symbol=symbol,
            timeframe=timeframe,
            exchange_id=settings.exchange.id,
            cfg=settings.data,
        )
    try:
        source = open_exchange(settings.exchange, secrets=settings.secrets)
    except ExchangeUnavailableError as e:
        return candles_without_exchange(
            settings.data,
            e,
            exchange_id=settings.exchange.id,
            symbol=symbol,
            timeframe=timeframe or settings.data.timeframe,
            use_sample=sample_fallback,
        )
    return download_candles(
        source,
        symbol=symbol,
        timeframe=timeframe or settings.data.timeframe,
        since=settings.data.since,
        cfg=settings.data,
        progress=progress,
    )
