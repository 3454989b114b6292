"""Repository functions: each takes a Session first and returns frozen dataclasses, never rows.

Prediction queries live here; run records (bot heartbeats, backtests, model events) live in
`storage.runs` and are re-exported, so callers import everything from this module.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Select, and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from core.errors import StorageError
from storage.models import Base, PredictionRow
from storage.records import (
    BacktestRun,
    BotRun,
    ModelEvent,
    NewBacktestRun,
    NewPrediction,
    Outcome,
    PredictionPage,
    StoredPrediction,
    decode_cursor,
    direction_of_return,
    encode_cursor,
)
from storage.runs import (
    add_backtest_run,
    add_model_event,
    finish_bot_run,
    get_backtest_run,
    latest_backtest_for_model,
    latest_bot_run,
    list_backtest_runs,
    list_model_events,
    record_tick,
    start_bot_run,
)

logger = logging.getLogger(__name__)

__all__ = [
    "BacktestRun",
    "BotRun",
    "ModelEvent",
    "NewBacktestRun",
    "NewPrediction",
    "Outcome",
    "PredictionPage",
    "StoredPrediction",
    "add_backtest_run",
    "add_model_event",
    "finish_bot_run",
    "get_backtest_run",
    "insert_ignoring_duplicates",
    "insert_predictions",
    "last_prediction_open_ms",
    "latest_backtest_for_model",
    "latest_bot_run",
    "latest_predictions",
    "list_backtest_runs",
    "list_model_events",
    "list_predictions",
    "record_tick",
    "resolve_predictions",
    "resolved_predictions",
    "start_bot_run",
    "unresolved_predictions",
]

PREDICTION_KEY = ("exchange", "symbol", "timeframe", "candle_open_ms", "model_id")
# 16 bound values per row; 500 rows stay far below SQLite's 32,766-variable limit.
_INSERT_CHUNK_ROWS = 500
MAX_PAGE_SIZE = 1000


# ------------------------------------------------------------------------------ predictions
def insert_predictions(session: Session, rows: Sequence[NewPrediction]) -> int:
    """Insert predictions, skipping any whose unique key already exists.

    Uses the dialect's `INSERT ... ON CONFLICT DO NOTHING RETURNING id`, so a repeated tick
    inserts nothing and the count is exact on SQLite and PostgreSQL alike.

    Returns:
        How many rows were new.
    """
    new = 0
    for start in range(0, len(rows), _INSERT_CHUNK_ROWS):
        chunk = rows[start : start + _INSERT_CHUNK_ROWS]
        values = [_prediction_values(row) for row in chunk]
        new += len(session.execute(insert_ignoring_duplicates(session, values)).all())
    logger.debug("Inserted %d new of %d predictions", new, len(rows))
    return new


def insert_ignoring_duplicates(
    session: Session,
    values: list[dict[str, Any]],
    *,
    table: type[Base] = PredictionRow,
    key: Sequence[str] = PREDICTION_KEY,
) -> Any:
    """`INSERT .. ON CONFLICT (key) DO NOTHING RETURNING id` for SQLite and PostgreSQL."""
    dialect = session.get_bind().dialect.name
    id_column = table.__table__.c.id
    if dialect == "sqlite":
        sqlite_stmt = sqlite.insert(table).values(values)
        return sqlite_stmt.on_conflict_do_nothing(index_elements=key).returning(id_column)
    if dialect == "postgresql":
        pg_stmt = postgresql.insert(table).values(values)
        return pg_stmt.on_conflict_do_nothing(index_elements=key).returning(id_column)
    raise StorageError(
        f"Idempotent inserts support SQLite and PostgreSQL, not {dialect!r}; change storage.db_url"
    )


def _prediction_values(row: NewPrediction) -> dict[str, Any]:
    return {
        "exchange": row.exchange,
        "symbol": row.symbol,
        "timeframe": row.timeframe,
        "candle_open_ms": row.candle_open_ms,
        "target_close_ms": row.target_close_ms,
        "horizon_bars": row.horizon_bars,
        "proba_up": float(row.proba_up),
        "direction": row.direction,
        "signal": int(row.signal),
        "threshold": float(row.threshold),
        "model_id": row.model_id,
        "created_ms": row.created_ms,
        "latency_ms": float(row.latency_ms),
        "is_backfill": row.is_backfill,
        "size": None if row.size is None else float(row.size),
        "policy_source": row.policy_source,
    }


def last_prediction_open_ms(
    session: Session, *, exchange: str, symbol: str, timeframe: str, model_id: str
) -> int | None:
    """Open time of the newest candle predicted by `model_id`, or None if there is none."""
    stmt = select(func.max(PredictionRow.candle_open_ms)).where(
        PredictionRow.exchange == exchange,
        PredictionRow.symbol == symbol,
        PredictionRow.timeframe == timeframe,
        PredictionRow.model_id == model_id,
    )
    value = session.execute(stmt).scalar_one_or_none()
    return None if value is None else int(value)


def unresolved_predictions(
    session: Session, *, exchange: str, symbol: str, timeframe: str, target_close_until_ms: int
) -> list[StoredPrediction]:
    """Predictions without an outcome whose target candle closed by `target_close_until_ms`."""
    stmt = (
        select(PredictionRow)
        .where(
            PredictionRow.exchange == exchange,
            PredictionRow.symbol == symbol,
            PredictionRow.timeframe == timeframe,
            PredictionRow.resolved_ms.is_(None),
            PredictionRow.target_close_ms <= target_close_until_ms,
        )
        .order_by(PredictionRow.candle_open_ms, PredictionRow.id)
    )
    return [_to_prediction(row) for row in session.scalars(stmt)]


def resolve_predictions(session: Session, outcomes: Sequence[Outcome]) -> int:
    """Record outcomes; predictions already resolved (or unknown ids) are left alone.

    Returns:
        How many predictions were resolved by this call.
    """
    resolved = 0
    for outcome in outcomes:
        actual = outcome.actual_direction or direction_of_return(outcome.actual_return)
        stmt = (
            update(PredictionRow)
            .where(PredictionRow.id == outcome.prediction_id, PredictionRow.resolved_ms.is_(None))
            .values(
                actual_return=float(outcome.actual_return),
                actual_direction=actual,
                is_correct=PredictionRow.direction == actual,
                resolved_ms=outcome.resolved_ms,
            )
            .execution_options(synchronize_session=False)
        )
        resolved += _rowcount(session, stmt)
    return resolved


def list_predictions(
    session: Session,
    *,
    symbol: str | None = None,
    timeframe: str | None = None,
    since_ms: int | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> PredictionPage:
    """Predictions newest first, keyset-paginated on (candle_open_ms, id).

    Rows inserted between two page requests never shift later pages: the cursor marks a
    position in the key order, not an offset.

    Raises:
        ValueError: `limit` is outside 1..1000 or `cursor` is not a cursor from this function.
    """
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE_SIZE}, got {limit}")
    stmt = _filtered(select(PredictionRow), symbol=symbol, timeframe=timeframe)
    if since_ms is not None:
        stmt = stmt.where(PredictionRow.candle_open_ms >= since_ms)
    if cursor is not None:
        open_ms, prediction_id = decode_cursor(cursor)
        stmt = stmt.where(
            or_(
                PredictionRow.candle_open_ms < open_ms,
                and_(PredictionRow.candle_open_ms == open_ms, PredictionRow.id < prediction_id),
            )
        )
    stmt = stmt.order_by(PredictionRow.candle_open_ms.desc(), PredictionRow.id.desc())
    rows = list(session.scalars(stmt.limit(limit + 1)))
    items = tuple(_to_prediction(row) for row in rows[:limit])
    next_cursor = None
    if len(rows) > limit:
        next_cursor = encode_cursor(items[-1].candle_open_ms, items[-1].id)
    return PredictionPage(items=items, next_cursor=next_cursor)


def resolved_predictions(
    session: Session,
    *,
    symbol: str,
    timeframe: str,
    model_id: str | None = None,
    limit: int | None = None,
) -> list[StoredPrediction]:
    """Resolved predictions oldest first; with `limit`, only the most recent `limit` of them."""
    stmt = _filtered(select(PredictionRow), symbol=symbol, timeframe=timeframe).where(
        PredictionRow.resolved_ms.is_not(None)
    )
    if model_id is not None:
        stmt = stmt.where(PredictionRow.model_id == model_id)
    newest_first = stmt.order_by(PredictionRow.candle_open_ms.desc(), PredictionRow.id.desc())
    if limit is not None:
        newest_first = newest_first.limit(limit)
    rows = [_to_prediction(row) for row in session.scalars(newest_first)]
    rows.reverse()
    return rows


def latest_predictions(session: Session) -> list[StoredPrediction]:
    """The newest prediction of each (exchange, symbol, timeframe), sorted by symbol."""
    key = (PredictionRow.exchange, PredictionRow.symbol, PredictionRow.timeframe)
    ranked = select(
        PredictionRow.id,
        func.row_number()
        .over(
            partition_by=key,
            order_by=(PredictionRow.candle_open_ms.desc(), PredictionRow.id.desc()),
        )
        .label("position"),
    ).subquery()
    stmt = (
        select(PredictionRow)
        .join(ranked, ranked.c.id == PredictionRow.id)
        .where(ranked.c.position == 1)
        .order_by(PredictionRow.symbol, PredictionRow.timeframe, PredictionRow.exchange)
    )
    return [_to_prediction(row) for row in session.scalars(stmt)]


def _filtered(
    stmt: Select[PredictionRow], *, symbol: str | None, timeframe: str | None
) -> Select[PredictionRow]:
    if symbol is not None:
        stmt = stmt.where(PredictionRow.symbol == symbol)
    if timeframe is not None:
        stmt = stmt.where(PredictionRow.timeframe == timeframe)
    return stmt


def _to_prediction(row: PredictionRow) -> StoredPrediction:
    return StoredPrediction(
        id=row.id,
        exchange=row.exchange,
        symbol=row.symbol,
        timeframe=row.timeframe,
        candle_open_ms=row.candle_open_ms,
        target_close_ms=row.target_close_ms,
        horizon_bars=row.horizon_bars,
        proba_up=row.proba_up,
        direction=cast(Any, row.direction),
        signal=cast(Any, row.signal),
        threshold=row.threshold,
        model_id=row.model_id,
        created_ms=row.created_ms,
        latency_ms=row.latency_ms,
        is_backfill=row.is_backfill,
        size=row.size,
        policy_source=row.policy_source,
        actual_return=row.actual_return,
        actual_direction=cast(Any, row.actual_direction),
        is_correct=row.is_correct,
        resolved_ms=row.resolved_ms,
    )


def _rowcount(session: Session, stmt: Any) -> int:
    result = cast(CursorResult[Any], session.execute(stmt))
    return int(result.rowcount)
