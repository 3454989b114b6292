"""Initial schema: predictions, bot_runs, backtest_runs, model_events.

Revision ID: 0001
Revises:
Create Date: 2026-11-26 22:33:17
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.Column[int]:
    # BIGINT on PostgreSQL; exactly INTEGER PRIMARY KEY on SQLite, which auto-increments.
    return sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        autoincrement=True,
        nullable=False,
    )


def _counter(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.Integer(), server_default=sa.text("0"), nullable=False)


def upgrade() -> None:
    """Create the four tables and their indexes."""
    op.create_table(
        "predictions",
        _id(),
        sa.Column("exchange", sa.String(length=32), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("timeframe", sa.String(length=8), nullable=False),
        sa.Column("candle_open_ms", sa.BigInteger(), nullable=False),
        sa.Column("target_close_ms", sa.BigInteger(), nullable=False),
        sa.Column("horizon_bars", sa.Integer(), nullable=False),
        sa.Column("proba_up", sa.Float(), nullable=False),
        sa.Column("direction", sa.String(length=4), nullable=False),
        sa.Column("signal", sa.SmallInteger(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("model_id", sa.String(length=128), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("is_backfill", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("actual_return", sa.Float(), nullable=True),
        sa.Column("actual_direction", sa.String(length=4), nullable=True),
        sa.Column("is_correct", sa.Boolean(), nullable=True),
        sa.Column("resolved_ms", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("direction IN ('UP', 'DOWN')", name=op.f("ck_predictions_direction")),
        sa.CheckConstraint("proba_up >= 0 AND proba_up <= 1", name=op.f("ck_predictions_proba_up")),
        sa.CheckConstraint("signal IN (-1, 0, 1)", name=op.f("ck_predictions_signal")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_predictions")),
        sa.UniqueConstraint(
            "exchange",
            "symbol",
            "timeframe",
            "candle_open_ms",
            "model_id",
            name="uq_predictions_candle_model",
        ),
    )
    op.create_index("ix_predictions_open_id", "predictions", ["candle_open_ms", "id"])
    op.create_index(
        "ix_predictions_symbol_timeframe_open",
        "predictions",
        ["symbol", "timeframe", "candle_open_ms"],
    )

    op.create_table(
        "bot_runs",
        _id(),
        sa.Column("started_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_tick_ms", sa.BigInteger(), nullable=True),
        sa.Column("finished_ms", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        _counter("ticks"),
        _counter("predictions_written"),
        _counter("temporary_errors"),
        _counter("data_errors"),
        _counter("other_errors"),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "status IN ('running', 'stopped', 'failed')", name=op.f("ck_bot_runs_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bot_runs")),
    )
    op.create_index("ix_bot_runs_started", "bot_runs", ["started_ms"])

    op.create_table(
        "backtest_runs",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("config_hash", sa.String(length=128), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("timeframe", sa.String(length=8), nullable=False),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("period_start_ms", sa.BigInteger(), nullable=False),
        sa.Column("period_end_ms", sa.BigInteger(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("report_path", sa.String(length=1024), nullable=True),
        sa.Column("json_path", sa.String(length=1024), nullable=True),
        sa.Column("model_ids", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backtest_runs")),
    )
    op.create_index("ix_backtest_runs_created", "backtest_runs", ["created_ms"])

    op.create_table(
        "model_events",
        _id(),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("timeframe", sa.String(length=8), nullable=False),
        sa.Column("model_id", sa.String(length=128), nullable=False),
        sa.Column("previous_model_id", sa.String(length=128), nullable=True),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.CheckConstraint(
            "event IN ('promoted', 'rejected', 'retrained')", name=op.f("ck_model_events_event")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_events")),
    )
    op.create_index(
        "ix_model_events_symbol_timeframe_created",
        "model_events",
        ["symbol", "timeframe", "created_ms"],
    )


def downgrade() -> None:
    """Drop everything the upgrade created."""
    for table in ("model_events", "backtest_runs", "bot_runs", "predictions"):
        op.drop_table(table)
