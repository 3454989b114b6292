"""Sweeps: one walk-forward backtest per (symbol, model) pair, dispatched via `ml.compute`."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from backtests.run import (
    BacktestResult,
    ModelBacktest,
    backtest_config_hash,
    make_run_id,
    run_backtest,
)
from core.errors import AppError, ConfigError, DataError
from core.settings import ComputeSettings, Secrets, Settings, StorageSettings
from core.types import ModelName
from data.candles import PreparedCandles, prepare_candles
from ml.compute import map_keyed

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SweepTask:
    """The small plain-data input of one (symbol, model) backtest; picklable for any backend.

    The symbol's candles are not part of it: `run_sweep` sends each symbol's candles once
    (`ml.compute.map_keyed`), however many models read them.
    """

    symbol: str
    timeframe: str
    algorithm: ModelName
    settings: Settings


@dataclass(frozen=True, slots=True)
class SweepResult:
    """Every (symbol, model) backtest of a sweep.

    Attributes:
        runs: one result per symbol (in the order given), holding its models in the order
            given: the same shape as a multi-model `run_backtest`, so the single-run report
            code renders each symbol's section.
        task_seconds: wall time of each (symbol, model) task inside its worker, in task order
            (symbol-major).
        seconds: wall time of the whole sweep, dispatch and result transfer included.
    """

    run_id: str
    created_at: datetime
    config_hash: str
    timeframe: str
    symbols: tuple[str, ...]
    algorithms: tuple[ModelName, ...]
    settings: Settings
    runs: tuple[BacktestResult, ...]
    task_seconds: tuple[float, ...]
    seconds: float

    def leaderboard(self) -> list[tuple[BacktestResult, ModelBacktest]]:
        """(symbol run, model) pairs, best return in excess of the symbol's buy-and-hold first.

        Symbols trend differently over the same period, so raw returns would rank symbols,
        not models; within one symbol the order equals the single-run leaderboard's.
        """
        pairs = [(run, model) for run in self.runs for model in run.models]
        return sorted(pairs, key=lambda pair: _rank_key(pair[1]))


def _rank_key(model: ModelBacktest) -> tuple[float, float]:
    auc = model.classification.roc_auc
    return (-model.excess_return, -(auc if math.isfinite(auc) else 0.0))


def task_settings(settings: Settings) -> Settings:
    """Settings shipped to a sweep task: local walk-forward, one job, no secrets or DB URL.

    A task never dispatches its folds again (no nested cluster work), and a remote worker
    never receives credentials it does not need.
    """
    return settings.model_copy(
        update={"compute": ComputeSettings(), "secrets": Secrets(), "storage": StorageSettings()}
    )


def run_sweep_task(candles: pd.DataFrame, task: SweepTask) -> BacktestResult:
    """Walk-forward backtest of one (symbol, model) pair on its symbol's candles (picklable).

    Raises:
        AppError: the same error `run_backtest` raised, its message prefixed with the pair.
    """
    try:
        return run_backtest(
            candles,
            task.settings,
            symbol=task.symbol,
            timeframe=task.timeframe,
            algorithms=[task.algorithm],
        )
    except AppError as e:
        raise type(e)(f"{task.symbol} {task.algorithm}: {e}") from e


def run_sweep(
    candles: Mapping[str, pd.DataFrame],
    settings: Settings,
    *,
    timeframe: str,
    algorithms: Sequence[ModelName],
    on_task: Callable[[BacktestResult], None] | None = None,
) -> SweepResult:
    """Backtest every (symbol, model) pair through `settings.compute` (local or Dask).

    `candles` maps each symbol to its candles, in the order to report. Each pair is one task;
    inside it the walk-forward runs locally with one job, so results do not depend on the
    backend. `on_task` is called in this process with each pair's result, in task order.

    Raises:
        ConfigError: no symbol or no algorithm.
    """
    if not candles or not algorithms:
        raise ConfigError("a sweep needs at least one symbol and one model (--symbols, --models)")
    started = time.perf_counter()
    shipped = task_settings(settings)
    tasks = [
        (symbol, SweepTask(symbol, timeframe, algorithm, shipped))
        for symbol in candles
        for algorithm in dict.fromkeys(algorithms)
    ]
    logger.info(
        "Sweep: %d symbols x %d models = %d tasks on the %s backend",
        len(candles),
        len(tasks) // len(candles),
        len(tasks),
        settings.compute.backend,
    )
    results = map_keyed(run_sweep_task, candles, tasks, settings.compute, on_result=on_task)
    return _assemble(results, settings, timeframe=timeframe, started=started)


def _assemble(
    results: Sequence[BacktestResult], settings: Settings, *, timeframe: str, started: float
) -> SweepResult:
    """One result per symbol (its models merged), under the sweep's run id."""
    symbols = tuple(dict.fromkeys(result.symbol for result in results))
    algorithms = tuple(dict.fromkeys(result.models[0].algorithm for result in results))
    created = datetime.now(UTC)
    digest = backtest_config_hash(settings, ",".join(symbols), timeframe, algorithms)
    run_id = make_run_id(created, digest)
    runs = tuple(
        merge_symbol_results(
            [result for result in results if result.symbol == symbol],
            settings,
            run_id=run_id,
            created_at=created,
        )
        for symbol in symbols
    )
    return SweepResult(
        run_id=run_id,
        created_at=created,
        config_hash=digest,
        timeframe=timeframe,
        symbols=symbols,
        algorithms=algorithms,
        settings=settings,
        runs=runs,
        task_seconds=tuple(result.seconds for result in results),
        seconds=time.perf_counter() - started,
    )


def merge_symbol_results(
    results: Sequence[BacktestResult], settings: Settings, *, run_id: str, created_at: datetime
) -> BacktestResult:
    """The one-model results of one symbol as one multi-model result (as `run_backtest` gives).

    Raises:
        RuntimeError: the models were tested on different candles (splits must not depend on
            the algorithm).
    """
    first = results[0]
    for other in results[1:]:
        if other.symbol != first.symbol or not other.candles.index.equals(first.candles.index):
            raise RuntimeError(
                f"{other.symbol} {other.models[0].algorithm} was tested on other candles than "
                f"{first.symbol} {first.models[0].algorithm}; cannot merge them"
            )
    models = tuple(model for result in results for model in result.models)
    names = [model.algorithm for model in models]
    return replace(
        first,
        run_id=run_id,
        created_at=created_at,
        config_hash=backtest_config_hash(settings, first.symbol, first.timeframe, names),
        settings=settings,
        models=models,
        seconds=sum(result.seconds for result in results),
    )


# ----------------------------------------------------------------------------- candles
def parse_symbols(text: str) -> tuple[str, ...]:
    """Comma-separated ccxt symbols, in order.

    >>> parse_symbols("BTC/USDT, ETH/USDT")
    ('BTC/USDT', 'ETH/USDT')

    Raises:
        ConfigError: an empty list, a symbol without a quote currency, or a repeated symbol.
    """
    symbols = [part.strip() for part in text.split(",") if part.strip()]
    if not symbols:
        raise ConfigError(f"--symbols {text!r} names no symbol; use e.g. BTC/USDT,ETH/USDT")
    bad = [symbol for symbol in symbols if "/" not in symbol]
    if bad:
        raise ConfigError(f"--symbols: {bad} must look like 'BTC/USDT' (ccxt format)")
    repeated = sorted({symbol for symbol in symbols if symbols.count(symbol) > 1})
    if repeated:
        raise ConfigError(f"--symbols lists {', '.join(repeated)} more than once")
    return tuple(symbols)


def prepare_sweep_candles(
    settings: Settings,
    symbols: Sequence[str],
    *,
    files: Sequence[Path] = (),
    timeframe: str | None = None,
    offline: bool = False,
) -> dict[str, PreparedCandles]:
    """Each symbol's candles: one file per symbol (in order), the cache (`offline`) or ccxt.

    Raises:
        ConfigError: a file count that does not match the symbols, files and `offline`
            together, or `data.file` (one file) set for several symbols.
        DataError: the symbols' candles have different timeframes.
        DataNotFoundError: `offline` and a symbol is not cached.
    """
    check_candle_sources(settings, symbols, files=files, offline=offline)
    sources: list[Path | None] = list(files) if files else [None] * len(symbols)
    prepared = {
        symbol: prepare_candles(
            settings, file=file, symbol=symbol, timeframe=timeframe, offline=offline
        )
        for symbol, file in zip(symbols, sources, strict=True)
    }
    timeframes = {symbol: p.timeframe for symbol, p in prepared.items()}
    if len(set(timeframes.values())) > 1:
        found = ", ".join(f"{symbol} {tf}" for symbol, tf in timeframes.items())
        raise DataError(
            f"a sweep needs one timeframe for all symbols, got {found}; pass --timeframe "
            "and files of that timeframe"
        )
    return prepared


def check_candle_sources(
    settings: Settings, symbols: Sequence[str], *, files: Sequence[Path], offline: bool
) -> None:
    """Check that the candle sources fit the symbols (see `prepare_sweep_candles`).

    Raises:
        ConfigError: files and `offline` together, a file count other than the symbol
            count, or `data.file` (one file) for several symbols.
    """
    if files and offline:
        raise ConfigError("pass either --data files or --offline (the candle cache), not both")
    if files and len(files) != len(symbols):
        raise ConfigError(
            f"{len(files)} --data file(s) for {len(symbols)} symbol(s) "
            f"({', '.join(symbols)}); pass one --data FILE per symbol, in the order of --symbols"
        )
    if not files and not offline and settings.data.file is not None and len(symbols) > 1:
        raise ConfigError(
            f"data.file ({settings.data.file}) names one file but --symbols lists "
            f"{len(symbols)} symbols; pass one --data FILE per symbol, or --offline"
        )
