"""Benchmark: bot tick latency from candle close to committed rows (1 and 20 symbols).

The real tick (`bot.job.run_once`) with the real ccxt client against the loopback Binance
emulator, a real SQLite file (WAL) and a logistic model from the registry. For each tick the
emulator's clock is set to the instant a candle closes and the tick starts then (offset 0), so
the tick's wall time is the latency from the close to the last committed row (plus the
heartbeat). The first tick (model load, market load) is reported apart.

Run: .venv/bin/python -m benchmarks.bot_latency [--ticks 40] [--symbols 1 20]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bot.deps import BotDeps
from bot.job import run_once
from core.settings import ExchangeSettings, Settings
from core.timeframes import from_epoch_ms
from data.exchange import CcxtCandleSource
from ml.registry import ModelArtifact, load_model, promote_model, save_model
from ml.workflow import train_model
from serving.models import ModelCache
from storage.db import init_db, make_engine, make_session_factory
from tests.emulator import running_emulator
from tests.factories import make_ohlcv, make_settings

HOUR_MS = 3_600_000
FIRST_TICK_ROW = 1100


def _symbols(n: int) -> list[str]:
    return [f"C{i:02d}/USDT" for i in range(n)]


def _train(root: Path, candles: pd.DataFrame, symbols: list[str]) -> Settings:
    """One logistic model, saved and promoted once per symbol."""
    settings = make_settings(
        root,
        ml={
            "model": {"algorithm": "logreg"},
            "walk_forward": {"train_bars": 300, "validation_bars": 100, "step_bars": 100},
        },
        bot={"symbols": symbols},
        storage={"db_url": f"sqlite:///{root / 'bot.db'}"},
    )
    outcome = train_model(
        candles.iloc[:1000], settings, symbol=symbols[0], timeframe="1h", algorithm="logreg"
    )
    base: ModelArtifact = load_model(settings.ml.registry_dir, outcome.model_id)
    promote_model(settings.ml.registry_dir, outcome.model_id)
    for symbol in symbols[1:]:
        manifest = base.manifest.model_copy(
            update={"symbol": symbol, "model_id": f"{symbol.replace('/', '_')}-1h-logreg"}
        )
        model_id = save_model(ModelArtifact(base.estimator, manifest), settings.ml.registry_dir)
        promote_model(settings.ml.registry_dir, model_id)
    return settings


def _percentiles(values: list[float]) -> str:
    p50, p95 = np.percentile(values, [50, 95])
    return f"p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  max {max(values):7.1f} ms"


def measure(n_symbols: int, ticks: int) -> None:
    """Run `ticks` ticks over `n_symbols` markets and print the latency distribution."""
    candles = make_ohlcv(FIRST_TICK_ROW + ticks + 2, seed=5)
    symbols = _symbols(n_symbols)
    with tempfile.TemporaryDirectory() as tmp:
        settings = _train(Path(tmp), candles, symbols)
        engine = make_engine(settings.storage.db_url)
        init_db(engine)
        open_ms = candles.index.as_unit("ms").asi8
        with running_emulator(dict.fromkeys(symbols, candles), now_ms=int(open_ms[0])) as emu:
            deps = BotDeps(
                settings=settings,
                source=CcxtCandleSource(ExchangeSettings(base_url=emu.base_url, timeout_ms=5000)),
                session_factory=make_session_factory(engine),
                models=ModelCache(settings.ml.registry_dir, decision=settings.decision),
            )
            tick_ms, row_ms = [], []
            for i in range(ticks + 1):
                close_ms = int(open_ms[FIRST_TICK_ROW - 1 + i]) + HOUR_MS
                emu.clock.set(close_ms)  # the candle has just closed on the exchange
                started = time.perf_counter()
                report = run_once(deps, from_epoch_ms(close_ms))
                elapsed_ms = (time.perf_counter() - started) * 1000
                assert report.written == n_symbols and not report.has_errors, report
                if i == 0:
                    print(
                        f"{n_symbols:2d} symbol(s): first tick (loads models) {elapsed_ms:.0f} ms"
                    )
                    continue
                tick_ms.append(elapsed_ms)
                row_ms.extend(row.latency_ms for row in report.predictions)
        engine.dispose()
    print(f"{n_symbols:2d} symbol(s): close -> all rows committed  {_percentiles(tick_ms)}")
    print(f"{n_symbols:2d} symbol(s): close -> each row stamped     {_percentiles(row_ms)}")
    print(
        f"{n_symbols:2d} symbol(s): mean per symbol {statistics.mean(tick_ms) / n_symbols:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ticks", type=int, default=40)
    parser.add_argument("--symbols", type=int, nargs="+", default=[1, 20])
    args = parser.parse_args()
    for n_symbols in args.symbols:
        measure(n_symbols, args.ticks)


if __name__ == "__main__":
    main()
