"""The halts and events of a SQLite store over the standard library, for the emergency commands.

``bastion kill`` is what a person types when something is wrong, so it must finish at once
(issue #10: within 5x the start of an interpreter that imports Typer). Importing SQLAlchemy
alone takes about four times that whole allowance on the reference machine, before a single
statement. The two commands that trip and lift a halt therefore write their two tables
(``halts`` and ``events``) through :mod:`sqlite3` with the statements below, and this is the only
reason this module exists: everything else goes through :class:`~bastion.store.Store`.

It writes exactly the rows :class:`~bastion.store.halts.HaltStore` and
:class:`~bastion.store.events.EventStore` write (tests read what each writes with the other):
datetimes as the ISO text SQLAlchemy stores on SQLite, JSON as the same compact text, one
active halt guaranteed by the same partial unique index, and the same connection settings as
:func:`~bastion.store.engine.create_engine` (busy timeout, ``synchronous=NORMAL``, foreign keys,
``BEGIN IMMEDIATE`` for writes). It opens only a database that exists and is stamped with
exactly the schema revisions this code ships (:func:`~bastion.store.revisions.head_revisions`);
anything else (a new database, one behind or ahead, PostgreSQL, ``:memory:``) gets ``None``
from :meth:`EmergencyStore.open`, and the caller opens the full store, which migrates or refuses
with its usual message. A fleet on PostgreSQL therefore pays the database layer's import on
``bastion kill``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from bastion.errors import BastionError
from bastion.store.halt_record import HaltRecord
from bastion.store.revisions import head_revisions
from bastion.store.values import aware_utc, dumps_json, loads_json, to_document

__all__ = ["EmergencyStore"]

_BUSY_TIMEOUT_MS = 5000  # as bastion.store.engine.SQLITE_BUSY_TIMEOUT_MS (a test keeps them equal)
_TRIP_ATTEMPTS = 5  # as bastion.store.halts
_SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's storage format for DateTime on SQLite
# Constant text, every value bound: the columns are spelled out in each (no string building).
_TRIP = (
    "INSERT INTO halts (tripped_at, reason, who, detail, state, until, scope) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id, tripped_at, reason, who, "
    "detail, resumed_at, resumed_by, resume_reason, state, until, scope"
)
_ACTIVE = (
    "SELECT id, tripped_at, reason, who, detail, resumed_at, resumed_by, resume_reason, state, "
    "until, scope FROM halts WHERE resumed_at IS NULL AND scope = ?"
)
_RESUME = (
    "UPDATE halts SET resumed_at = ?, resumed_by = ?, resume_reason = ? "
    "WHERE resumed_at IS NULL AND scope = ? RETURNING id, tripped_at, reason, who, detail, "
    "resumed_at, resumed_by, resume_reason, state, until, scope"
)
_APPEND = "INSERT INTO events (run_id, at, kind, payload) VALUES (?, ?, ?, ?) RETURNING id"


class EmergencyStore:
    """``halts`` (trip, resume, active) and ``events`` (append) of one SQLite file.

    Shaped like the part of :class:`~bastion.store.Store` the halt path uses, so the factories
    take either: ``store.halts`` and ``store.events`` are this object.
    """

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn = connection
        self.halts = self
        self.events = self

    @classmethod
    def open(cls, url: str) -> EmergencyStore | None:
        """The store at ``url`` if it is a SQLite file at this code's schema head, else None."""
        path = _sqlite_path(url)
        heads = head_revisions()
        if path is None or heads is None:
            return None
        try:
            conn = sqlite3.connect(
                f"file:{quote(str(path))}?mode=rw", uri=True, isolation_level=None
            )
        except sqlite3.Error:
            return None  # no such file (mode=rw never creates one): the full store builds it
        try:
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            stamped = {row[0] for row in conn.execute("SELECT version_num FROM alembic_version")}
        except sqlite3.Error:
            conn.close()
            return None  # not a Bastion store, or not yet migrated
        if stamped != heads:
            conn.close()
            return None
        return cls(conn)

    def close(self) -> None:
        self._conn.close()

    # -- halts (the HaltBook protocol of bastion.guard.halt) ---------------------------------
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
        document = dumps_json(to_document(detail or {}, "halt detail"))
        lapse = _stamp(until) if until is not None else None
        values = (_stamp(at), reason, who, document, state, lapse, scope)
        for _ in range(_TRIP_ATTEMPTS):
            with self._writing() as conn:
                row = (
                    conn.execute(_TRIP, values).fetchone()
                    or conn.execute(_ACTIVE, (scope,)).fetchone()
                )
            if row is not None:
                return _record(row)
        raise BastionError(
            f"halt could not be tripped in {_TRIP_ATTEMPTS} attempts: something keeps resuming "
            "it. Fix: find the process resuming halts in a loop.",
            dependency="store",
        )

    def resume(self, who: str, why: str, at: datetime, *, scope: str = "host") -> HaltRecord | None:
        """Lower the active halt of ``scope``, returned closed; ``None`` if there was none."""
        with self._writing() as conn:
            row = conn.execute(_RESUME, (_stamp(at), who, why, scope)).fetchone()
        return None if row is None else _record(row)

    def active(self, *, scope: str = "host") -> HaltRecord | None:
        """The active halt of ``scope``, if any."""
        row = self._conn.execute(_ACTIVE, (scope,)).fetchone()
        return None if row is None else _record(row)

    # -- events (the EventLog protocol of bastion.store.sink) -------------------------------
    def append(
        self, kind: str, payload: Mapping[str, Any], *, at: datetime, run_id: str | None = None
    ) -> int:
        """Store one event and return its id."""
        document = dumps_json(to_document(payload, f"payload of event {kind!r}"))
        with self._writing() as conn:
            (new_id,) = conn.execute(_APPEND, (run_id, _stamp(at), kind, document)).fetchone()
        return int(new_id)

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that owns the database from its first statement."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")


def _sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///path`` URL with no options, else None (let the store decide)."""
    parts = urlsplit(url)
    if parts.scheme not in {"sqlite", "sqlite+pysqlite"} or parts.netloc or parts.query:
        return None
    database = parts.path[1:]  # sqlite:///relative and sqlite:////absolute
    return Path(database) if database and database != ":memory:" else None


def _stamp(at: datetime) -> str:
    return aware_utc(at).replace(tzinfo=None).strftime(_SQLITE_DATETIME)


def _moment(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).replace(tzinfo=UTC)


def _record(row: tuple[Any, ...]) -> HaltRecord:
    id_, tripped_at, reason, who, detail, resumed_at, resumed_by, resume_reason = row[:8]
    state, until, scope = row[8:]
    tripped = _moment(tripped_at)
    assert tripped is not None  # NOT NULL in the schema
    return HaltRecord(
        id=id_,
        tripped_at=tripped,
        reason=reason,
        who=who,
        detail=loads_json(detail),
        resumed_at=_moment(resumed_at),
        resumed_by=resumed_by,
        resume_reason=resume_reason,
        state=state,
        until=_moment(until),
        scope=scope,
    )
