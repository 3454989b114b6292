"""Benchmark: default walk-forward of LightGBM (optionally every model) on the BTC 1h file.

Usage:
    .venv/bin/python -m benchmarks.walk_forward_lightgbm            # LightGBM only (target <= 30 s)
    .venv/bin/python -m benchmarks.walk_forward_lightgbm --models all
    .venv/bin/python -m benchmarks.walk_forward_lightgbm --data PATH --n-jobs 2

Prints the wall time of data loading, dataset building and each model's walk-forward, the
out-of-sample metrics next to the baselines, and the machine load (others share the CPUs).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pandas as pd

from core.settings import ComputeSettings, MLSettings, QualitySettings
from core.types import MODEL_NAMES, ModelName
from data.files import read_candle_file
from data.quality import clean_candles
from ml.dataset import make_dataset
from ml.walk_forward import WalkForwardResult, run_walk_forward

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "Binance_BTCUSDT_1h.csv"


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="candle file (1h)")
    parser.add_argument(
        "--models", default="lightgbm", help="comma-separated model names, or 'all'"
    )
    parser.add_argument("--n-jobs", type=int, default=1, help="compute.n_jobs for the folds")
    return parser.parse_args()


def _models(spec: str) -> list[ModelName]:
    if spec == "all":
        return list(MODEL_NAMES)
    names = [name.strip() for name in spec.split(",") if name.strip()]
    unknown = [name for name in names if name not in MODEL_NAMES]
    if unknown:
        raise SystemExit(f"unknown models {unknown}; choose from {', '.join(MODEL_NAMES)}")
    return names  # type: ignore[return-value]


def _load(path: Path) -> tuple[pd.DataFrame, float]:
    started = time.perf_counter()
    raw = read_candle_file(path)
    clean = clean_candles(
        raw.frame,
        timeframe="1h",
        cfg=QualitySettings(),
        rows_read=raw.rows_read,
        source=str(path),
        format_name=raw.format_name,
    )
    return clean.frame, time.perf_counter() - started


def _row(result: WalkForwardResult, wall: float) -> str:
    m, b, s = result.metrics, result.baselines, result.significance
    low, high = s.roc_auc_ci
    per_fold = sum(f.fit_seconds for f in result.folds) / len(result.folds)
    return (
        f"{result.algorithm:<14}{len(result.folds):>6}{wall:>9.1f}{per_fold:>10.2f}"
        f"{m.roc_auc:>9.4f}  [{low:.3f}, {high:.3f}]{m.accuracy:>9.4f}"
        f"{b.best_accuracy:>9.4f} ({b.best_name}){s.p_value:>9.3f}{m.log_loss:>9.4f}"
    )


def main() -> None:
    """Run the benchmark and print one line per model."""
    args = _parse_args()
    print(f"load average before: {os.getloadavg()}  (cpus: {os.cpu_count()})")
    frame, load_seconds = _load(args.data)
    ml = MLSettings()
    started = time.perf_counter()
    dataset = make_dataset(frame, ml)
    dataset_seconds = time.perf_counter() - started
    print(
        f"candles: {len(frame)} (load+clean {load_seconds:.1f}s); dataset: {dataset.X.shape[0]} "
        f"rows x {dataset.X.shape[1]} features ({dataset_seconds:.1f}s)"
    )
    header = (
        f"{'model':<14}{'folds':>6}{'wall s':>9}{'s/fold':>10}{'roc_auc':>9}  "
        f"{'95% CI':<16}{'accuracy':>9}{'best baseline':>24}{'p-value':>9}{'logloss':>9}"
    )
    print(header)
    compute = ComputeSettings(n_jobs=args.n_jobs)
    for algorithm in _models(args.models):
        started = time.perf_counter()
        result = run_walk_forward(dataset, ml, algorithm=algorithm, compute=compute)
        print(_row(result, time.perf_counter() - started), flush=True)
        fold_aucs = " ".join(f"{f.test_start:%Y-%m}:{f.metrics.roc_auc:.3f}" for f in result.folds)
        print(f"{'':<14}per-fold roc_auc {fold_aucs}", flush=True)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
