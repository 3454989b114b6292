"""Paper trading: one mark per candle and market, and the paper orders.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-10 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _market() -> list[sa.Column[object]]:
    """The id (INTEGER PRIMARY KEY on SQLite, BIGINT elsewhere) and the market columns."""
    return [
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("exchange", sa.String(length=32), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("timeframe", sa.String(length=8), nullable=False),
    ]


def upgrade() -> None:
    """Create `paper_marks` and `paper_orders` (unique per candle / per fill and role)."""
    op.create_table(
        "paper_marks",
        *_market(),
        sa.Column("candle_open_ms", sa.BigInteger(), nullable=False),
        *(sa.Column(name, sa.Float(), nullable=False) for name in ("open", "high", "low")),
        *(sa.Column(name, sa.Float(), nullable=False) for name in ("close", "cash", "units")),
        sa.Column("equity", sa.Float(), nullable=False),
        sa.Column("target_side", sa.SmallInteger(), nullable=False),
        sa.Column("target_size", sa.Float(), nullable=False),
        sa.Column("model_id", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_paper_marks")),
        sa.UniqueConstraint(
            "exchange", "symbol", "timeframe", "candle_open_ms", name="uq_paper_marks_candle"
        ),
        sa.CheckConstraint("target_side IN (-1, 0, 1)", name=op.f("ck_paper_marks_target_side")),
    )
    op.create_table(
        "paper_orders",
        *_market(),
        sa.Column("decision_open_ms", sa.BigInteger(), nullable=False),
        sa.Column("fill_open_ms", sa.BigInteger(), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        *(sa.Column(name, sa.Float(), nullable=False) for name in ("units", "price", "fee")),
        sa.Column("model_id", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_paper_orders")),
        sa.UniqueConstraint(
            "exchange", "symbol", "timeframe", "fill_open_ms", "role", name="uq_paper_orders_fill"
        ),
        sa.CheckConstraint("role IN ('entry', 'exit')", name=op.f("ck_paper_orders_role")),
        sa.CheckConstraint("status IN ('filled', 'rejected')", name=op.f("ck_paper_orders_status")),
    )


def downgrade() -> None:
    """Drop both tables (the paper record is lost)."""
    op.drop_table("paper_orders")
    op.drop_table("paper_marks")
