"""Benchmark: wall time of `cryptopred backtest` on the shared BTC 1h file (target <= 60 s).

Usage:
    .venv/bin/python -m benchmarks.backtest_cli                       # LightGBM, default folds
    .venv/bin/python -m benchmarks.backtest_cli --models lightgbm,logreg --repeat 3
    .venv/bin/python -m benchmarks.backtest_cli --data PATH

Runs the real console script in a subprocess (settings at their defaults, working paths in a
temporary directory), so the time includes start-up, loading and cleaning the CSV, the
walk-forward fits, backtrader, the fee sweep, the report files and the run record. Prints the
machine load too: other jobs may share the 2 vCPUs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "Binance_BTCUSDT_1h.csv"
TARGET_SECONDS = 60.0


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="candle file (1h)")
    parser.add_argument("--models", default="lightgbm", help="comma-separated model names")
    parser.add_argument("--repeat", type=int, default=1, help="runs (the median is reported)")
    return parser.parse_args()


def _config(root: Path) -> Path:
    config = {
        "ml": {"registry_dir": str(root / "models")},
        "data": {"cache_dir": str(root / "cache")},
        "backtest": {"reports_dir": str(root / "reports")},
        "storage": {"db_url": f"sqlite:///{root / 'cryptopred.db'}"},
        "logging": {"level": "WARNING"},
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _run_once(data: Path, models: str) -> tuple[float, list[str]]:
    cryptopred = Path(sys.executable).parent / "cryptopred"
    with tempfile.TemporaryDirectory(prefix="bench-backtest-") as tmp:
        root = Path(tmp)
        command = [str(cryptopred), "--config", str(_config(root)), "backtest"]
        command += ["--data", str(data), "--models", models]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"cryptopred backtest failed ({done.returncode}):\n{done.stderr}")
        html = Path(done.stdout.strip().splitlines()[-1])
        return wall, _summary(html)


def _summary(html: Path) -> list[str]:
    payload: dict[str, Any] = json.loads((html.parent / "report.json").read_text())
    html_kb = html.stat().st_size / 1e3
    period, hold = payload["period"], payload["buy_and_hold"]["total_return"]
    lines = [
        f"tested {period['start'][:16]} .. {period['end'][:16]} ({period['n_candles']:,} "
        f"candles); HTML {html_kb:.0f} kB; buy-and-hold {hold:+.2%}"
    ]
    models = {model["algorithm"]: model for model in payload["models"]}
    for row in payload["leaderboard"]:
        model = models[row["algorithm"]]
        sig = model["significance"]
        lines.append(
            f"{row['algorithm']:<14} return {row['total_return']:+.2%} (vs B&H "
            f"{row['excess_return'] * 100:+.1f} pp) Sharpe {row['sharpe']:.2f} max DD "
            f"{row['max_drawdown']:.1%} trades {row['n_trades']} | accuracy {row['accuracy']:.4f} "
            f"ROC-AUC {row['roc_auc']:.4f} vs best baseline {sig['baseline']} "
            f"{sig['baseline_accuracy']:.4f} p={row['p_value']:.2g} | break-even "
            f"{model['fee_sensitivity']['note']}"
        )
    return lines


def main() -> None:
    """Run the CLI `--repeat` times and print wall times and the headline figures."""
    args = _parse_args()
    print(f"load average before: {os.getloadavg()}  (cpus: {os.cpu_count()})")
    walls = []
    last: list[str] = []
    for i in range(args.repeat):
        wall, last = _run_once(args.data, args.models)
        walls.append(wall)
        print(f"run {i + 1}: {wall:.1f} s", flush=True)
    median = statistics.median(walls)
    verdict = "OK" if median <= TARGET_SECONDS else "TOO SLOW"
    print(
        f"cryptopred backtest --models {args.models}: median {median:.1f} s wall ({verdict}, "
        f"target <= {TARGET_SECONDS:.0f} s)"
    )
    print("\n".join(last))
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
