"""Halts have a scope: ``host`` (one data directory's flag) or ``fleet`` (every agent on it).

A fleet halt is a row every running agent on the database reads at each poll and follows with
a halt of its own. One halt may be active per scope, so a fleet halt can be raised while a host
halt is on, and the other way round.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None

# As in 0007: SQLite's table copy cannot carry the expression index, so it is rebuilt around it.
_ONE_PER_SCOPE = "CREATE UNIQUE INDEX uq_halts_one_active ON halts (scope) WHERE resumed_at IS NULL"
_ONE_ACTIVE = "CREATE UNIQUE INDEX uq_halts_one_active ON halts ((1)) WHERE resumed_at IS NULL"


def upgrade() -> None:
    op.drop_index("uq_halts_one_active", table_name="halts")
    with op.batch_alter_table("halts") as batch:
        batch.add_column(sa.Column("scope", sa.String(8), nullable=False, server_default="host"))
        batch.create_check_constraint("ck_halts_scope", "scope IN ('host', 'fleet')")
    op.execute(_ONE_PER_SCOPE)


def downgrade() -> None:
    """Fleet halts still active are closed first: the older schema holds one active halt."""
    op.execute(
        "UPDATE halts SET resumed_at = tripped_at, resumed_by = 'migration', "
        "resume_reason = 'downgraded below 0008' WHERE scope = 'fleet' AND resumed_at IS NULL"
    )
    op.drop_index("uq_halts_one_active", table_name="halts")
    with op.batch_alter_table("halts") as batch:
        batch.drop_constraint("ck_halts_scope", type_="check")
        batch.drop_column("scope")
    op.execute(_ONE_ACTIVE)
