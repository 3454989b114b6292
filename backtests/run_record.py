"""The run record: one row per backtest in `storage.db_url` (headline metrics, report paths)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from backtests.report import ReportFiles
from backtests.report_json import json_ready
from backtests.run import BacktestResult, ModelBacktest
from core.settings import Settings
from core.timeframes import to_epoch_ms
from storage.db import init_db, make_engine, make_session_factory, safe_url, session_scope
from storage.repository import NewBacktestRun, add_backtest_run

logger = logging.getLogger(__name__)

_HEADLINE_KEYS = ("total_return", "buy_and_hold_return", "sharpe", "max_drawdown", "n_trades")


def headline_metrics(model: ModelBacktest) -> dict[str, Any]:
    """The few numbers the dashboard lists per model of a run."""
    out: dict[str, Any] = {key: getattr(model.trading, key) for key in _HEADLINE_KEYS}
    out.update(
        accuracy=model.classification.accuracy,
        roc_auc=model.classification.roc_auc,
        n_predictions=model.classification.n,
        p_value=model.significance.p_value,
        best_baseline=model.significance.baseline,
        best_baseline_accuracy=model.significance.baseline_accuracy,
        break_even_bps=model.fee_sensitivity.break_even_bps,
        in_sample=model.in_sample,
    )
    return dict(json_ready(out))


def stored_path(path: Path, configured: Path) -> str:
    """Relative to the configured reports directory when inside it (`--out` elsewhere: absolute)."""
    try:
        return path.resolve().relative_to(configured.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def record_run(result: BacktestResult, files: ReportFiles, settings: Settings) -> str:
    """Store the run (id, time, config hash, period, headline metrics, report paths).

    Raises:
        StorageError: the database cannot be opened, migrated or written.
    """
    configured = settings.backtest.reports_dir
    run = NewBacktestRun(
        run_id=result.run_id,
        created_ms=to_epoch_ms(result.created_at),
        config_hash=result.config_hash,
        symbol=result.symbol,
        timeframe=result.timeframe,
        models=tuple(m.algorithm for m in result.models),
        period_start_ms=to_epoch_ms(result.period_start.to_pydatetime()),
        period_end_ms=to_epoch_ms(result.period_end.to_pydatetime()),
        metrics={m.algorithm: headline_metrics(m) for m in result.models},
        model_ids={m.algorithm: m.model_id for m in result.models if m.model_id},
        report_path=stored_path(files.html, configured),
        json_path=stored_path(files.json, configured),
    )
    store_run(run, settings)
    return result.run_id


def store_run(run: NewBacktestRun, settings: Settings) -> None:
    """Insert one run record into `storage.db_url` (creating or migrating the schema first).

    Raises:
        StorageError: the database cannot be opened, migrated or written.
    """
    engine = make_engine(settings.storage.db_url, busy_timeout_ms=settings.storage.busy_timeout_ms)
    try:
        init_db(engine)
        with session_scope(make_session_factory(engine), operation="record the backtest run") as s:
            add_backtest_run(s, run)
    finally:
        engine.dispose()
    logger.info("Recorded backtest run %s in %s", run.run_id, safe_url(settings.storage.db_url))
