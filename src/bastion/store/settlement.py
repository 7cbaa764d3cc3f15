"""Writing settlements: a batch of LLM calls' spend in one transaction, through the driver.

Settlement is on every LLM call's path. SQLAlchemy's ``Connection.execute`` costs tens of
microseconds per call even when its compiled cache hits (parameter processing, result set-up,
events, the pool): more than SQLite needs to run the statement. So the settlement statements
are compiled once per dialect (:class:`_Raw`, each bind parameter's type processor looked up
once too) and sent on one driver connection that this writer keeps for the store's life,
configured by the engine like any other.

* **SQLite**: ``BEGIN IMMEDIATE``, one ``UPDATE`` per hold, one upsert per scope row, the
  ledger rows and the running totals, ``COMMIT``. With ``wait=False`` the busy handler is off
  for the ``BEGIN``, so a write lock held elsewhere answers :class:`WouldWait` at once and
  nothing is written (the caller may be an event loop, which must not wait on a lock).
* **PostgreSQL**: the whole batch is one statement (data-modifying CTEs) on a connection in
  autocommit mode, so a settlement is one round trip; a statement is atomic on its own. The
  connection's ``synchronous_commit`` is ``off`` unless the store is opened with
  ``synchronous_settle``: the server acknowledges before the WAL reaches the disk, and a
  *server* crash may lose the last moments of settlements (never half of one). A client crash
  loses nothing the server acknowledged. Holds wait for the flush (at the server's default
  ``synchronous_commit``), so what a lost settlement held stays counted as held until its hold
  is released or reclaimed; from then on its calls' spend is missing, and a limit can be
  overrun by at most that much (``docs/durability.md``). A deadlock (PostgreSQL aborts one of
  the two) is retried.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, Engine

from bastion.store.budget_rows import (
    LedgerEntry,
    Settlement,
    UsageRow,
    budget_ledger,
    budget_model_usage,
    budget_usage,
    ledger_values,
    resize_hold,
    usage_from,
)
from bastion.store.engine import SQLITE_BUSY_TIMEOUT_MS
from bastion.store.types import aware_utc

__all__ = ["SettlementWriter", "WouldWait"]

_DEADLOCK_RETRIES = 3


class WouldWait(Exception):
    """A settlement with ``wait=False`` found a lock taken; nothing was written."""


class SettlementWriter:
    """Writes batches of settlements on its own driver connection."""

    def __init__(
        self,
        engine: Engine,
        *,
        serial: threading.Lock | None,
        synchronous: bool = False,
    ) -> None:
        """``serial`` is the store's SQLite writer lock, shared with its other writes."""
        self._engine = engine
        self._dialect = engine.dialect.name
        self._raw = _raw_statements(engine.dialect) if self._dialect == "sqlite" else None
        self._serial = serial
        self._synchronous = synchronous
        self._lock = threading.Lock()
        self._connection: Any = None
        self._waits = True

    @property
    def synchronous(self) -> bool:
        """Whether PostgreSQL settlements keep the session's ``synchronous_commit``."""
        return self._synchronous

    @property
    def inline(self) -> bool:
        """Whether ``wait=False`` is supported (SQLite)."""
        return self._dialect == "sqlite"

    def settle(
        self, settlements: Sequence[Settlement], *, expires_at: datetime, wait: bool = True
    ) -> list[UsageRow]:
        """Write ``settlements`` in one transaction; the scope rows after it, by key."""
        if not settlements:
            return []
        if not wait and not self.inline:
            raise WouldWait
        expiry = aware_utc(expires_at)
        with self._locked(wait):
            for attempt in range(_DEADLOCK_RETRIES + 1):
                try:
                    if self._raw is not None:
                        return self._sqlite(settlements, expiry, wait)
                    return self._postgresql(settlements, expiry)
                except WouldWait:
                    raise
                except BaseException as exc:
                    self._discard()
                    if attempt == _DEADLOCK_RETRIES or not _deadlock(exc):
                        raise
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Close the connection; the next settlement would open a new one."""
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()

    # --- SQLite ----------------------------------------------------------------------------

    def _sqlite(
        self, settlements: Sequence[Settlement], expiry: datetime, wait: bool
    ) -> list[UsageRow]:
        raw = self._raw
        assert raw is not None
        connection = self._open()
        cursor = connection.cursor()
        try:
            self._begin(cursor, wait)
            live = set()
            for hold_id, (tokens, usd) in sorted(_held(settlements).items()):
                values = {"b_id": hold_id, "b_tokens": tokens, "b_usd": usd, "b_expires_at": expiry}
                cursor.execute(raw.shrink.sql, raw.shrink.params(values))
                if cursor.fetchone() is not None:
                    live.add(hold_id)
            rows = []
            for (scope, period), spend in sorted(_spends(settlements, live).items()):
                values = {
                    "b_scope": scope,
                    "b_period": period,
                    "b_tokens": spend[0],
                    "b_usd": spend[1],
                    "b_unheld_tokens": -spend[2],
                    "b_unheld_usd": -spend[3],
                }
                cursor.execute(raw.spend.sql, raw.spend.params(values))
                rows.append(usage_from(cursor.fetchone()))
            entries = [s.entry for s in settlements]
            cursor.executemany(
                raw.ledger.sql, [raw.ledger.params(ledger_values(e)) for e in entries]
            )
            cursor.executemany(raw.totals.sql, [raw.totals.params(v) for v in _totals(entries)])
            connection.commit()
        finally:
            cursor.close()
        return rows

    def _begin(self, cursor: Any, wait: bool) -> None:
        """``BEGIN IMMEDIATE``; without ``wait`` the busy handler is off, so it never waits."""
        if wait != self._waits:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS if wait else 0}")
            self._waits = wait
        try:
            cursor.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if not wait and ("locked" in str(exc) or "busy" in str(exc)):
                raise WouldWait from exc
            raise

    # --- PostgreSQL ------------------------------------------------------------------------

    def _postgresql(self, settlements: Sequence[Settlement], expiry: datetime) -> list[UsageRow]:
        connection = self._open()
        holds = sorted(_held(settlements).items())
        shares = sorted(
            (scope, period, s.hold_id, s.entry.tokens, s.entry.usd, s.held_tokens, s.held_usd)
            for s in settlements
            for scope, period in set(s.scopes)
        )
        entries = [ledger_values(s.entry) for s in settlements]
        totals = _totals([s.entry for s in settlements])
        sql = _postgresql_batch(len(holds), len(shares), len(entries), len(totals))
        params: list[Any] = []  # in the order the statement's placeholders appear
        for hold_id, (tokens, usd) in holds:
            params += [hold_id, tokens, usd]
        params.append(expiry)
        for share in shares:
            params += share
        for entry in entries:
            params += [entry[c] for c in _LEDGER_COLUMNS]
        for total in totals:
            params += [total[k] for k in _TOTALS_KEYS]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return [usage_from(row) for row in cursor.fetchall()]

    # --- the connection -------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, wait: bool) -> Iterator[None]:
        """The store's SQLite writer lock and this connection's, or :class:`WouldWait`."""
        serial = self._serial
        if serial is not None and not serial.acquire(blocking=wait):
            raise WouldWait
        try:
            if not self._lock.acquire(blocking=wait):
                raise WouldWait
            try:
                yield
            finally:
                self._lock.release()
        finally:
            if serial is not None:
                serial.release()

    def _open(self) -> Any:
        """The driver connection, opened on first use and taken out of the engine's pool
        (detached: its settings never reach a pooled connection, and closing it closes it)."""
        if self._connection is None:
            fairy = self._engine.raw_connection()
            fairy.detach()
            connection: Any = fairy.dbapi_connection
            if self._dialect == "postgresql":
                connection.autocommit = True
                if not self._synchronous:
                    connection.execute("SET synchronous_commit TO off")
            self._connection = fairy
            self._waits = True  # the engine configured SQLite's busy timeout
        return self._connection

    def _discard(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.rollback()
            with contextlib.suppress(Exception):
                connection.close()


def _deadlock(exc: BaseException) -> bool:
    return getattr(exc, "sqlstate", None) == "40P01"


# --- statements -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Raw:
    """A statement compiled once for one dialect, for the driver's own cursor."""

    sql: str
    names: tuple[str, ...] | None  # positional order (SQLite's qmark); None: named
    processors: Mapping[str, Callable[[Any], Any]]

    def params(self, values: Mapping[str, Any]) -> Sequence[Any] | Mapping[str, Any]:
        """``values`` bound as the driver wants them, each through its type's processor."""
        if self.processors:
            values = dict(values)
            for name, processor in self.processors.items():
                values[name] = processor(values[name])
        if self.names is None:
            return values
        return tuple([values[name] for name in self.names])


def _compile(statement: sa.Executable, dialect: Dialect) -> _Raw:
    compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
    processors = {}
    for name, bind in compiled.binds.items():
        # dialect_impl: a TypeDecorator's own bind_processor would skip its dialect's (SQLite
        # stores datetimes as text in one fixed format, which comparisons rely on).
        processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            processors[name] = processor
    positional = tuple(compiled.positiontup) if compiled.positional else None
    return _Raw(str(compiled), positional, processors)


@dataclass(frozen=True, slots=True)
class _RawStatements:
    shrink: _Raw
    spend: _Raw
    ledger: _Raw
    totals: _Raw


def _raw_statements(dialect: Dialect) -> _RawStatements:
    ledger = sa.insert(budget_ledger).values(
        {c.name: sa.bindparam(c.name, type_=c.type) for c in budget_ledger.c if c.name != "id"}
    )
    return _RawStatements(
        shrink=_compile(resize_hold(-1, expires=True), dialect),
        spend=_compile(_spend_statement(dialect.name), dialect),
        ledger=_compile(ledger, dialect),
        totals=_compile(_totals_statement(dialect.name), dialect),
    )


def _spend_statement(dialect: str) -> sa.Executable:
    """Add spend to a scope row and take what it unholds off its reservations, creating the
    row if needed; ``RETURNING`` the row."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    u = budget_usage.c
    spend = insert(budget_usage).values(
        scope=sa.bindparam("b_scope"),
        period=sa.bindparam("b_period"),
        tokens_used=sa.bindparam("b_tokens", type_=sa.BigInteger()),
        tokens_reserved=sa.bindparam("b_unheld_tokens", type_=sa.BigInteger()),
        usd_used=sa.bindparam("b_usd", type_=sa.BigInteger()),
        usd_reserved=sa.bindparam("b_unheld_usd", type_=sa.BigInteger()),
    )
    return spend.on_conflict_do_update(
        index_elements=[u.scope.name, u.period.name],
        set_={
            "tokens_used": u.tokens_used + spend.excluded.tokens_used,
            "tokens_reserved": u.tokens_reserved + spend.excluded.tokens_reserved,
            "usd_used": u.usd_used + spend.excluded.usd_used,
            "usd_reserved": u.usd_reserved + spend.excluded.usd_reserved,
        },
    ).returning(*u)


def _totals_statement(dialect: str) -> sa.Executable:
    """Add invocations, tokens and USD to one (agent, day, model) running total."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    m = budget_model_usage.c
    totals = insert(budget_model_usage).values(
        agent=sa.bindparam("b_agent"),
        day=sa.bindparam("b_day"),
        model=sa.bindparam("b_model"),
        invocations=sa.bindparam("b_invocations", type_=sa.BigInteger()),
        tokens=sa.bindparam("b_tokens", type_=sa.BigInteger()),
        usd=sa.bindparam("b_usd", type_=sa.BigInteger()),
    )
    return totals.on_conflict_do_update(
        index_elements=[c.name for c in budget_model_usage.primary_key],
        set_={
            "invocations": m.invocations + totals.excluded.invocations,
            "tokens": m.tokens + totals.excluded.tokens,
            "usd": m.usd + totals.excluded.usd,
        },
    )


_LEDGER_COLUMNS = tuple(c.name for c in budget_ledger.c if c.name != "id")
_TOTALS_KEYS = ("b_agent", "b_day", "b_model", "b_invocations", "b_tokens", "b_usd")


def _values(rows: int, casts: Sequence[str]) -> str:
    """``VALUES`` of ``rows`` typed placeholders; no rows is an empty relation of those types."""
    if rows == 0:
        return "SELECT " + ", ".join(f"NULL::{cast}" for cast in casts) + " WHERE false"
    one = "(" + ", ".join(f"%s::{cast}" for cast in casts) + ")"
    return "VALUES " + ", ".join([one] * rows)


@functools.lru_cache(maxsize=256)
def _postgresql_batch(holds: int, shares: int, entries: int, totals: int) -> str:
    """One statement settling a batch of this shape (how many holds, scope shares, ledger
    entries and totals); cached per shape, so a steady load reuses a handful of texts.

    The hold updates report which holds are still live; each scope row unholds only what live
    holds held. Scope rows are upserted in (scope, period) order, the order in which holds lock
    them, so two settlements or a settlement and a hold never wait on each other in a cycle.
    """
    ledger_casts = ["timestamptz", "text", "text"] + ["bigint"] * 4 + ["text"] * 4
    # Only placeholders and this module's column names are formatted in: values are bound.
    return f"""
WITH hold(id, tokens, usd) AS ({_values(holds, ["text", "bigint", "bigint"])}),
expiry(at) AS (VALUES (%s::timestamptz)),
shrunk AS (
    UPDATE budget_reservations AS r
       SET tokens = r.tokens - hold.tokens, usd = r.usd - hold.usd,
           expires_at = (SELECT at FROM expiry)
      FROM hold WHERE r.id = hold.id
    RETURNING r.id
),
share(scope, period, hold_id, tokens, usd, held_tokens, held_usd) AS (
    {_values(shares, ["text", "text", "text", "bigint", "bigint", "bigint", "bigint"])}
),
spend AS (
    SELECT scope, period, SUM(tokens) AS tokens, SUM(usd) AS usd,
           SUM(CASE WHEN hold_id IN (SELECT id FROM shrunk) THEN held_tokens ELSE 0 END)
               AS unheld_tokens,
           SUM(CASE WHEN hold_id IN (SELECT id FROM shrunk) THEN held_usd ELSE 0 END)
               AS unheld_usd
      FROM share GROUP BY scope, period
),
ledger AS (
    INSERT INTO budget_ledger ({", ".join(_LEDGER_COLUMNS)})
    {_values(entries, ledger_casts)}
),
totals AS (
    INSERT INTO budget_model_usage AS m (agent, day, model, invocations, tokens, usd)
    {_values(totals, ["text", "text", "text", "bigint", "bigint", "bigint"])}
    ON CONFLICT (agent, day, model) DO UPDATE
       SET invocations = m.invocations + excluded.invocations,
           tokens = m.tokens + excluded.tokens, usd = m.usd + excluded.usd
)
INSERT INTO budget_usage AS u
       (scope, period, tokens_used, tokens_reserved, usd_used, usd_reserved)
SELECT scope, period, tokens, -unheld_tokens, usd, -unheld_usd
  FROM spend ORDER BY scope, period
ON CONFLICT (scope, period) DO UPDATE
   SET tokens_used = u.tokens_used + excluded.tokens_used,
       tokens_reserved = u.tokens_reserved + excluded.tokens_reserved,
       usd_used = u.usd_used + excluded.usd_used,
       usd_reserved = u.usd_reserved + excluded.usd_reserved
RETURNING u.scope, u.period, u.tokens_used, u.tokens_reserved, u.usd_used, u.usd_reserved
"""  # noqa: S608


# --- batch arithmetic -------------------------------------------------------------------------


def _held(settlements: Sequence[Settlement]) -> dict[str, list[int]]:
    """Per hold: [tokens, usd] its settlements in the batch held."""
    held: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for settlement in settlements:
        total = held[settlement.hold_id]
        total[0] += settlement.held_tokens
        total[1] += settlement.held_usd
    return held


def _spends(settlements: Sequence[Settlement], live: set[str]) -> dict[tuple[str, str], list[int]]:
    """Per scope row: [tokens spent, usd spent, tokens unheld, usd unheld] for a batch; a hold
    that was reclaimed (not in ``live``) unholds nothing, it was given back already."""
    spends: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for settlement in settlements:
        alive = settlement.hold_id in live
        for key in set(settlement.scopes):
            spend = spends[key]
            spend[0] += settlement.entry.tokens
            spend[1] += settlement.entry.usd
            if alive:
                spend[2] += settlement.held_tokens
                spend[3] += settlement.held_usd
    return spends


def _totals(entries: Sequence[LedgerEntry]) -> list[dict[str, Any]]:
    """The running totals' upserts for a batch: one per (agent, day, model)."""
    totals: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for entry in entries:
        total = totals[(entry.agent, aware_utc(entry.at).date().isoformat(), entry.model)]
        total[0] += 1
        total[1] += entry.tokens
        total[2] += entry.usd
    return [
        dict(zip(_TOTALS_KEYS, (agent, day, model, invocations, tokens, usd), strict=True))
        for (agent, day, model), (invocations, tokens, usd) in sorted(totals.items())
    ]
