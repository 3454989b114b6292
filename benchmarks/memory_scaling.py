"""Benchmark: peak RSS and wall time of `cryptopred backtest` as the number of candles grows.

Usage:
    .venv/bin/python -m benchmarks.memory_scaling                          # 30k,130k 1h, logreg
    .venv/bin/python -m benchmarks.memory_scaling --sizes 20000,60000 --models logreg
    .venv/bin/python -m benchmarks.memory_scaling --code /path/to/other/checkout   # compare

Each size runs in a fresh wrapper process that starts the backtest (the code of `--code`, by
default this checkout, via PYTHONPATH) and reads `resource.getrusage(RUSAGE_CHILDREN)`, so the
peak is that one backtest's (its joblib workers included). Candles are a synthetic random walk
(0.6% hourly volatility, scaled by sqrt of the bar length) written as a plain OHLCV CSV. The
last column, peak memory over candles, stays roughly constant when memory is linear in candles
(the interpreter and libraries add a fixed ~200-300 MB, so compare the increments too).
"""

from __future__ import annotations

import argparse
import itertools
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
WRAPPER = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
if done.returncode:
    sys.stderr.write(done.stderr[-4000:])
    sys.exit(done.returncode)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)  # KiB on Linux
"""


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="30000,130000", help="comma-separated candle counts")
    parser.add_argument("--timeframe", default="1h", help="bar length of the synthetic candles")
    parser.add_argument("--models", default="logreg", help="comma-separated model names")
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout whose code runs")
    parser.add_argument("--step-bars", type=int, default=None, help="walk_forward.step_bars")
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


def measure(n: int, args: argparse.Namespace) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of one backtest on `n` synthetic candles."""
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        root = Path(tmp)
        data = root / "candles.csv"
        write_candles(data, n, args.timeframe, args.seed)
        backtest = [sys.executable, "-m", "cli.main"]
        backtest += backtest_args(root, data, args.models, args.timeframe, args.step_bars)
        backtest += ["--timeframe", args.timeframe]
        env = {"PYTHONPATH": str(args.code), "PATH": "/usr/bin:/bin"}
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", WRAPPER, *backtest],
            capture_output=True,
            text=True,
            check=False,
            env=env,
            cwd=args.code,
        )
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"backtest of {n} candles failed:\n{done.stderr}")
        return int(done.stdout.split()[-1]) / 1024, wall


def main() -> None:
    args = _parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    print(f"code {args.code}, {args.timeframe} candles, models {args.models}")
    print(f"{'candles':>10} {'peak MB':>9} {'wall s':>8} {'kB/candle':>10}")
    rows = []
    for n in sizes:
        peak, wall = measure(n, args)
        rows.append((n, peak))
        print(f"{n:>10,} {peak:>9.0f} {wall:>8.1f} {peak * 1024 / n:>10.2f}")
    for (n0, p0), (n1, p1) in itertools.pairwise(rows):
        print(
            f"{n0:,} -> {n1:,}: candles x{n1 / n0:.2f}, peak x{p1 / p0:.2f}, "
            f"increment {(p1 - p0) * 1024 / (n1 - n0):.2f} kB per extra candle"
        )


if __name__ == "__main__":
    main()
