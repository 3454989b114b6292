"""Benchmark: bytes a Dask sweep sends, candles shipped once per symbol vs a copy per task.

Usage:
    .venv/bin/python -m benchmarks.sweep_transfer                  # 5 symbols x 3 models, 2 workers
    .venv/bin/python -m benchmarks.sweep_transfer --max-folds 2 --models logreg,lightgbm

Runs `backtests.sweep.run_sweep` on a fresh 2-worker `LocalCluster` per mode, interleaved:
- `once`: the code as it is (`ml.compute.map_keyed`): each symbol's candles are scattered once
  and the (symbol, model) tasks carry a future to them;
- `copy`: the previous way, kept here as the baseline: every task carries its symbol's candles.

Bytes sent are counted on the wire: every process of the cluster (this one, which runs the
client and the LocalCluster's scheduler, and each worker) wraps distributed's
`TCP.write`, which returns the bytes of the frames it sent, and sums them over the sweep.
Client + scheduler bytes are the task graph, the scattered candles and the scheduler's
messages; worker bytes are mostly the results (the same in both modes) and peer copies
(`transfer_outgoing_bytes_total`, printed apart). The pickled size of what the client
submits is printed alongside. Then it prints the per-task dispatch overhead (no-op tasks that
read the scattered candles) and each worker's peak RSS. The 4 shared hourly files give 4
symbols (BNB and ADA hold 7,478 candles, fewer than the default `train_bars`, so the
walk-forward here trains on 4,000 bars first, steps 1,000); the 5th is a synthetic random walk
on BTC's hours. `--max-folds` bounds the fits: bytes sent do not depend on the folds.
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


_SENT = [0]


def install_byte_counter() -> None:
    """Count the bytes every TCP comm of this process sends (idempotent)."""
    from distributed.comm.tcp import TCP

    if getattr(TCP.write, "counted", False):
        return
    original = TCP.write

    async def write(self: Any, msg: Any, serializers: Any = None, on_error: str = "message") -> int:
        sent = int(await original(self, msg, serializers=serializers, on_error=on_error))
        _SENT[0] += sent
        return sent

    write.counted = True  # type: ignore[attr-defined]
    TCP.write = write  # type: ignore[method-assign]


def sent_bytes(reset: bool = False) -> int:
    """Bytes counted by `install_byte_counter` in this process (then zero them with `reset`)."""
    total = _SENT[0]
    if reset:
        _SENT[0] = 0
    return total


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
        install_byte_counter()
        client.run(install_byte_counter)
        sent_bytes(reset=True)
        client.run(sent_bytes, reset=True)
        started = time.perf_counter()
        pickled = sweep(candles, remote, models)
        wall = time.perf_counter() - started
        client_sent = sent_bytes()
        workers_sent = sum(client.run(sent_bytes).values())
        peers = sum(client.run(_worker_sent).values())
        peaks = list(client.run(_worker_peak_mb).values())
        frame = next(iter(candles.values()))
        n_noop = 200
        started = time.perf_counter()
        map_keyed(_noop, {0: frame}, [(0, i) for i in range(n_noop)], COMPUTE)
        overhead = (time.perf_counter() - started) / n_noop
    return {
        "client_mb": client_sent / MB,
        "workers_mb": workers_sent / MB,
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
        walk = settings.ml.walk_forward.model_copy(
            update={"train_bars": 4000, "step_bars": 1000, "max_folds": args.max_folds}
        )
        settings = settings.model_copy(
            update={"ml": settings.ml.model_copy(update={"walk_forward": walk})}
        )
        candles = _load(settings, SHARED, ["BTC", "ETH", "BNB", "ADA"])
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
            f"{mode:>4}: client+scheduler sent {med['client_mb']:6.1f} MB, workers sent "
            f"{med['workers_mb']:6.1f} MB (to each other {med['peer_mb']:.1f} MB), pickled "
            f"submissions {med['pickled_mb']:6.1f} MB; sweep "
            f"{med['wall']:5.1f} s; worker peak RSS {med['worker_peak_mb']:.0f} MB; no-op task "
            f"{med['overhead_ms']:.1f} ms; load {med['load']:.2f}"
        )
    print(f"load average {os.getloadavg()} on {os.cpu_count()} CPUs (shared)")


if __name__ == "__main__":
    main()
