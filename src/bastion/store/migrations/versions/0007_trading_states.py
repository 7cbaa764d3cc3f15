"""Halts carry a trading state and an expiry: ``halted`` or ``reducing``, until when.

``halted`` lets nothing but cancels out; ``reducing`` only orders that shrink a position (while
flattening, after a daily-loss trip). ``until`` is when the halt lapses (a daily-loss halt: the
next UTC day); empty means a person resumes. Existing rows were all full halts with no expiry.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


# SQLite alters a table by copying it, and the copy cannot carry an expression index (it is
# not reflected): the one-active-halt index is dropped first and built again after.
_ONE_ACTIVE = "CREATE UNIQUE INDEX uq_halts_one_active ON halts ((1)) WHERE resumed_at IS NULL"


def upgrade() -> None:
    op.drop_index("uq_halts_one_active", table_name="halts")
    with op.batch_alter_table("halts") as batch:
        batch.add_column(sa.Column("state", sa.String(16), nullable=False, server_default="halted"))
        batch.add_column(sa.Column("until", sa.DateTime(timezone=True), nullable=True))
        batch.create_check_constraint("ck_halts_state", "state IN ('halted', 'reducing')")
    op.execute(_ONE_ACTIVE)


def downgrade() -> None:
    op.drop_index("uq_halts_one_active", table_name="halts")
    with op.batch_alter_table("halts") as batch:
        batch.drop_constraint("ck_halts_state", type_="check")
        batch.drop_column("until")
        batch.drop_column("state")
    op.execute(_ONE_ACTIVE)
