"""Task records: one row per finished loop step (later, research cycle), for the SLOs.

The SLO burn rates and the page-on thresholds are computed from these rows; the covering index
on (kind, finished_at, outcome, duration_s, cost_usd) lets a 30-day tally read the index only.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create ``tasks`` and its two indexes (the SLO windows, and per run)."""
    op.create_table(
        "tasks",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("agent", sa.String(200), nullable=False),
        sa.Column("step", sa.Integer(), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("tool_calls", sa.Integer(), nullable=False),
    )
    op.create_index(
        "ix_tasks_kind_finished_at",
        "tasks",
        ["kind", "finished_at", "outcome", "duration_s", "cost_usd"],
    )
    op.create_index("ix_tasks_run_id", "tasks", ["run_id", "finished_at"])


def downgrade() -> None:
    """Drop what 0010 created."""
    op.drop_index("ix_tasks_run_id", table_name="tasks")
    op.drop_index("ix_tasks_kind_finished_at", table_name="tasks")
    op.drop_table("tasks")
