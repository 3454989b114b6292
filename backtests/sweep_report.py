"""Sweep report: one JSON + HTML with the symbols x models leaderboard, and one run record."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from backtests.plotly_js import PlotlyScript
from backtests.report import ReportFiles, write_report_files
from backtests.report_html import render_page, run_context
from backtests.report_json import (
    HTML_NAME,
    JSON_NAME,
    REPORT_SCHEMA_VERSION,
    json_ready,
    leaderboard_row,
    report_payload,
)
from backtests.run_record import headline_metrics, store_run, stored_path
from backtests.sweep import SweepResult
from core.settings import Settings
from core.timeframes import to_epoch_ms
from data.cache import symbol_slug
from storage.repository import NewBacktestRun
from strategy.costs import to_bps

logger = logging.getLogger(__name__)

SWEEP_SCHEMA_VERSION = 1
"""Bump when a key of the sweep JSON changes meaning or disappears (see SWEEP_SCHEMA.md)."""
SIGNIFICANCE_LEVEL = 0.05
MAX_SYMBOL_CHARS = 64
"""Length of the run record's `symbol` column (VARCHAR(64) on PostgreSQL)."""


def symbols_label(symbols: tuple[str, ...], *, max_chars: int = MAX_SYMBOL_CHARS) -> str:
    """The symbols of a sweep as one short label for the run record.

    >>> symbols_label(("BTC/USDT", "ETH/USDT"))
    'BTC/USDT,ETH/USDT'
    >>> symbols_label(tuple(f"COIN{i}/USDT" for i in range(20)), max_chars=40)
    'COIN0/USDT,COIN1/USDT,COIN2/USDT +17'
    """
    joined = ",".join(symbols)
    if len(joined) <= max_chars:
        return joined
    for keep in range(len(symbols) - 1, 0, -1):
        label = f"{','.join(symbols[:keep])} +{len(symbols) - keep}"
        if len(label) <= max_chars:
            return label
    return f"{len(symbols)} symbols"


def pair_key(symbol: str, algorithm: str) -> str:
    """Key of one (symbol, model) pair in the run record's metrics.

    >>> pair_key("BTC/USDT", "lightgbm")
    'BTC/USDT lightgbm'
    """
    return f"{symbol} {algorithm}"


def sweep_leaderboard(sweep: SweepResult) -> list[dict[str, Any]]:
    """One row per (symbol, model), best return in excess of the symbol's buy-and-hold first."""
    return [
        {"rank": rank, "symbol": run.symbol, **leaderboard_row(model)}
        for rank, (run, model) in enumerate(sweep.leaderboard(), start=1)
    ]


def sweep_verdict(sweep: SweepResult) -> list[str]:
    """Plain-words conclusions across pairs, honest about testing many pairs at once."""
    pairs = sweep.leaderboard()
    n = len(pairs)
    beat = sum(model.excess_return > 0 for _, model in pairs)
    made = sum(model.trading.total_return > 0 for _, model in pairs)
    significant = sum(model.significance.p_value < SIGNIFICANCE_LEVEL for _, model in pairs)
    corrected = sum(model.significance.p_value < SIGNIFICANCE_LEVEL / n for _, model in pairs)
    best_run, best = pairs[0]
    fee_bps = to_bps(sweep.settings.strategy.fee_rate)
    return [
        f"{beat} of {n} (symbol, model) pairs BEAT their symbol's buy-and-hold; "
        f"{made} made money after costs ({fee_bps:g} bps fee per side).",
        f"Best vs buy-and-hold: {best_run.symbol} {best.algorithm}, "
        f"{best.trading.total_return:+.2%} vs {best.trading.buy_and_hold_return:+.2%} "
        f"({best.excess_return * 100:+.1f} pp).",
        f"{significant} of {n} pairs have an accuracy significantly better than their best "
        f"baseline at 5 % (one-sided binomial); about {SIGNIFICANCE_LEVEL * n:.1f} would pass "
        f"by chance alone. With the Bonferroni correction (p < {SIGNIFICANCE_LEVEL / n:.2g}): "
        f"{corrected}.",
    ]


def sweep_payload(sweep: SweepResult) -> dict[str, Any]:
    """The sweep's JSON (schema `SWEEP_SCHEMA_VERSION`, documented in SWEEP_SCHEMA.md).

    `runs` holds one single-run report (REPORT_SCHEMA.md) per symbol.
    """
    compute = sweep.settings.compute
    tasks = [(run.symbol, model.algorithm) for run in sweep.runs for model in run.models]
    payload = {
        "schema_version": SWEEP_SCHEMA_VERSION,
        "kind": "sweep",
        "run_id": sweep.run_id,
        "created_at": sweep.created_at.isoformat(),
        "config_hash": sweep.config_hash,
        "timeframe": sweep.timeframe,
        "symbols": list(sweep.symbols),
        "models": list(sweep.algorithms),
        "compute": compute.model_dump(mode="json"),
        "leaderboard": sweep_leaderboard(sweep),
        "buy_and_hold": {run.symbol: run.buy_and_hold.to_dict() for run in sweep.runs},
        "verdict": sweep_verdict(sweep),
        "runs": [report_payload(run) for run in sweep.runs],
        "tasks": [
            {"symbol": symbol, "algorithm": algorithm, "seconds": seconds}
            for (symbol, algorithm), seconds in zip(tasks, sweep.task_seconds, strict=True)
        ],
        "files": {"html": HTML_NAME, "json": JSON_NAME},
        "seconds": sweep.seconds,
    }
    return dict(json_ready(payload))


def render_sweep_html(sweep: SweepResult, payload: dict[str, Any], *, plotly: PlotlyScript) -> str:
    """The sweep page: verdict and leaderboard, then each symbol's single-run sections."""
    sections = [
        {
            "anchor": symbol_slug(run.symbol),
            **run_context(run, report, chart_prefix=f"{symbol_slug(run.symbol)}-"),
        }
        for run, report in zip(sweep.runs, payload["runs"], strict=True)
    ]
    return render_page(
        "sweep.html",
        sweep=payload,
        sections=sections,
        plotly=plotly,
        report_schema_version=REPORT_SCHEMA_VERSION,
    )


def write_sweep_report(
    sweep: SweepResult, reports_dir: Path, *, self_contained: bool = False
) -> ReportFiles:
    """Write `<reports_dir>/<run_id>/report.json` and `report.html` for the whole sweep."""
    payload = sweep_payload(sweep)
    return write_report_files(
        reports_dir,
        sweep.run_id,
        payload,
        lambda plotly: render_sweep_html(sweep, payload, plotly=plotly),
        self_contained=self_contained,
    )


def record_sweep(sweep: SweepResult, files: ReportFiles, settings: Settings) -> str:
    """Store the sweep as ONE run: metrics keyed by `pair_key(symbol, model)`.

    Raises:
        StorageError: the database cannot be opened, migrated or written.
    """
    configured = settings.backtest.reports_dir
    starts = [run.period_start.to_pydatetime() for run in sweep.runs]
    ends = [run.period_end.to_pydatetime() for run in sweep.runs]
    run = NewBacktestRun(
        run_id=sweep.run_id,
        created_ms=to_epoch_ms(sweep.created_at),
        config_hash=sweep.config_hash,
        symbol=symbols_label(sweep.symbols),
        timeframe=sweep.timeframe,
        models=sweep.algorithms,
        period_start_ms=min(to_epoch_ms(moment) for moment in starts),
        period_end_ms=max(to_epoch_ms(moment) for moment in ends),
        metrics={
            pair_key(result.symbol, model.algorithm): headline_metrics(model)
            for result in sweep.runs
            for model in result.models
        },
        report_path=stored_path(files.html, configured),
        json_path=stored_path(files.json, configured),
    )
    store_run(run, settings)
    return sweep.run_id
