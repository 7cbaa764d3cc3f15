"""Running totals per agent, UTC day and model, kept beside the ledger in the same transaction.

``usage_today()`` reads these rows instead of aggregating the ledger, so it costs the same at a
million ledger rows as at none; the ledger keeps every row for audit. The upgrade fills the
totals from the ledger already there.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

_BACKFILL = """
INSERT INTO budget_model_usage (agent, day, model, invocations, tokens, usd)
SELECT agent, {day}, model, COUNT(*), COALESCE(SUM(tokens), 0), COALESCE(SUM(usd), 0)
  FROM budget_ledger
 GROUP BY agent, {day}, model
"""
# SQLite keeps ``at`` as ISO text in UTC; PostgreSQL as timestamptz.
_DAY = {
    "sqlite": "substr(at, 1, 10)",
    "postgresql": "to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
}


def upgrade() -> None:
    """Create ``budget_model_usage`` and fill it from ``budget_ledger``."""
    op.create_table(
        "budget_model_usage",
        sa.Column("agent", sa.String(200), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("invocations", sa.BigInteger(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("usd", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("agent", "day", "model", name="pk_budget_model_usage"),
    )
    op.execute(_BACKFILL.format(day=_DAY[op.get_bind().dialect.name]))


def downgrade() -> None:
    """Drop what 0006 created; the ledger still holds every figure."""
    op.drop_table("budget_model_usage")
