"""Runs can be ``crashed``: a run left ``running`` by a process that died.

The next run on the same data directory finds it (the run lock is free, ``run.json`` still
names it) and records it so; ``steps`` is now counted as steps happen.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

_WITH = "status IN ('running', 'completed', 'halted', 'failed', 'interrupted', 'crashed')"
_WITHOUT = "status IN ('running', 'completed', 'halted', 'failed', 'interrupted')"


def upgrade() -> None:
    """Widen ``ck_runs_status`` to admit ``crashed`` (a table copy on SQLite)."""
    with op.batch_alter_table("runs") as batch:
        batch.drop_constraint("ck_runs_status", type_="check")
        batch.create_check_constraint("ck_runs_status", _WITH)


def downgrade() -> None:
    """Crashed runs become ``interrupted``, the closest older status; then narrow the check."""
    op.execute("UPDATE runs SET status = 'interrupted' WHERE status = 'crashed'")
    with op.batch_alter_table("runs") as batch:
        batch.drop_constraint("ck_runs_status", type_="check")
        batch.create_check_constraint("ck_runs_status", _WITHOUT)
