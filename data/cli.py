"""The `cryptopred data` sub-commands: fetch, import and info."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from core.errors import ExchangeUnavailableError
from core.settings import require_settings
from core.timeframes import ensure_utc, timeframe_to_ms, to_epoch_ms
from data.cache import list_cached
from data.candles import (
    PreparedCandles,
    describe_cached,
    download_candles,
    import_candles,
    open_exchange,
)
from data.quality import report_table

logger = logging.getLogger(__name__)

app = typer.Typer(help="Get candles in (download or import), see what was wrong with them.")

SymbolOpt = Annotated[str | None, typer.Option("--symbol", "-s", help="ccxt symbol, e.g. BTC/USDT")]
TimeframeOpt = Annotated[
    str | None, typer.Option("--timeframe", "-t", help="1m 5m 15m 30m 1h 4h 1d")
]


def print_prepared(console: Console, prepared: PreparedCandles) -> None:
    """Print the quality report and where the candles went."""
    console.print(report_table(prepared.report))
    console.print(f"Cached {len(prepared.frame):,} candles in {prepared.cache_file}")


@app.command("fetch")
def fetch_command(
    ctx: typer.Context,
    symbol: SymbolOpt = None,
    timeframe: TimeframeOpt = None,
    since: Annotated[
        datetime | None, typer.Option(help="First candle (UTC), default data.since")
    ] = None,
    until: Annotated[datetime | None, typer.Option(help="Last candle (UTC), default now")] = None,
) -> None:
    """Download candles through ccxt into the cache (incremental) and print the quality report."""
    settings = require_settings(ctx.obj)
    symbol = symbol or settings.data.symbol
    timeframe = timeframe or settings.data.timeframe
    start = ensure_utc(since) if since else settings.data.since
    try:
        source = open_exchange(settings.exchange, secrets=settings.secrets)
    except ExchangeUnavailableError as e:
        cached = describe_cached(
            settings.data, exchange_id=settings.exchange.id, symbol=symbol, timeframe=timeframe
        )
        if cached is None:
            raise
        raise ExchangeUnavailableError(
            f"{e}; {cached}: `backtest` and `train` use them with --offline"
        ) from e
    console = Console()
    expected = _expected_candles(start, ensure_utc(until) if until else None, timeframe)
    with _progress(console) as progress:
        task = progress.add_task(f"{symbol} {timeframe}", total=expected)
        prepared = download_candles(
            source,
            symbol=symbol,
            timeframe=timeframe,
            since=start,
            until=ensure_utc(until) if until else None,
            cfg=settings.data,
            progress=lambda n: progress.update(task, advance=n),
        )
    print_prepared(console, prepared)


@app.command("import")
def import_command(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Candle file (CSV/JSON, optionally .gz)")],
    symbol: SymbolOpt = None,
    timeframe: TimeframeOpt = None,
    exchange: Annotated[str | None, typer.Option(help="Exchange id for the cache key")] = None,
) -> None:
    """Import a candle file into the cache and print its quality report."""
    settings = require_settings(ctx.obj)
    prepared = import_candles(
        file,
        symbol=symbol or settings.data.symbol,
        timeframe=timeframe,
        exchange_id=exchange or settings.exchange.id,
        cfg=settings.data,
    )
    print_prepared(Console(), prepared)


@app.command("info")
def info_command(ctx: typer.Context) -> None:
    """List the cached datasets: rows, range and gaps."""
    settings = require_settings(ctx.obj)
    datasets = list_cached(settings.data.cache_dir)
    console = Console()
    if not datasets:
        console.print(
            f"No cached candles in {settings.data.cache_dir}; run `cryptopred data fetch`"
        )
        return
    table = Table(title=f"Cached candles in {settings.data.cache_dir}")
    for column in ("exchange", "symbol", "timeframe", "rows", "first", "last", "gaps", "missing"):
        table.add_column(
            column, justify="right" if column in {"rows", "gaps", "missing"} else "left"
        )
    for item in datasets:
        table.add_row(
            item.exchange_id,
            item.symbol,
            item.timeframe,
            f"{item.rows:,}",
            f"{item.first:%Y-%m-%d %H:%M}",
            f"{item.last:%Y-%m-%d %H:%M}",
            str(item.gaps),
            str(item.missing_bars),
        )
    console.print(table)


def _expected_candles(since: datetime, until: datetime | None, timeframe: str) -> int | None:
    if until is None:
        until = datetime.now(since.tzinfo)
    return max(1, (to_epoch_ms(until) - to_epoch_ms(since)) // timeframe_to_ms(timeframe))


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
