"""Paper trading records and queries: one mark per (market, candle), the paper orders, and the
one decision per candle the paper account trades (the newest logged prediction of it)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.types import Signal
from storage.models import PaperMarkRow, PaperOrderRow, PredictionRow
from storage.repository import insert_ignoring_duplicates

logger = logging.getLogger(__name__)

OrderRole = Literal["entry", "exit"]
OrderStatus = Literal["filled", "rejected"]
MARK_KEY = ("exchange", "symbol", "timeframe", "candle_open_ms")
ORDER_KEY = ("exchange", "symbol", "timeframe", "fill_open_ms", "role")
_CHUNK_ROWS = 400  # 16 values a row: far below SQLite's 32,766-variable limit


@dataclass(frozen=True, slots=True)
class PaperMark:
    """A market's paper account after one candle.

    `cash`/`units` are the book after the candle (fills at its open included) and
    `equity = cash + units * close`; `target_side`/`target_size` are the position decided at
    the candle's close (filled at the next open), `model_id` the model that decided it
    (None when no prediction was logged for the candle: the previous target stands).
    """

    exchange: str
    symbol: str
    timeframe: str
    candle_open_ms: int
    open: float
    high: float
    low: float
    close: float
    cash: float
    units: float
    equity: float
    target_side: Signal
    target_size: float
    model_id: str | None


@dataclass(frozen=True, slots=True)
class PaperOrder:
    """An order decided at the close of `decision_open_ms` and filled at the open of
    `fill_open_ms` (signed `units`, slipped `price`, `fee`), or refused for lack of cash."""

    exchange: str
    symbol: str
    timeframe: str
    decision_open_ms: int
    fill_open_ms: int
    role: OrderRole
    status: OrderStatus
    units: float
    price: float
    fee: float
    model_id: str | None


@dataclass(frozen=True, slots=True)
class MarketDecision:
    """The decision the paper account trades at one candle's close."""

    candle_open_ms: int
    signal: Signal
    size: float | None
    model_id: str


def insert_paper(session: Session, marks: Sequence[PaperMark], orders: Sequence[PaperOrder]) -> int:
    """Insert marks and orders, skipping any already recorded (two bots, a repeated tick).

    Returns:
        How many marks were new.
    """
    new = 0
    for start in range(0, len(marks), _CHUNK_ROWS):
        values = [dataclasses.asdict(mark) for mark in marks[start : start + _CHUNK_ROWS]]
        stmt = insert_ignoring_duplicates(session, values, table=PaperMarkRow, key=MARK_KEY)
        new += len(session.execute(stmt).all())
    for start in range(0, len(orders), _CHUNK_ROWS):
        values = [dataclasses.asdict(order) for order in orders[start : start + _CHUNK_ROWS]]
        stmt = insert_ignoring_duplicates(session, values, table=PaperOrderRow, key=ORDER_KEY)
        session.execute(stmt).all()
    logger.debug("Inserted %d new of %d paper marks", new, len(marks))
    return new


def last_paper_mark(
    session: Session, *, exchange: str, symbol: str, timeframe: str
) -> PaperMark | None:
    """The newest mark of a market's paper account (None before its first)."""
    stmt = (
        select(PaperMarkRow)
        .where(
            PaperMarkRow.exchange == exchange,
            PaperMarkRow.symbol == symbol,
            PaperMarkRow.timeframe == timeframe,
        )
        .order_by(PaperMarkRow.candle_open_ms.desc())
        .limit(1)
    )
    row = session.scalars(stmt).first()
    return None if row is None else _to_mark(row)


def list_paper_marks(
    session: Session, *, symbol: str, timeframe: str, limit: int | None = None
) -> list[PaperMark]:
    """A market's paper marks, oldest first (with `limit`, the newest `limit` of them)."""
    stmt = (
        select(PaperMarkRow)
        .where(PaperMarkRow.symbol == symbol, PaperMarkRow.timeframe == timeframe)
        .order_by(PaperMarkRow.candle_open_ms.desc(), PaperMarkRow.exchange)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    marks = [_to_mark(row) for row in session.scalars(stmt)]
    marks.reverse()
    return marks


def list_paper_orders(
    session: Session, *, symbol: str, timeframe: str, limit: int | None = None
) -> list[PaperOrder]:
    """A market's paper orders, oldest first (with `limit`, the newest `limit` of them)."""
    stmt = (
        select(PaperOrderRow)
        .where(PaperOrderRow.symbol == symbol, PaperOrderRow.timeframe == timeframe)
        .order_by(PaperOrderRow.fill_open_ms.desc(), PaperOrderRow.id.desc())
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    orders = [_to_order(row) for row in session.scalars(stmt)]
    orders.reverse()
    return orders


def market_decisions(
    session: Session, *, exchange: str, symbol: str, timeframe: str, from_ms: int, to_ms: int
) -> list[MarketDecision]:
    """One decision per candle in [from_ms, to_ms], oldest first: the candle's newest logged
    prediction (highest id) when several models logged it, as `bot.position` reads them."""
    market = (
        PredictionRow.exchange == exchange,
        PredictionRow.symbol == symbol,
        PredictionRow.timeframe == timeframe,
        PredictionRow.candle_open_ms >= from_ms,
        PredictionRow.candle_open_ms <= to_ms,
    )
    newest = (
        select(func.max(PredictionRow.id)).where(*market).group_by(PredictionRow.candle_open_ms)
    )
    stmt = (
        select(PredictionRow)
        .where(PredictionRow.id.in_(newest))
        .order_by(PredictionRow.candle_open_ms)
    )
    return [
        MarketDecision(row.candle_open_ms, cast(Any, row.signal), row.size, row.model_id)
        for row in session.scalars(stmt)
    ]


def _to_mark(row: PaperMarkRow) -> PaperMark:
    return PaperMark(
        **{field.name: getattr(row, field.name) for field in dataclasses.fields(PaperMark)}
    )


def _to_order(row: PaperOrderRow) -> PaperOrder:
    return PaperOrder(
        **{field.name: getattr(row, field.name) for field in dataclasses.fields(PaperOrder)}
    )
