"""Predictions record the decision policy's position size and which policy decided.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add `size` and `policy_source` (NULL for rows logged before)."""
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("size", sa.Float(), nullable=True))
        batch.add_column(sa.Column("policy_source", sa.String(length=64), nullable=True))


def downgrade() -> None:
    """Drop the two columns again (their values are lost)."""
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("policy_source")
        batch.drop_column("size")
