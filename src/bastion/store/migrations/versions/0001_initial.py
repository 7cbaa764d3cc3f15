"""Runs, events and halts.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the first three aggregates."""
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("agent_name", sa.String(200), nullable=False),
        sa.Column("agent_version", sa.String(64), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("config_hash", sa.String(64), nullable=False),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("ended_at", _TS, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("steps", sa.Integer(), nullable=False),
        sa.Column("detail", _JSON, nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'completed', 'halted', 'failed', 'interrupted')",
            name="ck_runs_status",
        ),
        sa.CheckConstraint("steps >= 0", name="ck_runs_steps"),
    )
    op.create_index("ix_runs_started_at", "runs", ["started_at"])

    op.create_table(
        "events",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("at", _TS, nullable=False),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("payload", _JSON, nullable=False),
    )
    op.create_index("ix_events_run_id", "events", ["run_id", "id"])
    op.create_index("ix_events_kind", "events", ["kind", "id"])

    op.create_table(
        "halts",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("tripped_at", _TS, nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("who", sa.String(200), nullable=False),
        sa.Column("detail", _JSON, nullable=False),
        sa.Column("resumed_at", _TS, nullable=True),
        sa.Column("resumed_by", sa.String(200), nullable=True),
        sa.Column("resume_reason", sa.Text(), nullable=True),
    )
    # At most one active halt, enforced by the database: every active row indexes the same
    # constant, so a second concurrent trip conflicts instead of adding a row.
    op.execute("CREATE UNIQUE INDEX uq_halts_one_active ON halts ((1)) WHERE resumed_at IS NULL")


def downgrade() -> None:
    """Drop everything 0001 created."""
    op.drop_table("halts")
    op.drop_table("events")
    op.drop_table("runs")
