"""Benchmark: what the decision layer adds to a backtest (target: the policy search <= +25 %).

Usage:
    .venv/bin/python -m benchmarks.decision_overhead                  # BTC 1h, LightGBM, 3 rounds
    .venv/bin/python -m benchmarks.decision_overhead --rounds 5 --horizons 1,4,24

Loads and cleans the shared BTC file once, runs the walk-forward once (the model-fitting part,
timed), then in interleaved rounds times (a) the trading part of `run_backtest` in
`decision.mode: fixed` and `auto` (backtrader, twin, fee sweep, verdict statistics: these depend
on how much each path trades, so they are shown, not compared), and (b) the search itself:
`backtests.decisions.decide` over every candidate plus the selection statistics (DSR, PBO,
bootstrap, hindsight grid) against the same for the single fixed policy. (b) minus its fixed
counterpart, over a whole fixed-mode backtest (load + fit + trading), is the search's cost
(target <= 25 %). With `--horizons` it also reports the fitting time of several horizons
against one (target: at most the number of horizons).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import pandas as pd

from backtests.decisions import decide, fold_windows
from backtests.metrics import buy_and_hold_equity
from backtests.scoring import score_walk_forward
from backtests.trading import strategy_inputs, stream_of, trade_model, trade_selection
from backtests.verdict import selection_stats
from core.settings import Settings
from data.candles import prepare_candles

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "Binance_BTCUSDT_1h.csv"
TARGET_SHARE = 0.25


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--horizons", default="", help="also time fitting these horizons, e.g. 1,4,24"
    )
    return parser.parse_args()


def _trade_seconds(scored, used: pd.DataFrame, settings: Settings) -> tuple[float, float]:
    """(trading part of run_backtest, search + selection statistics alone), seconds."""
    first = scored[0].predictions.index[0]
    tested = used.loc[first : min(m.predictions.index[-1] for m in scored)]
    extras = strategy_inputs(used, settings)
    bounds = [(f.number, f.test_start, f.test_end) for f in scored[0].folds]
    windows = fold_windows(pd.DatetimeIndex(tested.index), bounds)
    started = time.perf_counter()
    models = [trade_model(m, tested, extras, settings, "1h", windows, None) for m in scored]
    hold = buy_and_hold_equity(tested, cash=settings.strategy.cash)
    selection = trade_selection(models, tested, extras, settings, "1h", windows, hold)
    trading = time.perf_counter() - started
    started = time.perf_counter()
    decision = decide(tested, [stream_of(m, tested) for m in scored], windows, settings)
    selection_stats(decision, selection.run, tested, hold, settings, timeframe="1h")
    return trading, time.perf_counter() - started


def _with_mode(settings: Settings, mode: str) -> Settings:
    return settings.model_copy(
        update={"decision": settings.decision.model_copy(update={"mode": mode})}
    )


def main() -> None:
    """Fit once, then interleave fixed/auto trading rounds; print medians and ratios."""
    args = _parse_args()
    print(f"load average before: {os.getloadavg()}  (cpus: {os.cpu_count()})")
    settings = Settings()
    started = time.perf_counter()
    used = prepare_candles(settings, file=args.data).frame
    load = time.perf_counter() - started
    started = time.perf_counter()
    scored = score_walk_forward(used, settings, algorithms=["lightgbm"])
    fit = time.perf_counter() - started
    trading: dict[str, list[float]] = {"fixed": [], "auto": []}
    search: dict[str, list[float]] = {"fixed": [], "auto": []}
    for round_number in range(args.rounds):
        for mode in ("fixed", "auto") if round_number % 2 == 0 else ("auto", "fixed"):
            whole_trade, searched = _trade_seconds(scored, used, _with_mode(settings, mode))
            trading[mode].append(whole_trade)
            search[mode].append(searched)
    fixed, auto = (statistics.median(trading[m]) for m in ("fixed", "auto"))
    search_fixed, search_auto = (statistics.median(search[m]) for m in ("fixed", "auto"))
    whole = load + fit + fixed
    share = (search_auto - search_fixed) / whole
    print(f"load+clean {load:.1f} s, walk-forward fit {fit:.1f} s")
    print(f"trading part: fixed {fixed:.2f} s, auto {auto:.2f} s (medians of {args.rounds})")
    print(f"decide + selection statistics: fixed {search_fixed:.2f} s, auto {search_auto:.2f} s")
    verdict = "OK" if share <= TARGET_SHARE else "TOO SLOW"
    print(
        f"policy search adds {search_auto - search_fixed:.2f} s = {share:.1%} of a fixed-mode "
        f"backtest ({whole:.1f} s) [{verdict}, target <= {TARGET_SHARE:.0%}]"
    )
    if args.horizons:
        horizons = tuple(int(h) for h in args.horizons.split(","))
        started = time.perf_counter()
        score_walk_forward(used, settings, algorithms=["lightgbm"], horizons=horizons)
        several = time.perf_counter() - started
        print(
            f"fitting {len(horizons)} horizons {horizons}: {several:.1f} s = "
            f"{several / fit:.2f}x one horizon (target <= {len(horizons)}x)"
        )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
