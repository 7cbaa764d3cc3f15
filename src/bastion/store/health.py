"""Health runs: every System Health run as it was reported, so history survives a restart.

The console's history strip and ``GET /api/system_health/history`` read these rows; the health
checker writes one per run and prunes to its retention. Rows are never updated. ``checks`` is
the JSON list of the run's check results, stored as the checker serialised them, so a new kind
of check needs no migration.

A second, one-row table, ``health_probe``, is the store check's target: it writes a token and
reads it back, proving the database accepts writes without growing anything.

The tables are declared here, on the shared :data:`~bastion.store.schema.metadata`, so the test
that compares ``schema.py``'s metadata with the migrations covers them too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, RowMapping

from bastion.errors import UsageError
from bastion.store.engine import reading, writing
from bastion.store.schema import metadata
from bastion.store.types import JSONDocument, UtcDateTime, aware_utc, to_document

__all__ = ["HEALTH_STATUSES", "HealthRecord", "HealthStore", "health_probe", "health_runs"]

HEALTH_STATUSES = ("OK", "WARN", "FAIL")

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

health_runs = sa.Table(
    "health_runs",
    metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("run_at", UtcDateTime(), nullable=False),
    sa.Column("overall_status", sa.String(8), nullable=False),
    sa.Column("summary", sa.Text(), nullable=False),
    sa.Column("checks", JSONDocument(), nullable=False),
)

health_probe = sa.Table(
    "health_probe",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("token", sa.String(64), nullable=False),
    sa.Column("written_at", UtcDateTime(), nullable=False),
)


class _Check(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


class HealthReportLike(Protocol):
    """What :meth:`HealthStore.record` stores: a ``bastion.guard.health.HealthReport``.

    A protocol, so the store does not import the guard layer above it.
    """

    @property
    def run_at(self) -> datetime: ...

    @property
    def overall_status(self) -> str: ...

    @property
    def summary(self) -> str: ...

    @property
    def checks(self) -> Sequence[_Check]: ...


@dataclass(frozen=True, slots=True)
class HealthRecord:
    """One stored health run; ``checks`` are the check results as JSON objects."""

    id: int
    run_at: datetime
    overall_status: str
    summary: str
    checks: tuple[dict[str, Any], ...]


class HealthStore:
    """Record, list and prune health runs; write and read back the probe row."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    def record(self, report: HealthReportLike) -> int:
        """Store one run and return its id (ids grow in the order runs were recorded)."""
        status = str(report.overall_status)
        if status not in HEALTH_STATUSES:
            raise UsageError(f"overall_status must be one of {HEALTH_STATUSES}, got {status!r}")
        checks = [check.to_dict() for check in report.checks]
        values = {
            "run_at": aware_utc(report.run_at),
            "overall_status": status,
            "summary": report.summary,
            "checks": to_document({"checks": checks}, "health checks")["checks"],
        }
        with writing(self._engine) as conn:
            new_id = conn.execute(
                sa.insert(health_runs).values(values).returning(health_runs.c.id)
            ).scalar()
        assert new_id is not None  # RETURNING of an INSERT always yields the row
        return int(new_id)

    def recent(self, limit: int = 50) -> list[HealthRecord]:
        """The last ``limit`` runs, most recently recorded first."""
        if limit < 1:
            raise UsageError(f"limit must be >= 1, got {limit}")
        statement = sa.select(health_runs).order_by(health_runs.c.id.desc()).limit(limit)
        with reading(self._engine) as conn:
            rows = conn.execute(statement).all()
        return [_record(row._mapping) for row in rows]

    def latest(self) -> HealthRecord | None:
        """The most recently recorded run, if any."""
        return next(iter(self.recent(1)), None)

    def count(self) -> int:
        """How many runs are stored."""
        with reading(self._engine) as conn:
            return int(
                conn.execute(sa.select(sa.func.count()).select_from(health_runs)).scalar_one()
            )

    def prune(self, keep: int) -> int:
        """Delete all but the ``keep`` most recent runs; returns how many were deleted."""
        if keep < 1:
            raise UsageError(f"keep must be >= 1, got {keep}")
        # The id of the oldest run to keep; NULL (nothing deleted) while fewer are stored.
        oldest_kept = (
            sa.select(health_runs.c.id)
            .order_by(health_runs.c.id.desc())
            .limit(1)
            .offset(keep - 1)
            .scalar_subquery()
        )
        with writing(self._engine) as conn:
            result = conn.execute(sa.delete(health_runs).where(health_runs.c.id < oldest_kept))
        return int(result.rowcount or 0)

    def probe(self, token: str, *, at: datetime) -> bool:
        """Write ``token`` to the one probe row and read it back; True when it round-trips."""
        values: Mapping[str, Any] = {"id": 1, "token": token, "written_at": aware_utc(at)}
        statement = self._insert(health_probe).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=[health_probe.c.id],
            set_={"token": statement.excluded.token, "written_at": statement.excluded.written_at},
        )
        with writing(self._engine) as conn:
            conn.execute(statement)
        with reading(self._engine) as conn:
            stored = conn.execute(
                sa.select(health_probe.c.token).where(health_probe.c.id == 1)
            ).scalar()
        return stored == token


def _record(row: RowMapping) -> HealthRecord:
    return HealthRecord(
        id=row["id"],
        run_at=row["run_at"],
        overall_status=row["overall_status"],
        summary=row["summary"],
        checks=tuple(row["checks"]),
    )
