"""Benchmark: bars/s of MLSignalStrategy vs a bare backtrader strategy trading a precomputed signal.

Usage:
    .venv/bin/python -m benchmarks.strategy_speed                 # shared BTC 1h file, 5 rounds
    .venv/bin/python -m benchmarks.strategy_speed --data PATH --repeat 7

Three engines trade the same targets (`ml.decision.positions_from_proba` of the same
probabilities, `target_side`/`target_size` lines) with the same broker set-up
(`configure_broker`), no analyzers or observers (as `run_strategy`) and the same per-bar
recording (equity and units lists, fills in `notify_order`):
- `MLSignalStrategy` on the project's `PredictionFeed` (what `cryptopred backtest` runs);
- a bare strategy on `PredictionFeed` (the strategy's own overhead: target >= 0.9x);
- the same bare strategy on backtrader's stock `bt.feeds.PandasData` (plain backtrader, the
  baseline of issue 13: target >= 1.5x).
All must end with the same equity. Rounds interleave the three (others share the CPUs); the
ratios are the medians of the per-round ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import backtrader as bt
import numpy as np
import pandas as pd

from core.settings import DecisionPolicy, QualitySettings, StrategySettings
from data.files import read_candle_file
from data.quality import clean_candles
from ml.decision import positions_from_proba
from strategy.costs import configure_broker
from strategy.feeds import make_prediction_feed
from strategy.ml_signal import MLSignalStrategy

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "Binance_BTCUSDT_1h.csv"


class BareSignalStrategy(bt.Strategy):
    """Trades the precomputed target (-1/0/1) in the `target_side` line; same orders and records."""

    params: Any = (("position_fraction", 0.95),)

    def __init__(self) -> None:
        self._signal = self.data.target_side
        self.equity: list[float] = []
        self.units: list[float] = []
        self.fills: list[tuple[float, float, float]] = []

    def start(self) -> None:
        self._position = self.broker.getposition(self.data)

    def next(self) -> None:
        size = self._position.size
        held = 1 if size > 0 else (-1 if size < 0 else 0)
        target = int(self._signal[0])
        if target != held:
            if held:
                self.close()
            if target:
                units = self.p.position_fraction * self.broker.getvalue() / self.data.close[0]
                (self.buy if target > 0 else self.sell)(size=units)
        self.equity.append(self.broker.getvalue())
        self.units.append(self._position.size)

    def notify_order(self, order: bt.Order) -> None:
        if order.status == order.Completed:
            executed = order.executed
            self.fills.append((executed.size, executed.price, executed.comm))


class SignalPandasData(bt.feeds.PandasData):
    """Stock `PandasData` with the two target lines (backtrader's documented extra-line recipe)."""

    lines: Any = ("target_side", "target_size")
    params: Any = (("target_side", -1), ("target_size", -1))


def stock_feed(frame: pd.DataFrame) -> SignalPandasData:
    """The plain-backtrader feed of `frame` (1h bars, no open interest column)."""
    return SignalPandasData(
        dataname=frame, timeframe=bt.TimeFrame.Minutes, compression=60, openinterest=None
    )


def project_feed(frame: pd.DataFrame) -> bt.feeds.PandasData:
    """The project's feed of `frame`, as `run_strategy` builds it."""
    return make_prediction_feed(frame, timeframe="1h")


def sma_proba(candles: pd.DataFrame, *, window: int = 24) -> np.ndarray:
    """Deterministic probabilities from the close's distance to its SMA (NaN warm-up)."""
    sma = candles["close"].rolling(window).mean()
    return (0.5 + 0.5 * np.tanh(40.0 * (candles["close"] / sma - 1.0))).to_numpy()


def time_run(
    frame: pd.DataFrame,
    strategy_cls: type,
    cfg: StrategySettings,
    *,
    feed: Callable[[pd.DataFrame], bt.feeds.PandasData] = project_feed,
    **params: Any,
) -> tuple[float, float]:
    """(bars/s of cerebro.run, final equity) for one strategy class on one feed."""
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(feed(frame))
    configure_broker(cerebro, cfg)
    cerebro.addstrategy(strategy_cls, **params)
    started = time.perf_counter()
    result = cerebro.run()[0]
    elapsed = time.perf_counter() - started
    return len(frame) / elapsed, result.equity[-1]


def load_candles(path: Path) -> pd.DataFrame:
    """Read and clean a candle file."""
    raw = read_candle_file(path)
    return clean_candles(raw.frame, timeframe="1h", cfg=QualitySettings()).frame


ENGINES: dict[str, tuple[type, Callable[[pd.DataFrame], bt.feeds.PandasData]]] = {
    "MLSignalStrategy + PredictionFeed": (MLSignalStrategy, project_feed),
    "bare strategy + PredictionFeed": (BareSignalStrategy, project_feed),
    "bare strategy + bt PandasData": (BareSignalStrategy, stock_feed),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    candles = load_candles(args.data)
    targets = positions_from_proba(sma_proba(candles), DecisionPolicy())
    cfg = StrategySettings(fee_rate=0.001, slippage_bps=5.0)
    frame = candles.assign(target_side=targets.side.astype("float64"), target_size=targets.size)
    speeds: dict[str, list[float]] = {name: [] for name in ENGINES}
    finals = set()
    load = [os.getloadavg()[0]]
    for _ in range(args.repeat):
        for name, (strategy_cls, feed) in ENGINES.items():
            speed, final = time_run(frame, strategy_cls, cfg, feed=feed, position_fraction=0.95)
            speeds[name].append(speed)
            finals.add(round(final, 6))
        load.append(os.getloadavg()[0])
    assert len(finals) == 1, finals  # every engine ends with the same equity
    print(f"{len(candles):,} candles from {args.data.name}; final equity {finals.pop():,.2f} (all)")
    for name, values in speeds.items():
        print(f"{name:<34}: median {statistics.median(values):,.0f} bars/s  runs {_fmt(values)}")
    ml, bare, stock = speeds.values()
    print(f"ML / bare (same feed)   : {_ratio(ml, bare):.3f}  (target >= 0.9)")
    print(f"ML / bare on PandasData : {_ratio(ml, stock):.3f}  (target >= 1.5)")
    print(f"load average 1 min {min(load):.2f}-{max(load):.2f} on {os.cpu_count()} CPUs (shared)")


def _ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median of the per-round ratios (rounds interleave the engines)."""
    return statistics.median(n / d for n, d in zip(numerator, denominator, strict=True))


def _fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{value:,.0f}" for value in values) + "]"


if __name__ == "__main__":
    main()
