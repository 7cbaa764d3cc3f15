"""Halts: the store's half of the one halt path, shared by every process on the database.

A halt has a scope: ``host`` (what one data directory's flag records) or ``fleet`` (the halt
every agent on the database follows). At most one halt is active per scope, and the database,
not the caller, guarantees it: a partial unique index on ``scope`` admits a single row with
``resumed_at IS NULL`` in each, and :meth:`HaltStore.trip` inserts with ``ON CONFLICT DO
NOTHING``. Two processes tripping at once therefore produce one row; the loser reads and returns
the winner's. Resuming closes the active row; the rows stay as history. Host halts of different
hosts on one database share their scope (one active row between them): the flag file, not the
row, is what halts each host.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, RowMapping

from bastion.errors import BastionError, UsageError
from bastion.store.engine import reading, writing
from bastion.store.halt_record import HaltRecord
from bastion.store.schema import halts
from bastion.store.types import aware_utc, to_document

__all__ = ["HaltRecord", "HaltStore"]

# A conflicting trip reads the active halt; it is empty only if that halt was resumed in the
# instant between the two statements, and then the next attempt inserts.
_TRIP_ATTEMPTS = 5


class HaltStore:
    """Trip, resume and inspect the fleet-wide halt flag."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._insert = insert

    def trip(
        self,
        reason: str,
        who: str,
        at: datetime,
        detail: Mapping[str, Any] | None = None,
        *,
        state: str = "halted",
        until: datetime | None = None,
        scope: str = "host",
    ) -> HaltRecord:
        """Raise the halt of ``scope``; if one is already active there, return it, add nothing."""
        values = {
            "tripped_at": aware_utc(at),
            "reason": reason,
            "who": who,
            "detail": to_document(detail or {}, "halt detail"),
            "state": state,
            "until": aware_utc(until) if until is not None else None,
            "scope": scope,
        }
        statement = self._insert(halts).values(values).on_conflict_do_nothing().returning(*halts.c)
        for _ in range(_TRIP_ATTEMPTS):
            with writing(self._engine) as conn:
                row = conn.execute(statement).first() or conn.execute(_active(scope)).first()
            if row is not None:
                return _record(row._mapping)
        raise BastionError(
            f"halt could not be tripped in {_TRIP_ATTEMPTS} attempts: something keeps resuming "
            "it. Fix: find the process resuming halts in a loop.",
            dependency="store",
        )

    def resume(self, who: str, why: str, at: datetime, *, scope: str = "host") -> HaltRecord | None:
        """Lower the active halt of ``scope``, returned closed; ``None`` if there was none."""
        statement = (
            sa.update(halts)
            .where(halts.c.resumed_at.is_(None), halts.c.scope == scope)
            .values(resumed_at=aware_utc(at), resumed_by=who, resume_reason=why)
            .returning(*halts.c)
        )
        with writing(self._engine) as conn:
            row = conn.execute(statement).first()
        return None if row is None else _record(row._mapping)

    def active(self, *, scope: str = "host") -> HaltRecord | None:
        """The active halt of ``scope``, if any."""
        with reading(self._engine) as conn:
            row = conn.execute(_active(scope)).first()
        return None if row is None else _record(row._mapping)

    def history(self, limit: int = 50) -> list[HaltRecord]:
        """The last ``limit`` halts, most recently tripped first, active or not."""
        if limit < 1:
            raise UsageError(f"limit must be >= 1, got {limit}")
        statement = sa.select(halts).order_by(halts.c.id.desc()).limit(limit)
        with reading(self._engine) as conn:
            rows = conn.execute(statement).all()
        return [_record(row._mapping) for row in rows]


def _active(scope: str) -> sa.Select[Any]:
    return sa.select(halts).where(halts.c.resumed_at.is_(None), halts.c.scope == scope)


def _record(row: RowMapping) -> HaltRecord:
    return HaltRecord(
        id=row["id"],
        tripped_at=row["tripped_at"],
        reason=row["reason"],
        who=row["who"],
        detail=row["detail"],
        resumed_at=row["resumed_at"],
        resumed_by=row["resumed_by"],
        resume_reason=row["resume_reason"],
        state=row["state"],
        until=row["until"],
        scope=row["scope"],
    )
