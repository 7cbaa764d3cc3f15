"""The operator agent's records: the alerts Alertmanager delivered, their analyses, and the
actions proposed for them with who decided, when they ran and whether they worked.

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create ``operator_alerts``, ``operator_analyses`` and ``operator_actions``."""
    op.create_table(
        "operator_alerts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("fingerprint", sa.String(16), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("alertname", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(64), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("labels", _JSON, nullable=False),
        sa.Column("annotations", _JSON, nullable=False),
        sa.Column("generator_url", sa.Text(), nullable=True),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("fingerprint", "starts_at", name="uq_operator_alerts_occurrence"),
    )
    op.create_index(
        "ix_operator_alerts_status_received_at", "operator_alerts", ["status", "received_at"]
    )
    op.create_table(
        "operator_analyses",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.String(32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("analysis", _JSON, nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
    )
    op.create_index("ix_operator_analyses_alert_id", "operator_analyses", ["alert_id"])
    op.create_table(
        "operator_actions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("alert_id", sa.String(32), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("params", _JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("approval_id", sa.String(32), nullable=True),
        sa.Column("proposed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(200), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("executed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("outcome", _JSON, nullable=True),
    )
    op.create_index("ix_operator_actions_alert_id", "operator_actions", ["alert_id"])
    op.create_index("ix_operator_actions_status", "operator_actions", ["status"])


def downgrade() -> None:
    """Drop what 0011 created."""
    op.drop_table("operator_actions")
    op.drop_table("operator_analyses")
    op.drop_table("operator_alerts")
