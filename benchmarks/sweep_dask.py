"""Benchmark: a symbols x models sweep on a local 2-worker Dask cluster vs the local backend.

Usage:
    .venv/bin/python -m benchmarks.sweep_dask                 # BTC+ETH 1h x lgbm,xgboost,logreg
    .venv/bin/python -m benchmarks.sweep_dask --models logreg     # quick check
    .venv/bin/python -m benchmarks.sweep_dask --symbols BTC,ETH,ADA,BNB --workers 2
    .venv/bin/python -m benchmarks.sweep_dask --assume random_forest=77.2,mlp=13.6  # 5 models

Runs `backtests.sweep.run_sweep` (the code behind `cryptopred backtest --symbols ...`) on the
same candles with default settings (default walk-forward folds), `--repeat` rounds per backend,
interleaved because the 2 vCPUs are shared: `compute.backend: local` (one task after the other,
in this process) and `compute.backend: dask` with `scheduler_address: local-cluster` (a
LocalCluster on 127.0.0.1, one thread per worker, started and stopped each round). It checks
every run gives the same leaderboard, then prints medians: cluster start/stop, per-task times,
totals, and an estimate of the wall time of a bigger sweep on a bigger cluster built from the
per-task times measured here (the assumptions are printed with it).
"""

from __future__ import annotations

import argparse
import heapq
import os
import pickle
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backtests.sweep import SweepResult, run_sweep
from backtests.sweep_report import sweep_payload, write_sweep_report
from core.settings import ComputeSettings, Settings
from core.types import MODEL_NAMES
from data.candles import import_candles
from ml.compute import dask_client

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@dataclass(frozen=True, slots=True)
class Round:
    """One timed sweep: its result, sweep wall time, cluster start/stop, load average before."""

    result: SweepResult
    wall: float
    start: float
    stop: float
    load: float

    @property
    def total(self) -> float:
        """Cluster start + sweep + cluster stop."""
        return self.start + self.wall + self.stop


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=SHARED, help="Binance_<X>USDT_1h.csv")
    parser.add_argument("--symbols", default="BTC,ETH", help="base currencies (USDT quote)")
    parser.add_argument("--models", default="lightgbm,xgboost,logreg")
    parser.add_argument("--workers", type=int, default=2, help="local Dask workers")
    parser.add_argument("--repeat", type=int, default=2, help="rounds per backend (interleaved)")
    parser.add_argument("--target-symbols", type=int, default=50)
    parser.add_argument("--target-models", type=int, default=5)
    parser.add_argument("--target-workers", type=int, default=32)
    parser.add_argument(
        "--assume", default="", help="task seconds of unmeasured models: random_forest=77.2,..."
    )
    return parser.parse_args()


def _settings(root: Path) -> Settings:
    return Settings.model_validate(
        {
            "data": {"cache_dir": str(root / "cache")},
            "ml": {"registry_dir": str(root / "models")},
            "backtest": {"reports_dir": str(root / "reports")},
            "storage": {"db_url": f"sqlite:///{root / 'cp.db'}"},
        }
    )


def _load(settings: Settings, data_dir: Path, bases: Sequence[str]) -> dict[str, Any]:
    candles = {}
    for base in bases:
        path = data_dir / f"Binance_{base}USDT_1h.csv"
        prepared = import_candles(
            path,
            symbol=f"{base}/USDT",
            timeframe="1h",
            exchange_id="binance",
            cfg=settings.data,
        )
        candles[prepared.symbol] = prepared.frame
    return candles


def _local_round(candles: dict[str, Any], settings: Settings, models: Sequence[Any]) -> Round:
    load = os.getloadavg()[0]
    started = time.perf_counter()
    result = run_sweep(candles, settings, timeframe="1h", algorithms=models)
    return Round(result, time.perf_counter() - started, 0.0, 0.0, load)


def _dask_round(
    candles: dict[str, Any], settings: Settings, models: Sequence[Any], workers: int
) -> Round:
    compute = ComputeSettings(backend="dask", scheduler_address="local-cluster", n_jobs=workers)
    remote = settings.model_copy(update={"compute": compute})
    load = os.getloadavg()[0]
    started = time.perf_counter()
    with dask_client(compute) as client:
        up = time.perf_counter()
        assert len(client.scheduler_info()["workers"]) == workers
        result = run_sweep(candles, remote, timeframe="1h", algorithms=models)
        closing = time.perf_counter()
    stop_s = time.perf_counter() - closing
    return Round(result, closing - up, up - started, stop_s, load)


def _makespan(task_seconds: Sequence[float], workers: int) -> float:
    """Longest-processing-time-first list scheduling of independent tasks on `workers`.

    >>> _makespan([4, 3, 3, 2], 2)
    6.0
    """
    loads = [0.0] * workers
    for seconds in sorted(task_seconds, reverse=True):
        heapq.heapreplace(loads, loads[0] + seconds)
    return max(loads)


def _per_model(rounds: Sequence[Round]) -> dict[str, list[float]]:
    """Median task seconds per model (one entry per symbol)."""
    out: dict[str, list[float]] = {}
    result = rounds[0].result
    pairs = [(run.symbol, m.algorithm) for run in result.runs for m in run.models]
    for (_, model), seconds in zip(pairs, _median_tasks(rounds), strict=True):
        out.setdefault(model, []).append(seconds)
    return out


def _median_tasks(rounds: Sequence[Round]) -> list[float]:
    """Median time of each (symbol, model) task over the rounds."""
    per_round = [r.result.task_seconds for r in rounds]
    return [statistics.median(times) for times in zip(*per_round, strict=True)]


def _print_tasks(local: Sequence[Round], dask: Sequence[Round]) -> None:
    print(f"\n{'symbol':<10} {'model':<10} {'local task s':>13} {'dask task s':>12}  (medians)")
    first = local[0].result
    pairs = [(run.symbol, m.algorithm) for run in first.runs for m in run.models]
    for (symbol, model), mine, theirs in zip(
        pairs, _median_tasks(local), _median_tasks(dask), strict=True
    ):
        print(f"{symbol:<10} {model:<10} {mine:>13.1f} {theirs:>12.1f}")


def _med(rounds: Sequence[Round], attribute: str) -> float:
    return statistics.median(getattr(r, attribute) for r in rounds)


def _print_totals(local: Sequence[Round], dask: Sequence[Round], workers: int) -> float:
    """The totals table (medians over rounds); returns the dispatch overhead per task."""
    dask_tasks = _median_tasks(dask)
    local_wall, dask_wall, dask_total = _med(local, "wall"), _med(dask, "wall"), _med(dask, "total")
    overhead = max(0.0, dask_wall - _makespan(dask_tasks, workers))
    local_busy = sum(_median_tasks(local))
    rows = [
        ("local backend: sweep wall", local_wall),
        (f"dask {workers} workers: cluster start", _med(dask, "start")),
        (f"dask {workers} workers: sweep wall (cluster up)", dask_wall),
        (f"dask {workers} workers: cluster stop", _med(dask, "stop")),
        ("dask total (start + sweep + stop)", dask_total),
        ("dask: sum of task times inside workers", sum(dask_tasks)),
        ("dask: wall beyond the task schedule (dispatch, transfer)", overhead),
    ]
    print()
    for label, seconds in rows:
        print(f"{label:<58} {seconds:>8.1f} s")
    ratios = [
        ("speed-up, sweep only (local wall / dask wall)", local_wall / dask_wall),
        ("speed-up, cluster start and stop included", local_wall / dask_total),
        ("same tasks: dask task time / local task time", sum(dask_tasks) / local_busy),
    ]
    for label, ratio in ratios:
        print(f"{label:<58} {ratio:>8.2f} x")
    for name, rounds in (("local", local), ("dask", dask)):
        walls = ", ".join(f"{r.wall:.1f} s (load {r.load:.1f})" for r in rounds)
        print(f"  {name} rounds: {walls}")
    return overhead / len(dask_tasks)


def _assumed(text: str) -> dict[str, float]:
    """`--assume random_forest=77.2,mlp=13.6` -> {"random_forest": 77.2, "mlp": 13.6}."""
    pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
    return {name.strip(): float(seconds) for name, seconds in pairs}


def _estimate(local: Sequence[Round], args: argparse.Namespace, overhead_per_task: float) -> None:
    per_model = {model: statistics.mean(times) for model, times in _per_model(local).items()}
    assumed = {m: s for m, s in _assumed(args.assume).items() if m not in per_model}
    first = local[0].result
    known = {**per_model, **assumed}
    missing = max(0, args.target_models - len(known))
    guessed = [m for m in MODEL_NAMES if m not in known][:missing]
    mean = statistics.mean(known.values())
    costs = [known.get(m, mean) for m in [*known, *guessed][: args.target_models]]
    tasks = [cost for cost in costs for _ in range(args.target_symbols)]
    makespan = _makespan(tasks, args.target_workers)
    dispatch = overhead_per_task * len(tasks) / args.target_workers
    print(
        f"\nEstimate: {args.target_symbols} symbols x {args.target_models} models = {len(tasks)} "
        f"tasks on {args.target_workers} workers"
    )
    rows = [
        ("work: sum of task times (one worker)", sum(tasks)),
        (f"{args.target_workers} workers, longest-first schedule", makespan),
        ("+ dispatch overhead measured here, spread over workers", dispatch),
        ("= estimated wall time, cluster already running", makespan + dispatch),
    ]
    for label, seconds in rows:
        print(f"  {label:<56} {seconds:>7.0f} s = {seconds / 60:5.1f} min")
    print("  assumptions:")
    print(
        f"  - per-task time = this machine's local per-task time per model, median over rounds "
        f"({', '.join(f'{m} {s:.1f} s' for m, s in per_model.items())}), i.e. each worker has "
        "a core of this speed to itself (here 2 concurrent fits slow each other down)"
    )
    if assumed:
        given = ", ".join(f"{m} {s:.1f} s" for m, s in assumed.items())
        print(f"  - from --assume (measured in an earlier run): {given}")
    if guessed:
        print(
            f"  - {', '.join(guessed)} not measured: assumed at the mean ({mean:.1f} s); "
            "random_forest costs ~5x a LightGBM task here: measure it (--models) or --assume it"
        )
    print(
        f"  - every symbol has about as many candles as {', '.join(first.symbols)} "
        f"({statistics.mean(r.n_candles for r in first.runs):,.0f} 1h candles)"
    )
    print(
        f"  - dispatch overhead per task as measured here ({overhead_per_task:.2f} s) spread "
        "over the workers; candles and results travel over a LAN (sizes below) in << 1 s"
    )


def _sizes(local: SweepResult, candles: dict[str, Any]) -> None:
    task_in = statistics.mean(len(pickle.dumps(frame)) for frame in candles.values())
    run = local.runs[0]
    one = len(pickle.dumps(run)) / len(run.models)
    print(
        f"\nTransfer per task: candles in {task_in / 1e6:.1f} MB, result back "
        f"{one / 1e6:.1f} MB (pickled); the client keeps every result in memory "
        f"(x{len(local.task_seconds)} here)"
    )


def _rounds(
    candles: dict[str, Any], settings: Settings, models: Sequence[Any], args: argparse.Namespace
) -> tuple[list[Round], list[Round]]:
    """Interleaved rounds (local first, then dask first, ...): the machine is shared."""
    local: list[Round] = []
    dask: list[Round] = []
    for number in range(args.repeat):
        order = ("local", "dask") if number % 2 == 0 else ("dask", "local")
        for backend in order:
            if backend == "local":
                local.append(_local_round(candles, settings, models))
            else:
                dask.append(_dask_round(candles, settings, models, args.workers))
    reference = sweep_payload(local[0].result)["leaderboard"]
    same = all(sweep_payload(r.result)["leaderboard"] == reference for r in (*local[1:], *dask))
    print(f"identical leaderboards in all {2 * args.repeat} runs (local and dask): {same}")
    return local, dask


def main() -> None:
    """Run both backends, check they agree, print the tables and the estimate."""
    args = _parse_args()
    models = [name.strip() for name in args.models.split(",")]
    bases = [name.strip().upper() for name in args.symbols.split(",")]
    print(f"os.cpu_count()={os.cpu_count()}, load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        settings = _settings(Path(tmp))
        started = time.perf_counter()
        candles = _load(settings, args.data_dir, bases)
        print(f"loaded {len(candles)} symbols in {time.perf_counter() - started:.1f} s")
        local, dask = _rounds(candles, settings, models, args)
        _print_tasks(local, dask)
        overhead_per_task = _print_totals(local, dask, args.workers)
        report_started = time.perf_counter()
        files = write_sweep_report(local[0].result, settings.backtest.reports_dir)
        report_s = time.perf_counter() - report_started
        size_mb = files.html.stat().st_size / 1e6
        print(f"{'sweep report (JSON + HTML, ' + f'{size_mb:.1f} MB HTML)':<58} {report_s:>8.1f} s")
        _sizes(local[0].result, candles)
        _estimate(local, args, overhead_per_task)
        print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":  # Dask spawns workers that re-import __main__
    main()
