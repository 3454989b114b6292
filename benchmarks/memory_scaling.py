"""Benchmark: peak RSS and wall time of `cryptopred backtest` as the number of candles grows.

Usage:
    .venv/bin/python -m benchmarks.memory_scaling      # 30k,130k,500k,1M 1m candles, LightGBM
    .venv/bin/python -m benchmarks.memory_scaling --sizes 20000,60000 --models logreg
    .venv/bin/python -m benchmarks.memory_scaling --step-bars default --timeframe 1h
    .venv/bin/python -m benchmarks.memory_scaling --code /path/to/other/checkout   # compare

Each size runs `cryptopred backtest` (the code of `--code`, by default this checkout, via
PYTHONPATH) as a child process; `os.wait4` gives that child's peak RSS (`ru_maxrss`; its own
worker processes included once waited for). Candles are a synthetic random walk (0.6% hourly
volatility, scaled by sqrt of the bar length) written as a plain OHLCV CSV. `--step-bars auto`
gives every size about 10 expanding folds (the default 2,000-bar step would mean ~500 LightGBM
fits on a million candles). MB per 1,000 candles falls towards the marginal cost as the fixed
~450 MB of interpreter and libraries is spread; the increments between sizes show the slope.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from benchmarks.backtest_cli import _config  # the same throw-away config

ROOT = Path(__file__).resolve().parents[1]
TRAIN_BARS = 8760  # walk_forward.train_bars default
AUTO_FOLDS = 10


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="30000,130000,500000,1000000", help="comma-separated candle counts"
    )
    parser.add_argument("--timeframe", default="1m", help="bar length of the synthetic candles")
    parser.add_argument("--models", default="lightgbm", help="comma-separated model names")
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout whose code runs")
    parser.add_argument(
        "--step-bars",
        default="auto",
        help="walk_forward.step_bars: a number, 'default' (the config's), or 'auto' (about "
        f"{AUTO_FOLDS} folds: (candles - train_bars) / {AUTO_FOLDS}, in thousands, >= 2000)",
    )
    parser.add_argument("--seed", type=int, default=7)
    return parser.parse_args()


def write_candles(path: Path, n: int, timeframe: str, seed: int) -> None:
    """A random-walk OHLCV CSV of `n` candles ending at 2026-01-01 UTC."""
    rng = np.random.default_rng(seed)
    step = pd.Timedelta(timeframe)
    sigma = 0.006 * np.sqrt(step / pd.Timedelta("1h"))
    close = 30_000 * np.exp(np.cumsum(rng.normal(0.0, sigma, n)))
    open_ = np.concatenate(([close[0]], close[:-1]))
    wick = np.abs(rng.normal(0.0, sigma / 2, (2, n)))
    frame = pd.DataFrame(
        {
            "timestamp": pd.date_range(end="2026-01-01", periods=n, freq=step, tz="UTC"),
            "open": open_,
            "high": np.maximum(open_, close) * (1 + wick[0]),
            "low": np.minimum(open_, close) * (1 - wick[1]),
            "close": close,
            "volume": rng.lognormal(3.0, 0.5, n),
        }
    )
    frame["timestamp"] = frame["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S")
    frame.to_csv(path, index=False, float_format="%.6f")


def backtest_args(
    root: Path, data: Path, models: str, timeframe: str, step_bars: int | None
) -> list[str]:
    """`cryptopred` arguments of one backtest with working paths under `root`."""
    config = _config(root)
    if step_bars is not None:
        payload = yaml.safe_load(config.read_text(encoding="utf-8"))
        payload["ml"]["walk_forward"] = {"step_bars": step_bars}
        config.write_text(yaml.safe_dump(payload), encoding="utf-8")
    return ["--config", str(config), "backtest", "--data", str(data), "--models", models]


def step_bars_for(n: int, option: str) -> int | None:
    """The `walk_forward.step_bars` of a run on `n` candles (None: the config default).

    >>> step_bars_for(1_000_000, "auto"), step_bars_for(30_000, "auto"), step_bars_for(9, "500")
    (99000, 2000, 500)
    """
    if option == "default":
        return None
    if option == "auto":
        return max(2000, (n - TRAIN_BARS) // AUTO_FOLDS // 1000 * 1000)
    return int(option)


def measure(n: int, args: argparse.Namespace) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of one backtest on `n` synthetic candles.

    `os.wait4` gives the peak of that one child process (the backtest), not of this one.
    """
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        root = Path(tmp)
        data = root / "candles.csv"
        write_candles(data, n, args.timeframe, args.seed)
        step_bars = step_bars_for(n, args.step_bars)
        backtest = [sys.executable, "-m", "cli.main"]
        backtest += backtest_args(root, data, args.models, args.timeframe, step_bars)
        backtest += ["--timeframe", args.timeframe]
        env = {"PYTHONPATH": str(args.code), "PATH": "/usr/bin:/bin"}
        log = root / "stderr.log"
        started = time.perf_counter()
        with log.open("wb") as err:
            process = subprocess.Popen(
                backtest, stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=args.code
            )
            _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"backtest of {n} candles failed:\n{log.read_text()[-4000:]}")
        return usage.ru_maxrss / 1024, wall


def main() -> None:
    args = _parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    print(f"code {args.code}, {args.timeframe} candles, models {args.models}", flush=True)
    print(
        f"{'candles':>10} {'step_bars':>9} {'peak MB':>8} {'wall s':>7} {'MB/1k':>6}  load 1/5/15"
    )
    rows = []
    for n in sizes:
        peak, wall = measure(n, args)
        rows.append((n, peak))
        load = "/".join(f"{value:.1f}" for value in os.getloadavg())
        step = step_bars_for(n, args.step_bars) or "default"
        print(
            f"{n:>10,} {step:>9} {peak:>8.0f} {wall:>7.0f} {peak * 1000 / n:>6.2f}  {load}",
            flush=True,
        )
    for (n0, p0), (n1, p1) in itertools.pairwise(sorted(rows)):
        print(
            f"{n0:,} -> {n1:,}: candles x{n1 / n0:.2f}, peak x{p1 / p0:.2f}, "
            f"increment {(p1 - p0) * 1000 / (n1 - n0):.2f} MB per 1,000 extra candles"
        )
    print(f"{os.cpu_count()} CPUs shared with other jobs: wall times depend on the load shown")


if __name__ == "__main__":
    main()
