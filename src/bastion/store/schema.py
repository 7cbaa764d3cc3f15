"""The tables as SQLAlchemy Core objects, for building queries.

The database itself is created and changed only by the Alembic migrations in ``migrations/``;
this module must describe the schema they produce (a test compares the two). Migrations are a
frozen history and spell their types out; this module uses the live column types.
"""

from __future__ import annotations

import sqlalchemy as sa

from bastion.store.types import JSONDocument, UtcDateTime

__all__ = ["RUN_STATUSES", "events", "halts", "metadata", "runs"]

RUN_STATUSES = ("running", "completed", "halted", "failed", "interrupted")

metadata = sa.MetaData()

# SQLite only autoincrements a column declared exactly INTEGER PRIMARY KEY.
_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("agent_name", sa.String(200), nullable=False),
    sa.Column("agent_version", sa.String(64), nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("config_hash", sa.String(64), nullable=False),
    sa.Column("started_at", UtcDateTime(), nullable=False),
    sa.Column("ended_at", UtcDateTime(), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("steps", sa.Integer(), nullable=False),
    sa.Column("detail", JSONDocument(), nullable=True),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("kind", sa.String(100), nullable=False),
    sa.Column("payload", JSONDocument(), nullable=False),
)

halts = sa.Table(
    "halts",
    metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("tripped_at", UtcDateTime(), nullable=False),
    sa.Column("reason", sa.String(200), nullable=False),
    sa.Column("who", sa.String(200), nullable=False),
    sa.Column("detail", JSONDocument(), nullable=False),
    sa.Column("resumed_at", UtcDateTime(), nullable=True),
    sa.Column("resumed_by", sa.String(200), nullable=True),
    sa.Column("resume_reason", sa.Text(), nullable=True),
    sa.Column("state", sa.String(16), nullable=False, server_default="halted"),
    sa.Column("until", UtcDateTime(), nullable=True),
    sa.Column("scope", sa.String(8), nullable=False, server_default="host"),
    sa.CheckConstraint("state IN ('halted', 'reducing')", name="ck_halts_state"),
    sa.CheckConstraint("scope IN ('host', 'fleet')", name="ck_halts_scope"),
)
