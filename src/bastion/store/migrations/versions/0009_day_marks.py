"""Day marks: the NAV a UTC day started at and its peak, per account, for the daily-loss halt.

Without them a restart mid-day counted the day afresh from the NAV at the restart, so a run
down 2 % that restarted got another 3 % to lose, and its drawdown forgot the day's peak.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create ``day_marks``: one row per account, the current UTC day's start and peak."""
    op.create_table(
        "day_marks",
        sa.Column("account", sa.String(200), primary_key=True),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(16), nullable=False),
        sa.Column("start_nav", sa.Float(), nullable=False),
        sa.Column("peak_nav", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    """Drop what 0009 created."""
    op.drop_table("day_marks")
