"""Benchmark: where a `cryptopred backtest` reaches its peak memory (RSS sampled every 50 ms).

Usage:
    .venv/bin/python -m benchmarks.memory_profile --candles 130000 --timeframe 1m --models lightgbm
    .venv/bin/python -m benchmarks.memory_profile --candles 1000000 --step-bars 100000

Runs the real CLI in this process while a thread samples the resident set size from
/proc/self/statm and, whenever a new peak is reached, the main thread's innermost frames in the
project's code. Prints the peak, the code running at the peak and the highest RSS seen in each
project function, so a copy that lifts the peak can be found without tracemalloc (which slows
the run several-fold and misses memory allocated by C libraries such as LightGBM).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

from benchmarks.memory_scaling import ROOT, backtest_args, write_candles

PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20
INTERVAL_SECONDS = 0.05


def rss_mb() -> float:
    """Resident set size of this process in MB."""
    with Path("/proc/self/statm").open(encoding="ascii") as statm:
        return int(statm.read().split()[1]) * PAGE_MB


def project_frames(thread_id: int) -> list[str]:
    """The frames of a thread that are in this project (not libraries), innermost first."""
    frame = sys._current_frames().get(thread_id)
    if frame is None:
        return ["?"]
    stack = [f for f in traceback.extract_stack(frame) if str(ROOT) in f.filename]
    stack = [f for f in stack if "/benchmarks/" not in f.filename and ".venv" not in f.filename]
    return [f"{Path(f.filename).stem}.{f.name}:{f.lineno}" for f in stack[::-1]] or ["?"]


def phase_of(frames: list[str]) -> str:
    """The step of the command: the frame called by `single_command` or `run_backtest`."""
    outer = frames[::-1]
    for caller in ("run.run_backtest", "cli.single_command"):
        found = [i for i, name in enumerate(outer) if name.startswith(caller)]
        if found and found[0] + 1 < len(outer):
            return outer[found[0] + 1]
    return outer[0]


class Sampler(threading.Thread):
    """Samples RSS; keeps the peak with its location and the maximum per innermost function."""

    def __init__(self, thread_id: int) -> None:
        super().__init__(daemon=True)
        self.thread_id = thread_id
        self.peak = 0.0
        self.where = ""
        self.by_function: dict[str, float] = {}
        self.by_phase: dict[str, float] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(INTERVAL_SECONDS):
            rss = rss_mb()
            frames = project_frames(self.thread_id)
            self.by_function[frames[0]] = max(self.by_function.get(frames[0], 0.0), rss)
            phase = phase_of(frames)
            self.by_phase[phase] = max(self.by_phase.get(phase, 0.0), rss)
            if rss > self.peak:
                self.peak, self.where = rss, " < ".join(frames[:4])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candles", type=int, default=130_000)
    parser.add_argument("--timeframe", default="1m")
    parser.add_argument("--models", default="lightgbm")
    parser.add_argument("--step-bars", type=int, default=None, help="walk_forward.step_bars")
    parser.add_argument("--top", type=int, default=15, help="functions listed")
    args = parser.parse_args()
    from cli.main import app  # after the argument check: importing the CLI takes a second

    with tempfile.TemporaryDirectory(prefix="bench-memprof-") as tmp:
        root = Path(tmp)
        data = root / "candles.csv"
        write_candles(data, args.candles, args.timeframe, seed=7)
        argv = backtest_args(root, data, args.models, args.timeframe, args.step_bars)
        argv += ["--timeframe", args.timeframe]
        sampler = Sampler(threading.get_ident())
        base = rss_mb()
        sampler.start()
        started = time.perf_counter()
        try:
            app(argv, standalone_mode=False)
        finally:
            sampler.stopped.set()
            sampler.join()
    wall = time.perf_counter() - started
    print(f"{args.candles:,} {args.timeframe} candles, {args.models}: wall {wall:.1f} s")
    print(f"RSS before {base:.0f} MB, peak {sampler.peak:.0f} MB at {sampler.where}")
    print(f"load average {os.getloadavg()} on {os.cpu_count()} CPUs (shared)")
    print("highest RSS in each step of the command (in order):")
    for phase, peak in sampler.by_phase.items():
        print(f"{peak:>8.0f} MB  {phase}")
    print("highest RSS in each function (top):")
    ranked = sorted(sampler.by_function.items(), key=lambda item: -item[1])[: args.top]
    for function, peak in ranked:
        print(f"{peak:>8.0f} MB  {function}")


if __name__ == "__main__":
    main()
