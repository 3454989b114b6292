"""SQLAlchemy 2 ORM models: predictions, bot runs, backtest runs and model events (epoch ms)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Deterministic constraint names, so later Alembic (batch) migrations can address them on
# SQLite and PostgreSQL alike.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
IntId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Declarative base holding the project's metadata."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class PredictionRow(Base):
    """One logged prediction from a closed candle, plus its outcome once known."""

    __tablename__ = "predictions"
    __table_args__ = (
        UniqueConstraint(
            "exchange",
            "symbol",
            "timeframe",
            "candle_open_ms",
            "model_id",
            name="uq_predictions_candle_model",
        ),
        Index("ix_predictions_symbol_timeframe_open", "symbol", "timeframe", "candle_open_ms"),
        Index("ix_predictions_open_id", "candle_open_ms", "id"),
        CheckConstraint("direction IN ('UP', 'DOWN')", name="direction"),
        CheckConstraint("signal IN (-1, 0, 1)", name="signal"),
        CheckConstraint("proba_up >= 0 AND proba_up <= 1", name="proba_up"),
    )

    id: Mapped[int] = mapped_column(IntId, primary_key=True, autoincrement=True)
    exchange: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(64))
    timeframe: Mapped[str] = mapped_column(String(8))
    candle_open_ms: Mapped[int] = mapped_column(BigInteger)
    target_close_ms: Mapped[int] = mapped_column(BigInteger)
    horizon_bars: Mapped[int] = mapped_column(Integer)
    proba_up: Mapped[float] = mapped_column(Float)
    direction: Mapped[str] = mapped_column(String(4))
    signal: Mapped[int] = mapped_column(SmallInteger)
    size: Mapped[float | None] = mapped_column(Float)
    policy_source: Mapped[str | None] = mapped_column(String(64))
    threshold: Mapped[float] = mapped_column(Float)
    model_id: Mapped[str] = mapped_column(String(128))
    created_ms: Mapped[int] = mapped_column(BigInteger)
    latency_ms: Mapped[float] = mapped_column(Float)
    is_backfill: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    actual_return: Mapped[float | None] = mapped_column(Float)
    actual_direction: Mapped[str | None] = mapped_column(String(4))
    is_correct: Mapped[bool | None] = mapped_column(Boolean)
    resolved_ms: Mapped[int | None] = mapped_column(BigInteger)


class BotRunRow(Base):
    """Heartbeat of one bot process: status, tick count and error counters."""

    __tablename__ = "bot_runs"
    __table_args__ = (
        CheckConstraint("status IN ('running', 'stopped', 'failed')", name="status"),
        Index("ix_bot_runs_started", "started_ms"),
    )

    id: Mapped[int] = mapped_column(IntId, primary_key=True, autoincrement=True)
    started_ms: Mapped[int] = mapped_column(BigInteger)
    last_tick_ms: Mapped[int | None] = mapped_column(BigInteger)
    finished_ms: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    ticks: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    predictions_written: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    temporary_errors: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    data_errors: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    other_errors: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)


class BacktestRunRow(Base):
    """A recorded `cryptopred backtest` run with its headline metrics and report paths."""

    __tablename__ = "backtest_runs"
    __table_args__ = (Index("ix_backtest_runs_created", "created_ms"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    config_hash: Mapped[str] = mapped_column(String(128))
    symbol: Mapped[str] = mapped_column(String(64))
    timeframe: Mapped[str] = mapped_column(String(8))
    models: Mapped[list[str]] = mapped_column(JSON)
    period_start_ms: Mapped[int] = mapped_column(BigInteger)
    period_end_ms: Mapped[int] = mapped_column(BigInteger)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    report_path: Mapped[str | None] = mapped_column(String(1024))
    json_path: Mapped[str | None] = mapped_column(String(1024))
    model_ids: Mapped[dict[str, Any]] = mapped_column(JSON)


class ModelEventRow(Base):
    """A model lifecycle decision: promoted, rejected or retrained, with the reason."""

    __tablename__ = "model_events"
    __table_args__ = (
        CheckConstraint("event IN ('promoted', 'rejected', 'retrained')", name="event"),
        Index("ix_model_events_symbol_timeframe_created", "symbol", "timeframe", "created_ms"),
    )

    id: Mapped[int] = mapped_column(IntId, primary_key=True, autoincrement=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    symbol: Mapped[str] = mapped_column(String(64))
    timeframe: Mapped[str] = mapped_column(String(8))
    model_id: Mapped[str] = mapped_column(String(128))
    previous_model_id: Mapped[str | None] = mapped_column(String(128))
    event: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class PaperMarkRow(Base):
    """One candle of a market's paper account: its prices, the book after it, the target."""

    __tablename__ = "paper_marks"
    __table_args__ = (
        UniqueConstraint(
            "exchange", "symbol", "timeframe", "candle_open_ms", name="uq_paper_marks_candle"
        ),
        CheckConstraint("target_side IN (-1, 0, 1)", name="target_side"),
    )

    id: Mapped[int] = mapped_column(IntId, primary_key=True, autoincrement=True)
    exchange: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(64))
    timeframe: Mapped[str] = mapped_column(String(8))
    candle_open_ms: Mapped[int] = mapped_column(BigInteger)
    open: Mapped[float] = mapped_column(Float)
    high: Mapped[float] = mapped_column(Float)
    low: Mapped[float] = mapped_column(Float)
    close: Mapped[float] = mapped_column(Float)
    cash: Mapped[float] = mapped_column(Float)
    units: Mapped[float] = mapped_column(Float)
    equity: Mapped[float] = mapped_column(Float)
    target_side: Mapped[int] = mapped_column(SmallInteger)
    target_size: Mapped[float] = mapped_column(Float)
    model_id: Mapped[str | None] = mapped_column(String(128))


class PaperOrderRow(Base):
    """A paper order decided at one candle's close and filled (or refused) at the next open."""

    __tablename__ = "paper_orders"
    __table_args__ = (
        UniqueConstraint(
            "exchange", "symbol", "timeframe", "fill_open_ms", "role", name="uq_paper_orders_fill"
        ),
        CheckConstraint("role IN ('entry', 'exit')", name="role"),
        CheckConstraint("status IN ('filled', 'rejected')", name="status"),
    )

    id: Mapped[int] = mapped_column(IntId, primary_key=True, autoincrement=True)
    exchange: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(64))
    timeframe: Mapped[str] = mapped_column(String(8))
    decision_open_ms: Mapped[int] = mapped_column(BigInteger)
    fill_open_ms: Mapped[int] = mapped_column(BigInteger)
    role: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(8))
    units: Mapped[float] = mapped_column(Float)
    price: Mapped[float] = mapped_column(Float)
    fee: Mapped[float] = mapped_column(Float)
    model_id: Mapped[str | None] = mapped_column(String(128))
