"""Engines and transactions for the two supported backends.

SQLite is the embedded default and PostgreSQL the fleet store; both are reached through the same
SQLAlchemy Core engine so every aggregate is written once. SQLite needs help to be a good
concurrent citizen: WAL so readers never block the writer, ``synchronous=NORMAL`` (durable at
every checkpoint, safe against application crashes), a busy timeout so a second process waits
instead of failing, and foreign keys, which SQLite leaves off by default.

pysqlite's own transaction handling does not BEGIN before DDL and cannot take the write lock up
front, so it is switched off and :func:`writing` issues ``BEGIN IMMEDIATE`` itself: a write
transaction owns the database from its first statement, which makes migrations transactional and
spares writers the ``SQLITE_BUSY`` a deferred transaction hits when it upgrades a stale read lock.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from bastion.errors import ConfigError
from bastion.store.types import dumps_json, loads_json

__all__ = ["SQLITE_BUSY_TIMEOUT_MS", "create_engine", "parse_url", "reading", "writing"]

SQLITE_BUSY_TIMEOUT_MS = 5000
"""How long a SQLite connection waits for another process's write lock before failing."""

_WRITE_OPTION = "bastion_write"


def parse_url(url: str) -> URL:
    """The store URL as SQLAlchemy sees it, or :class:`ConfigError` saying what is accepted.

    ``postgresql://`` is read as ``postgresql+psycopg://``: psycopg 3 is the driver Bastion
    ships, and operators rarely spell the driver out.
    """
    try:
        parsed = sa.make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise ConfigError(
            "store_url (BASTION_STORE_URL) is not a database URL. Fix: use "
            "sqlite:///data/bastion.db or postgresql+psycopg://user:pass@host/db."
        ) from None
    if parsed.drivername in {"sqlite", "sqlite+pysqlite"}:
        return parsed.set(drivername="sqlite+pysqlite")
    if parsed.drivername in {"postgresql", "postgresql+psycopg"}:
        return parsed.set(drivername="postgresql+psycopg")
    raise ConfigError(
        f"store_url (BASTION_STORE_URL): unsupported database {parsed.drivername!r}. "
        "Fix: use sqlite:///path/to/bastion.db or postgresql+psycopg://user:pass@host/db."
    )


def create_engine(url: URL) -> Engine:
    """An engine for ``url`` (from :func:`parse_url`), configured for its backend."""
    options: dict[str, Any] = {"json_serializer": dumps_json, "json_deserializer": loads_json}
    if url.get_backend_name() == "postgresql":
        return sa.create_engine(url, pool_pre_ping=True, **options)
    database = url.database or ""
    if database in {"", ":memory:"}:
        # One shared connection, or every checkout would see its own empty database.
        options.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        try:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"store_url (BASTION_STORE_URL): cannot create {Path(database).parent} "
                f"({exc.strerror}). Fix: point it at a writable directory."
            ) from None
    engine = sa.create_engine(url, **options)
    sa.event.listen(engine, "connect", _configure_sqlite)
    sa.event.listen(engine, "begin", _begin_sqlite)
    return engine


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A connection inside a write transaction, committed on success, rolled back on error."""
    with engine.connect() as conn:
        conn.execution_options(**{_WRITE_OPTION: True})
        with conn.begin():
            yield conn


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A connection for reads; its transaction is rolled back on exit, never committed."""
    with engine.connect() as conn:
        yield conn


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # None hands transaction control to us (see _begin_sqlite); pysqlite would skip DDL.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _enable_wal(cursor: Any) -> None:
    """Switch the file to WAL, waiting out another connection doing the same.

    The switch needs an exclusive lock and SQLite answers "database is locked" at once, without
    its busy handler, when two connections attempt it together (two processes opening a new
    database). It happens once per file, so a short polling wait is enough.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _begin_sqlite(conn: Connection) -> None:
    immediate = bool(conn.get_execution_options().get(_WRITE_OPTION))
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
