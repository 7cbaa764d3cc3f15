"""Events: the append-only journal of what happened, for the console and the audit.

Events are written by the journal as they happen and never updated. They deliberately carry no
foreign key to ``runs``: an event about start-up or an operator action may have no run, and a
journal must never lose a record because a related row is missing.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, RowMapping

from bastion.errors import UsageError
from bastion.store.engine import reading, writing
from bastion.store.schema import events
from bastion.store.types import aware_utc, to_document

__all__ = ["EventRecord", "EventStore"]


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One stored event; ``payload`` is the JSON document it was appended with."""

    id: int
    at: datetime
    kind: str
    payload: dict[str, Any]
    run_id: str | None


class EventStore:
    """Append events and list them back, newest first."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def append(
        self,
        kind: str,
        payload: Mapping[str, Any],
        *,
        at: datetime,
        run_id: str | None = None,
    ) -> int:
        """Store one event and return its id (ids grow in the order events were appended)."""
        values = {
            "kind": kind,
            "payload": to_document(payload, f"payload of event {kind!r}"),
            "at": aware_utc(at),
            "run_id": run_id,
        }
        with writing(self._engine) as conn:
            new_id = conn.execute(sa.insert(events).values(values).returning(events.c.id)).scalar()
        assert new_id is not None  # RETURNING of an INSERT always yields the row
        return int(new_id)

    def list(
        self, *, run_id: str | None = None, kind: str | None = None, limit: int = 100
    ) -> builtins.list[EventRecord]:
        """Up to ``limit`` events, most recently appended first, filtered by run and kind."""
        if limit < 1:
            raise UsageError(f"limit must be >= 1, got {limit}")
        statement = sa.select(events).order_by(events.c.id.desc()).limit(limit)
        if run_id is not None:
            statement = statement.where(events.c.run_id == run_id)
        if kind is not None:
            statement = statement.where(events.c.kind == kind)
        with reading(self._engine) as conn:
            rows = conn.execute(statement).all()
        return [_record(row._mapping) for row in rows]


def _record(row: RowMapping) -> EventRecord:
    return EventRecord(
        id=row["id"],
        at=row["at"],
        kind=row["kind"],
        payload=row["payload"],
        run_id=row["run_id"],
    )
