"""Benchmark: bars/s of MLSignalStrategy vs a bare backtrader strategy trading a precomputed signal.

Usage:
    .venv/bin/python -m benchmarks.strategy_speed                 # shared BTC 1h file, 5 rounds
    .venv/bin/python -m benchmarks.strategy_speed --data PATH --repeat 7

Both strategies get the same candles through the same feed class (`PredictionFeed`), the same
broker set-up (`configure_broker`), no analyzers or observers (as `run_strategy`), and the same
per-bar recording (equity and units lists, fills in `notify_order`). Both read the targets that
`ml.decision.positions_from_proba` precomputed from the same probabilities (`target_side`,
`target_size` lines); the ML strategy adds its trade records, stop/take-profit handling and size
scaling. Both must end with the same equity. Runs alternate and the median of each is reported
(others share the CPUs).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
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


def sma_proba(candles: pd.DataFrame, *, window: int = 24) -> np.ndarray:
    """Deterministic probabilities from the close's distance to its SMA (NaN warm-up)."""
    sma = candles["close"].rolling(window).mean()
    return (0.5 + 0.5 * np.tanh(40.0 * (candles["close"] / sma - 1.0))).to_numpy()


def time_run(frame: pd.DataFrame, strategy_cls: type, cfg: StrategySettings, **params: Any):
    """(bars/s of cerebro.run, final equity) for one strategy class."""
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(make_prediction_feed(frame, timeframe="1h"))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    candles = load_candles(args.data)
    targets = positions_from_proba(sma_proba(candles), DecisionPolicy())
    cfg = StrategySettings(fee_rate=0.001, slippage_bps=5.0)
    frame = candles.assign(target_side=targets.side.astype("float64"), target_size=targets.size)
    ml_frame = bare_frame = frame
    ml_speed, bare_speed = [], []
    for _ in range(args.repeat):
        speed, ml_final = time_run(ml_frame, MLSignalStrategy, cfg, position_fraction=0.95)
        ml_speed.append(speed)
        speed, bare_final = time_run(bare_frame, BareSignalStrategy, cfg, position_fraction=0.95)
        bare_speed.append(speed)
        assert abs(ml_final / bare_final - 1) < 1e-9, (ml_final, bare_final)
    ml_median, bare_median = statistics.median(ml_speed), statistics.median(bare_speed)
    print(f"{len(candles):,} candles from {args.data.name}; final equity {ml_final:,.2f} (both)")
    print(f"MLSignalStrategy   : median {ml_median:,.0f} bars/s  runs {_fmt(ml_speed)}")
    print(f"BareSignalStrategy : median {bare_median:,.0f} bars/s  runs {_fmt(bare_speed)}")
    print(f"ratio ML / bare    : {ml_median / bare_median:.3f}  (target >= 0.9)")
    print(f"load average       : {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs (shared)")


def _fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{value:,.0f}" for value in values) + "]"


if __name__ == "__main__":
    main()
