"""Benchmark: run_strategy (and the numpy twin) on 1x vs 10x the BTC 1h candles; ratio <= 11x.

Usage:
    .venv/bin/python -m benchmarks.strategy_scaling              # shared BTC 1h file, 10x, 3 rounds
    .venv/bin/python -m benchmarks.strategy_scaling --factor 5 --repeat 1

The 10x series is the real file repeated end to end: each copy is rescaled so that it opens where
the previous one closed and is shifted in time after it (gaps and intrabar shapes are kept).
Wall time of `run_strategy` includes feed validation and building the trades table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import pandas as pd

from benchmarks.strategy_speed import DEFAULT_DATA, load_candles, sma_proba
from core.settings import DecisionPolicy, StrategySettings
from ml.decision import TargetPositions, positions_from_proba
from strategy.runner import run_strategy
from strategy.vectorized import simulate_signals

PRICE_COLUMNS = ["open", "high", "low", "close"]


def extend_candles(candles: pd.DataFrame, factor: int) -> pd.DataFrame:
    """`factor` copies of `candles` laid end to end, price-continuous, one hour apart."""
    span = candles.index[-1] - candles.index[0] + pd.Timedelta(hours=1)
    copies, scale = [], 1.0
    step = float(candles["close"].iloc[-1] / candles["open"].iloc[0])
    for k in range(factor):
        copy = candles.copy()
        copy[PRICE_COLUMNS] = copy[PRICE_COLUMNS] * scale
        copy.index = copy.index + k * span
        copies.append(copy)
        scale *= step
    return pd.concat(copies)


def time_backtrader(frame: pd.DataFrame, targets: TargetPositions, cfg: StrategySettings) -> float:
    """Seconds of one `run_strategy` call."""
    started = time.perf_counter()
    run_strategy(frame, timeframe="1h", side=targets.side, size=targets.size, strategy=cfg)
    return time.perf_counter() - started


def time_twin(frame: pd.DataFrame, targets: TargetPositions, cfg: StrategySettings) -> float:
    """Seconds of one `simulate_signals` call."""
    started = time.perf_counter()
    simulate_signals(
        frame,
        targets.side,
        sizes=targets.size,
        cash=cfg.cash,
        fee_rate=cfg.fee_rate,
        slippage_bps=cfg.slippage_bps,
        position_fraction=cfg.position_fraction,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--factor", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    base = load_candles(args.data)
    frames = {1: base, args.factor: extend_candles(base, args.factor)}
    targets = {
        size: positions_from_proba(sma_proba(f), DecisionPolicy()) for size, f in frames.items()
    }
    cfg = StrategySettings(fee_rate=0.001, slippage_bps=5.0)
    results: dict[str, dict[int, float]] = {"backtrader": {}, "numpy twin": {}}
    for size, frame in frames.items():
        for name, timer in (("backtrader", time_backtrader), ("numpy twin", time_twin)):
            seconds = [timer(frame, targets[size], cfg) for _ in range(args.repeat)]
            results[name][size] = statistics.median(seconds)
            print(
                f"{name:10s} {len(frame):>9,} candles: median {results[name][size]:7.3f} s "
                f"({len(frame) / results[name][size]:>12,.0f} candles/s) runs "
                f"{[round(s, 3) for s in seconds]}"
            )
    for name, timing in results.items():
        ratio = timing[args.factor] / timing[1]
        print(f"{name:10s} time ratio {args.factor}x candles: {ratio:.2f}x (target <= 11x)")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs (shared)")


if __name__ == "__main__":
    main()
