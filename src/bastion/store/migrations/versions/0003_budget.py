"""Budgets: usage per scope and period, reservations, the invocation ledger, alert marks.

Revision ID: 0003
Revises: 0002
Create Date: 2026-01-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create ``budget_usage``, ``budget_reservations``, ``budget_ledger``, ``budget_alerts``."""
    op.create_table(
        "budget_usage",
        sa.Column("scope", sa.String(200), nullable=False),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("tokens_used", sa.BigInteger(), nullable=False),
        sa.Column("tokens_reserved", sa.BigInteger(), nullable=False),
        sa.Column("usd_used", sa.BigInteger(), nullable=False),
        sa.Column("usd_reserved", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "period", name="pk_budget_usage"),
    )
    op.create_table(
        "budget_reservations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("agent", sa.String(200), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("usd", sa.BigInteger(), nullable=False),
        sa.Column("claims", _JSON, nullable=False),
    )
    op.create_index("ix_budget_reservations_expires_at", "budget_reservations", ["expires_at"])
    op.create_table(
        "budget_ledger",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("at", _TS, nullable=False),
        sa.Column("agent", sa.String(200), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("tokens_in", sa.BigInteger(), nullable=False),
        sa.Column("tokens_out", sa.BigInteger(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("usd", sa.BigInteger(), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("workflow", sa.String(200), nullable=True),
        sa.Column("operation", sa.String(200), nullable=True),
        sa.Column("phase", sa.String(64), nullable=True),
    )
    op.create_index("ix_budget_ledger_agent_at", "budget_ledger", ["agent", "at"])
    op.create_table(
        "budget_alerts",
        sa.Column("scope", sa.String(200), nullable=False),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("fired_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("scope", "period", "day", "kind", name="pk_budget_alerts"),
    )


def downgrade() -> None:
    """Drop what 0003 created."""
    op.drop_table("budget_alerts")
    op.drop_index("ix_budget_ledger_agent_at", table_name="budget_ledger")
    op.drop_table("budget_ledger")
    op.drop_index("ix_budget_reservations_expires_at", table_name="budget_reservations")
    op.drop_table("budget_reservations")
    op.drop_table("budget_usage")
