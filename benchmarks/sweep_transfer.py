"""Benchmark: bytes a Dask sweep sends, candles shipped once per symbol vs a copy per task.

Usage:
    .venv/bin/python -m benchmarks.sweep_transfer                  # 5 symbols x 3 models, 2 workers
    .venv/bin/python -m benchmarks.sweep_transfer --max-folds 2 --models logreg,lightgbm

Runs `backtests.sweep.run_sweep` on a fresh 2-worker `LocalCluster` per mode, interleaved:
- `once`: the code as it is (`ml.compute.map_keyed`): each symbol's candles are scattered once
  and the (symbol, model) tasks carry a future to them;
- `copy`: the previous way, kept here as the baseline: every task carries its symbol's candles.

Bytes sent are measured, not estimated: `wchar` of /proc/self/io of this (client) process over
the sweep (it writes no files meanwhile, so these are the bytes written to its sockets: the
task graph and the scattered candles to the scheduler and workers) plus the workers'
`transfer_outgoing_bytes_total` (peer-to-peer copies). The pickled size of the submitted
arguments is printed alongside. Then it prints the per-task dispatch overhead (no-op tasks that
read the scattered candles) and each worker's peak RSS. The 4 shared hourly files give 4
symbols; the 5th is a synthetic random walk on the same hours. `--max-folds` bounds the fits:
bytes sent do not depend on the number of folds.
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtests.run import BacktestResult
from backtests.sweep import SweepTask, run_sweep, run_sweep_task, task_settings
from benchmarks.sweep_dask import SHARED, _load, _settings
from core.settings import ComputeSettings, Settings
from ml.compute import dask_client, map_keyed, map_tasks

MB = 1e6
COMPUTE = ComputeSettings(backend="dask", scheduler_address="local-cluster", n_jobs=2)


def run_copied_task(task: tuple[pd.DataFrame, SweepTask]) -> BacktestResult:
    """The baseline: a task that carries its own copy of the candles."""
    return run_sweep_task(*task)


def copy_sweep(candles: dict[str, pd.DataFrame], settings: Settings, models: Sequence[Any]) -> int:
    """Dispatch the sweep's tasks with a copy of the candles each; returns the tasks' count."""
    shipped = task_settings(settings)
    tasks = [
        (frame, SweepTask(symbol, "1h", model, shipped))
        for symbol, frame in candles.items()
        for model in models
    ]
    map_tasks(run_copied_task, tasks, settings.compute)
    return sum(len(pickle.dumps(task, protocol=5)) for task in tasks)


def once_sweep(candles: dict[str, pd.DataFrame], settings: Settings, models: Sequence[Any]) -> int:
    """The sweep as `cryptopred backtest --symbols` runs it; returns the pickled bytes sent."""
    run_sweep(candles, settings, timeframe="1h", algorithms=models)
    shipped = task_settings(settings)
    tasks = [SweepTask(s, "1h", m, shipped) for s in candles for m in models]
    frames = sum(len(pickle.dumps(frame, protocol=5)) for frame in candles.values())
    return frames + sum(len(pickle.dumps(task, protocol=5)) for task in tasks)


def synthetic_symbol(like: pd.DataFrame, seed: int = 5) -> pd.DataFrame:
    """A random walk on the same open times as `like` (a 5th symbol for the sweep)."""
    rng = np.random.default_rng(seed)
    close = 20.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, len(like))))
    open_ = np.concatenate(([close[0]], close[:-1]))
    wick = np.abs(rng.normal(0.0, 0.004, (2, len(like))))
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * (1 + wick[0]),
            "low": np.minimum(open_, close) * (1 - wick[1]),
            "close": close,
            "volume": rng.lognormal(8.0, 0.5, len(like)),
        },
        index=like.index,
    )


def written_bytes() -> int:
    """Bytes this process has written (sockets and files) since it started."""
    with Path("/proc/self/io").open(encoding="ascii") as io:
        fields = dict(line.split(": ") for line in io.read().splitlines())
    return int(fields["wchar"])


def _worker_peak_mb() -> float:
    with Path("/proc/self/status").open(encoding="ascii") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def _worker_sent(dask_worker: Any) -> int:
    return int(dask_worker.transfer_outgoing_bytes_total)


def _noop(candles: pd.DataFrame, index: int) -> int:
    return index + len(candles) * 0


def measure(
    sweep: Callable[..., int], candles: dict[str, pd.DataFrame], settings: Settings, models: Any
) -> dict[str, float]:
    """One sweep on a fresh cluster: bytes sent, pickled bytes, wall, worker peaks, overhead."""
    remote = settings.model_copy(update={"compute": COMPUTE})
    with dask_client(COMPUTE) as client:
        client.run(lambda: None)  # workers are up
        before = written_bytes()
        started = time.perf_counter()
        pickled = sweep(candles, remote, models)
        wall = time.perf_counter() - started
        client_sent = written_bytes() - before
        peers = sum(client.run(_worker_sent).values())
        peaks = list(client.run(_worker_peak_mb).values())
        frame = next(iter(candles.values()))
        n_noop = 200
        started = time.perf_counter()
        map_keyed(_noop, {0: frame}, [(0, i) for i in range(n_noop)], COMPUTE)
        overhead = (time.perf_counter() - started) / n_noop
    return {
        "client_mb": client_sent / MB,
        "peer_mb": peers / MB,
        "pickled_mb": pickled / MB,
        "wall": wall,
        "worker_peak_mb": max(peaks),
        "overhead_ms": overhead * 1e3,
        "load": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="lightgbm,xgboost,logreg")
    parser.add_argument("--max-folds", type=int, default=2, help="walk_forward.max_folds")
    parser.add_argument("--repeat", type=int, default=1, help="rounds per mode (interleaved)")
    args = parser.parse_args()
    models = args.models.split(",")
    with tempfile.TemporaryDirectory(prefix="bench-transfer-") as tmp:
        settings = _settings(Path(tmp))
        walk = settings.ml.walk_forward.model_copy(update={"max_folds": args.max_folds})
        settings = settings.model_copy(
            update={"ml": settings.ml.model_copy(update={"walk_forward": walk})}
        )
        candles = _load(settings, SHARED, ["BTC", "ETH", "BNB", "ADA"])
        start = max(frame.index[0] for frame in candles.values())
        candles = {symbol: frame.loc[start:] for symbol, frame in candles.items()}
        candles["SYN/USDT"] = synthetic_symbol(candles["BTC/USDT"])
        rows = sum(len(frame) for frame in candles.values())
        size = sum(len(pickle.dumps(frame, protocol=5)) for frame in candles.values()) / MB
        print(f"{len(candles)} symbols ({rows:,} candles, {size:.1f} MB pickled) x {models}")
        results: dict[str, list[dict[str, float]]] = {"copy": [], "once": []}
        for _ in range(args.repeat):
            results["copy"].append(measure(copy_sweep, candles, settings, models))
            results["once"].append(measure(once_sweep, candles, settings, models))
    for mode, rounds in results.items():
        med = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
        print(
            f"{mode:>4}: client sent {med['client_mb']:7.1f} MB, workers to each other "
            f"{med['peer_mb']:6.1f} MB, pickled arguments {med['pickled_mb']:6.1f} MB; sweep "
            f"{med['wall']:5.1f} s; worker peak RSS {med['worker_peak_mb']:.0f} MB; no-op task "
            f"{med['overhead_ms']:.1f} ms; load {med['load']:.2f}"
        )
    print(f"load average {os.getloadavg()} on {os.cpu_count()} CPUs (shared)")


if __name__ == "__main__":
    main()
