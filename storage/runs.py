"""Run records: bot heartbeats, backtest runs and model events (re-exported by `repository`)."""

from __future__ import annotations

import logging
from typing import Any, cast

from sqlalchemy import Text, select, update
from sqlalchemy import cast as cast_sql
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from core.errors import StorageError
from storage.models import BacktestRunRow, BotRunRow, ModelEventRow
from storage.records import (
    BacktestRun,
    BotRun,
    BotRunStatus,
    BotStatus,
    ModelEvent,
    ModelEventKind,
    NewBacktestRun,
    json_safe,
)

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------ bot runs
def start_bot_run(session: Session, *, started_ms: int, host: str, pid: int) -> int:
    """Open a heartbeat row with status "running"; returns its id."""
    row = BotRunRow(started_ms=started_ms, status="running", host=host, pid=pid)
    session.add(row)
    session.flush()
    logger.debug("Started bot run %d (host %s, pid %d)", row.id, host, pid)
    return row.id


def record_tick(
    session: Session,
    run_id: int,
    *,
    now_ms: int,
    written: int = 0,
    temporary_errors: int = 0,
    data_errors: int = 0,
    other_errors: int = 0,
    last_error: str | None = None,
) -> None:
    """Count one finished tick: predictions written and errors by kind (added atomically).

    Raises:
        StorageError: no bot run has this id.
    """
    values: dict[str, Any] = {
        "last_tick_ms": now_ms,
        "ticks": BotRunRow.ticks + 1,
        "predictions_written": BotRunRow.predictions_written + written,
        "temporary_errors": BotRunRow.temporary_errors + temporary_errors,
        "data_errors": BotRunRow.data_errors + data_errors,
        "other_errors": BotRunRow.other_errors + other_errors,
    }
    if last_error is not None:
        values["last_error"] = last_error
    _update_bot_run(session, run_id, values, operation="record a tick")


def finish_bot_run(
    session: Session,
    run_id: int,
    *,
    now_ms: int,
    status: BotStatus = "stopped",
    last_error: str | None = None,
) -> None:
    """Mark a bot run as stopped (clean exit) or failed.

    Raises:
        StorageError: no bot run has this id.
    """
    values: dict[str, Any] = {"finished_ms": now_ms, "status": status}
    if last_error is not None:
        values["last_error"] = last_error
    _update_bot_run(session, run_id, values, operation="finish the run")


def _update_bot_run(
    session: Session, run_id: int, values: dict[str, Any], *, operation: str
) -> None:
    stmt = (
        update(BotRunRow)
        .where(BotRunRow.id == run_id)
        .values(values)
        .execution_options(synchronize_session=False)
    )
    if _rowcount(session, stmt) == 0:
        raise StorageError(
            f"Cannot {operation}: bot run {run_id} does not exist; call start_bot_run first "
            "(was the database replaced while the bot was running?)"
        )


def latest_bot_run(
    session: Session, *, now_ms: int | None = None, lost_after_ms: int | None = None
) -> BotRun | None:
    """The most recently started bot run, or None.

    Given `now_ms` and `lost_after_ms`, a "running" run whose last heartbeat (its last tick, or
    its start) is older than `lost_after_ms` comes back as "lost": its process ended without
    finishing the run (kill -9, a crash of the machine), so it will never tick again.
    """
    stmt = select(BotRunRow).order_by(BotRunRow.started_ms.desc(), BotRunRow.id.desc()).limit(1)
    row = session.scalars(stmt).first()
    if row is None:
        return None
    return BotRun(
        id=row.id,
        started_ms=row.started_ms,
        last_tick_ms=row.last_tick_ms,
        finished_ms=row.finished_ms,
        status=_reported_status(row, now_ms=now_ms, lost_after_ms=lost_after_ms),
        ticks=row.ticks,
        predictions_written=row.predictions_written,
        temporary_errors=row.temporary_errors,
        data_errors=row.data_errors,
        other_errors=row.other_errors,
        last_error=row.last_error,
        host=row.host,
        pid=row.pid,
    )


def _reported_status(
    row: BotRunRow, *, now_ms: int | None, lost_after_ms: int | None
) -> BotRunStatus:
    status = cast(BotRunStatus, row.status)
    if status != "running" or now_ms is None or lost_after_ms is None:
        return status
    heartbeat_ms = row.last_tick_ms if row.last_tick_ms is not None else row.started_ms
    return "lost" if now_ms - heartbeat_ms > lost_after_ms else status


# ------------------------------------------------------------------------------ backtests
def add_backtest_run(session: Session, run: NewBacktestRun) -> str:
    """Record a backtest run; returns its id (a duplicate id fails on commit)."""
    session.add(
        BacktestRunRow(
            id=run.run_id,
            created_ms=run.created_ms,
            config_hash=run.config_hash,
            symbol=run.symbol,
            timeframe=run.timeframe,
            models=list(run.models),
            period_start_ms=run.period_start_ms,
            period_end_ms=run.period_end_ms,
            metrics=json_safe(run.metrics),
            report_path=run.report_path,
            json_path=run.json_path,
            model_ids=dict(run.model_ids),
        )
    )
    session.flush()
    return run.run_id


def list_backtest_runs(session: Session, *, limit: int = 50) -> list[BacktestRun]:
    """Backtest runs, newest first."""
    stmt = (
        select(BacktestRunRow)
        .order_by(BacktestRunRow.created_ms.desc(), BacktestRunRow.id.desc())
        .limit(limit)
    )
    return [_to_backtest(row) for row in session.scalars(stmt)]


def get_backtest_run(session: Session, run_id: str) -> BacktestRun | None:
    """One backtest run by id, or None."""
    row = session.get(BacktestRunRow, run_id)
    return None if row is None else _to_backtest(row)


def latest_backtest_for_model(session: Session, model_id: str) -> BacktestRun | None:
    """The newest backtest run whose `model_ids` include `model_id`, or None."""
    # A text pre-filter keeps the scan small; the exact check is done on the decoded JSON.
    as_text = cast_sql(BacktestRunRow.model_ids, Text)
    stmt = (
        select(BacktestRunRow)
        .where(as_text.contains(f'"{model_id}"', autoescape=True))
        .order_by(BacktestRunRow.created_ms.desc(), BacktestRunRow.id.desc())
    )
    for row in session.scalars(stmt):
        if model_id in row.model_ids.values():
            return _to_backtest(row)
    return None


def _to_backtest(row: BacktestRunRow) -> BacktestRun:
    return BacktestRun(
        id=row.id,
        created_ms=row.created_ms,
        config_hash=row.config_hash,
        symbol=row.symbol,
        timeframe=row.timeframe,
        models=tuple(row.models),
        period_start_ms=row.period_start_ms,
        period_end_ms=row.period_end_ms,
        metrics=row.metrics,
        model_ids=dict(row.model_ids),
        report_path=row.report_path,
        json_path=row.json_path,
    )


# ------------------------------------------------------------------------------ model events
def add_model_event(
    session: Session,
    *,
    created_ms: int,
    symbol: str,
    timeframe: str,
    model_id: str,
    event: ModelEventKind,
    reason: str,
    previous_model_id: str | None = None,
    metrics: dict[str, Any] | None = None,
) -> int:
    """Record a promotion, rejection or retraining decision; returns its id."""
    row = ModelEventRow(
        created_ms=created_ms,
        symbol=symbol,
        timeframe=timeframe,
        model_id=model_id,
        previous_model_id=previous_model_id,
        event=event,
        reason=reason,
        metrics=None if metrics is None else json_safe(metrics),
    )
    session.add(row)
    session.flush()
    return row.id


def list_model_events(
    session: Session,
    *,
    symbol: str | None = None,
    timeframe: str | None = None,
    model_id: str | None = None,
    limit: int = 100,
) -> list[ModelEvent]:
    """Model events, newest first, optionally filtered."""
    stmt = select(ModelEventRow)
    if symbol is not None:
        stmt = stmt.where(ModelEventRow.symbol == symbol)
    if timeframe is not None:
        stmt = stmt.where(ModelEventRow.timeframe == timeframe)
    if model_id is not None:
        stmt = stmt.where(ModelEventRow.model_id == model_id)
    stmt = stmt.order_by(ModelEventRow.created_ms.desc(), ModelEventRow.id.desc()).limit(limit)
    return [
        ModelEvent(
            id=row.id,
            created_ms=row.created_ms,
            symbol=row.symbol,
            timeframe=row.timeframe,
            model_id=row.model_id,
            previous_model_id=row.previous_model_id,
            event=cast(ModelEventKind, row.event),
            reason=row.reason,
            metrics=row.metrics,
        )
        for row in session.scalars(stmt)
    ]


def _rowcount(session: Session, stmt: Any) -> int:
    result = cast(CursorResult[Any], session.execute(stmt))
    return int(result.rowcount)
