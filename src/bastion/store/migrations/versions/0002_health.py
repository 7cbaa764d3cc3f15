"""Health runs and the store check's probe row.

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create ``health_runs`` (history of System Health runs) and ``health_probe``."""
    op.create_table(
        "health_runs",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("run_at", _TS, nullable=False),
        sa.Column("overall_status", sa.String(8), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("checks", _JSON, nullable=False),
        sa.CheckConstraint(
            "overall_status IN ('OK', 'WARN', 'FAIL')", name="ck_health_runs_overall_status"
        ),
    )
    op.create_table(
        "health_probe",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("written_at", _TS, nullable=False),
    )


def downgrade() -> None:
    """Drop what 0002 created."""
    op.drop_table("health_probe")
    op.drop_table("health_runs")
