"""Budget usage, reservations, the invocation ledger and once-a-day alert marks.

The database, not the caller, keeps budgets honest across tasks, processes and machines. A
reservation is one write transaction holding one *conditional* upsert per scope row::

    INSERT INTO budget_usage VALUES (:s, :p, 0, :t, 0, :u)
    ON CONFLICT (scope, period) DO UPDATE SET tokens_reserved = tokens_reserved + :t, ...
     WHERE tokens_used + tokens_reserved + :t <= :limit
    RETURNING scope

and it succeeds only if every one of them returned its row; otherwise the transaction rolls
back and nothing is held anywhere. There is no read-then-write to race. A missing row is
created holding the need, which is safe because a need above a claim's limit is refused before
anything is written. Upserts run in a fixed (scope, period) order so two PostgreSQL
transactions never wait on each other in a cycle.

Every statement is built once per dialect with bind parameters (:func:`_statements`), so each
call only binds values and SQLAlchemy's compiled cache serves the SQL; a settlement writes all
its scopes in one multi-row upsert. :meth:`BudgetStore.settle` also keeps running totals per
agent, UTC day and model beside the ledger, in the same transaction, so today's figures are
read without touching the ledger, which keeps every row for audit.

Amounts are integers: tokens, and USD in micro-dollars, so limits compare exactly.
A reservation row remembers what it holds and when it expires; :meth:`BudgetStore.reclaim`
deletes expired rows with ``DELETE … RETURNING`` (each row is returned to exactly one caller)
and hands their holds back.

The tables are declared here, on the shared :data:`~bastion.store.schema.metadata`, so the test
that compares ``schema.py``'s metadata with the migrations covers them too.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, RowMapping

from bastion.store.engine import reading, writing
from bastion.store.schema import metadata
from bastion.store.types import JSONDocument, UtcDateTime, aware_utc

__all__ = [
    "BudgetClaim",
    "BudgetStore",
    "LedgerEntry",
    "ModelUsage",
    "Shortfall",
    "UsageRow",
    "budget_alerts",
    "budget_ledger",
    "budget_model_usage",
    "budget_reservations",
    "budget_usage",
]

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

budget_usage = sa.Table(
    "budget_usage",
    metadata,
    sa.Column("scope", sa.String(200), primary_key=True),
    sa.Column("period", sa.String(16), primary_key=True),
    sa.Column("tokens_used", sa.BigInteger(), nullable=False),
    sa.Column("tokens_reserved", sa.BigInteger(), nullable=False),
    sa.Column("usd_used", sa.BigInteger(), nullable=False),
    sa.Column("usd_reserved", sa.BigInteger(), nullable=False),
)

budget_reservations = sa.Table(
    "budget_reservations",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("agent", sa.String(200), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False, index=True),
    sa.Column("tokens", sa.BigInteger(), nullable=False),
    sa.Column("usd", sa.BigInteger(), nullable=False),
    sa.Column("claims", JSONDocument(), nullable=False),
)

budget_ledger = sa.Table(
    "budget_ledger",
    metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("agent", sa.String(200), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("tokens_in", sa.BigInteger(), nullable=False),
    sa.Column("tokens_out", sa.BigInteger(), nullable=False),
    sa.Column("tokens", sa.BigInteger(), nullable=False),
    sa.Column("usd", sa.BigInteger(), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Column("workflow", sa.String(200), nullable=True),
    sa.Column("operation", sa.String(200), nullable=True),
    sa.Column("phase", sa.String(64), nullable=True),
    sa.Index("ix_budget_ledger_agent_at", "agent", "at"),
)

budget_model_usage = sa.Table(
    "budget_model_usage",
    metadata,
    sa.Column("agent", sa.String(200), primary_key=True),
    sa.Column("day", sa.String(10), primary_key=True),
    sa.Column("model", sa.String(200), primary_key=True),
    sa.Column("invocations", sa.BigInteger(), nullable=False),
    sa.Column("tokens", sa.BigInteger(), nullable=False),
    sa.Column("usd", sa.BigInteger(), nullable=False),
)

budget_alerts = sa.Table(
    "budget_alerts",
    metadata,
    sa.Column("scope", sa.String(200), primary_key=True),
    sa.Column("period", sa.String(16), primary_key=True),
    sa.Column("day", sa.String(10), primary_key=True),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("fired_at", UtcDateTime(), nullable=False),
)


@dataclass(frozen=True, slots=True, order=True)
class BudgetClaim:
    """One scope row a reservation must fit in; ``None`` limits are unlimited (tracked only)."""

    scope: str
    period: str
    tokens_limit: int | None = None
    usd_limit: int | None = None


@dataclass(frozen=True, slots=True)
class UsageRow:
    """A scope row's figures: committed and held tokens and micro-USD."""

    scope: str
    period: str
    tokens_used: int = 0
    tokens_reserved: int = 0
    usd_used: int = 0
    usd_reserved: int = 0


@dataclass(frozen=True, slots=True)
class Shortfall:
    """Why a reservation was refused: the first claim that did not fit and its row then."""

    claim: BudgetClaim
    usage: UsageRow


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One priced invocation, as the ledger records it."""

    at: datetime
    agent: str
    model: str
    tokens_in: int
    tokens_out: int
    tokens: int
    usd: int
    run_id: str | None = None
    workflow: str | None = None
    operation: str | None = None
    phase: str | None = None


@dataclass(frozen=True, slots=True)
class ModelUsage:
    """Ledger totals for one model over a span of time."""

    model: str
    invocations: int
    tokens: int
    usd: int


class BudgetStore:
    """Reserve, settle, release and reclaim budget; record the ledger and alert marks."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sql = _statements(engine.dialect.name)
        # SQLite has one writer at a time. Threads of this store queue on a lock rather than on
        # SQLite's busy handler, which sleeps and retries, so more tasks do not mean fewer
        # admissions; PostgreSQL locks rows, not the file, and is left to do so.
        self._serial: contextlib.AbstractContextManager[object] = (
            threading.Lock() if engine.dialect.name == "sqlite" else contextlib.nullcontext()
        )

    def reserve(
        self,
        reservation_id: str,
        *,
        agent: str,
        claims: Sequence[BudgetClaim],
        tokens: int,
        usd: int,
        at: datetime,
        expires_at: datetime,
    ) -> Shortfall | None:
        """Hold ``tokens`` and ``usd`` on every claim, all or none; ``None`` when held.

        On refusal nothing is held and the returned :class:`Shortfall` names the first claim
        that did not fit, with its row as read after the rollback (for the message only).
        """
        ordered = sorted(claims)
        sql = self._sql
        try:
            # A claim whose limit is below the need can never fit: refuse it before writing, so
            # the upsert below may create a missing row holding the need without a check.
            for claim in ordered:
                if _over(claim.tokens_limit, tokens) or _over(claim.usd_limit, usd):
                    raise _Refused(claim)
            with self._serial, writing(self._engine) as conn:
                for claim in ordered:
                    hold = sql.hold[(claim.tokens_limit is not None, claim.usd_limit is not None)]
                    params = {
                        "b_scope": claim.scope,
                        "b_period": claim.period,
                        "b_tokens": tokens,
                        "b_usd": usd,
                        "b_tokens_limit": claim.tokens_limit,
                        "b_usd_limit": claim.usd_limit,
                    }
                    if conn.execute(hold, params).first() is None:
                        raise _Refused(claim)
                conn.execute(
                    sql.add_reservation,
                    {
                        "id": reservation_id,
                        "agent": agent,
                        "created_at": aware_utc(at),
                        "expires_at": aware_utc(expires_at),
                        "tokens": tokens,
                        "usd": usd,
                        "claims": [[c.scope, c.period] for c in ordered],
                    },
                )
        except _Refused as refused:
            failed = refused.claim
            return Shortfall(failed, self.usage([(failed.scope, failed.period)])[0])
        return None

    def settle(
        self,
        reservation_id: str,
        *,
        scopes: Sequence[tuple[str, str]],
        entry: LedgerEntry,
    ) -> list[UsageRow]:
        """Turn a hold into spend: drop the reservation, add ``entry`` to usage and the ledger.

        The spend is recorded even if the hold had already expired and been reclaimed: it was
        spent. Returns the scope rows after the update, for alerts.
        """
        sql = self._sql
        with self._serial, writing(self._engine) as conn:
            held = conn.execute(sql.take_reservation, {"b_id": reservation_id}).first()
            held_tokens, held_usd = (int(held.tokens), int(held.usd)) if held else (0, 0)
            spends = [
                {
                    "b_scope": scope,
                    "b_period": period,
                    "b_tokens": entry.tokens,
                    "b_usd": entry.usd,
                    "b_unheld_tokens": -held_tokens,
                    "b_unheld_usd": -held_usd,
                }
                for scope, period in sorted(set(scopes))
            ]
            # One multi-row upsert for every scope, rows in (scope, period) order: PostgreSQL
            # takes the row locks in that order, as reserve does, so no two wait in a cycle.
            found = conn.execute(sql.spend, spends).all() if spends else []
            rows = sorted((_usage(row._mapping) for row in found), key=_key)
            conn.execute(sql.add_ledger, _ledger_values(entry))
            conn.execute(sql.add_to_totals, _totals_values(entry))
        return rows

    def release(self, reservation_id: str) -> bool:
        """Give a hold back unspent; ``False`` if it was already settled or reclaimed."""
        with self._serial, writing(self._engine) as conn:
            row = conn.execute(self._sql.drop_reservation, {"b_id": reservation_id}).first()
            if row is None:
                return False
            self._unhold(conn, [row._mapping])
        return True

    def reclaim(self, now: datetime) -> int:
        """Give back every hold that expired before ``now``; returns how many were reclaimed."""
        with self._serial, writing(self._engine) as conn:
            rows = conn.execute(self._sql.drop_expired, {"b_now": aware_utc(now)}).all()
            self._unhold(conn, [row._mapping for row in rows])
        return len(rows)

    def mark(self, scope: str, period: str, day: str, kind: str, at: datetime) -> bool:
        """Record that ``kind`` fired for a scope on ``day``; ``True`` only for the first caller."""
        params = {
            "b_scope": scope,
            "b_period": period,
            "b_day": day,
            "b_kind": kind,
            "b_fired_at": aware_utc(at),
        }
        with self._serial, writing(self._engine) as conn:
            return conn.execute(self._sql.mark, params).first() is not None

    def usage(self, keys: Iterable[tuple[str, str]]) -> list[UsageRow]:
        """The rows for ``keys``, in order; a row never written reads as all zeros."""
        wanted = list(keys)
        if not wanted:
            return []
        with reading(self._engine) as conn:
            return _read_usage(conn, wanted)

    def day(
        self, keys: Iterable[tuple[str, str]], *, agent: str, day: str
    ) -> tuple[list[UsageRow], list[ModelUsage]]:
        """:meth:`usage` for ``keys`` and :meth:`model_totals` for ``agent`` on ``day``, in one
        read: a fixed two statements that touch no ledger row, however long the ledger is."""
        wanted = list(keys)
        with reading(self._engine) as conn:
            rows = _read_usage(conn, wanted) if wanted else []
            return rows, _read_model_totals(conn, agent, day)

    def by_model(self, agent: str, start: datetime, end: datetime) -> list[ModelUsage]:
        """Ledger totals per model for ``agent`` with ``start <= at < end``, by model name."""
        c = budget_ledger.c
        statement = (
            sa.select(
                c.model,
                sa.func.count().label("invocations"),
                sa.func.coalesce(sa.func.sum(c.tokens), 0).label("tokens"),
                sa.func.coalesce(sa.func.sum(c.usd), 0).label("usd"),
            )
            .where(c.agent == agent, c.at >= aware_utc(start), c.at < aware_utc(end))
            .group_by(c.model)
            .order_by(c.model)
        )
        with reading(self._engine) as conn:
            rows = conn.execute(statement).all()
        return [ModelUsage(r.model, int(r.invocations), int(r.tokens), int(r.usd)) for r in rows]

    def model_totals(self, agent: str, day: str) -> list[ModelUsage]:
        """Running totals per model for ``agent`` on the UTC ``day`` (``YYYY-MM-DD``), by model.

        Read from the totals that :meth:`settle` keeps beside the ledger: one indexed read,
        whatever the ledger's size. :meth:`by_model` aggregates the ledger itself (for audit).
        """
        with reading(self._engine) as conn:
            return _read_model_totals(conn, agent, day)

    def _unhold(self, conn: Connection, reservations: Sequence[RowMapping]) -> None:
        totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        for reservation in reservations:
            for scope, period in reservation["claims"]:
                total = totals[(scope, period)]
                total[0] += int(reservation["tokens"])
                total[1] += int(reservation["usd"])
        unholds = [
            {"b_scope": scope, "b_period": period, "b_tokens": tokens, "b_usd": usd}
            for (scope, period), (tokens, usd) in sorted(totals.items())
        ]
        if unholds:
            conn.execute(self._sql.unhold, unholds)


class _Refused(Exception):
    """Rolls the reservation's transaction back; carries the claim that did not fit."""

    def __init__(self, claim: BudgetClaim) -> None:
        super().__init__(claim.scope)
        self.claim = claim


def _key(row: UsageRow) -> tuple[str, str]:
    return (row.scope, row.period)


def _over(limit: int | None, need: int) -> bool:
    return limit is not None and need > limit


@dataclass(frozen=True, slots=True)
class _Statements:
    """Every write the store sends, built once per dialect with bind parameters.

    Built once, a statement's compiled form stays in SQLAlchemy's compiled cache, so a call
    only binds values: nothing is rebuilt or recompiled per reservation.
    """

    hold: dict[tuple[bool, bool], sa.Executable]
    add_reservation: sa.Executable
    take_reservation: sa.Executable
    drop_reservation: sa.Executable
    drop_expired: sa.Executable
    spend: sa.Executable
    unhold: sa.Executable
    add_ledger: sa.Executable
    add_to_totals: sa.Executable
    mark: sa.Executable


@functools.cache
def _statements(dialect: str) -> _Statements:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    u, r = budget_usage.c, budget_reservations.c
    key = [u.scope.name, u.period.name]

    def hold(tokens_limited: bool, usd_limited: bool) -> sa.Executable:
        # Insert the row holding the need, or add the need to the row if it still fits: the
        # conditional UPDATE and the missing row's creation in one statement.
        new = insert(budget_usage).values(
            scope=sa.bindparam("b_scope"),
            period=sa.bindparam("b_period"),
            tokens_used=0,
            tokens_reserved=sa.bindparam("b_tokens", type_=sa.BigInteger()),
            usd_used=0,
            usd_reserved=sa.bindparam("b_usd", type_=sa.BigInteger()),
        )
        fits = []
        if tokens_limited:
            limit = sa.bindparam("b_tokens_limit", type_=sa.BigInteger())
            fits.append(u.tokens_used + u.tokens_reserved + new.excluded.tokens_reserved <= limit)
        if usd_limited:
            limit = sa.bindparam("b_usd_limit", type_=sa.BigInteger())
            fits.append(u.usd_used + u.usd_reserved + new.excluded.usd_reserved <= limit)
        return new.on_conflict_do_update(
            index_elements=key,
            set_={
                "tokens_reserved": u.tokens_reserved + new.excluded.tokens_reserved,
                "usd_reserved": u.usd_reserved + new.excluded.usd_reserved,
            },
            where=sa.and_(*fits) if fits else None,
        ).returning(u.scope)

    spend = insert(budget_usage).values(
        scope=sa.bindparam("b_scope"),
        period=sa.bindparam("b_period"),
        tokens_used=sa.bindparam("b_tokens", type_=sa.BigInteger()),
        tokens_reserved=sa.bindparam("b_unheld_tokens", type_=sa.BigInteger()),
        usd_used=sa.bindparam("b_usd", type_=sa.BigInteger()),
        usd_reserved=sa.bindparam("b_unheld_usd", type_=sa.BigInteger()),
    )
    totals = insert(budget_model_usage).values(
        agent=sa.bindparam("b_agent"),
        day=sa.bindparam("b_day"),
        model=sa.bindparam("b_model"),
        invocations=1,
        tokens=sa.bindparam("b_tokens", type_=sa.BigInteger()),
        usd=sa.bindparam("b_usd", type_=sa.BigInteger()),
    )
    alert = insert(budget_alerts).values(
        scope=sa.bindparam("b_scope"),
        period=sa.bindparam("b_period"),
        day=sa.bindparam("b_day"),
        kind=sa.bindparam("b_kind"),
        fired_at=sa.bindparam("b_fired_at", type_=budget_alerts.c.fired_at.type),
    )
    this_id = r.id == sa.bindparam("b_id")
    return _Statements(
        hold={(t, d): hold(t, d) for t in (False, True) for d in (False, True)},
        add_reservation=sa.insert(budget_reservations),
        take_reservation=sa.delete(budget_reservations).where(this_id).returning(r.tokens, r.usd),
        drop_reservation=sa.delete(budget_reservations).where(this_id).returning(*r),
        drop_expired=sa.delete(budget_reservations)
        .where(r.expires_at < sa.bindparam("b_now", type_=r.expires_at.type))
        .returning(*r),
        spend=spend.on_conflict_do_update(
            index_elements=key,
            set_={
                "tokens_used": u.tokens_used + spend.excluded.tokens_used,
                "tokens_reserved": u.tokens_reserved + spend.excluded.tokens_reserved,
                "usd_used": u.usd_used + spend.excluded.usd_used,
                "usd_reserved": u.usd_reserved + spend.excluded.usd_reserved,
            },
        ).returning(*u),
        unhold=sa.update(budget_usage)
        .where(u.scope == sa.bindparam("b_scope"), u.period == sa.bindparam("b_period"))
        .values(
            tokens_reserved=u.tokens_reserved - sa.bindparam("b_tokens", type_=sa.BigInteger()),
            usd_reserved=u.usd_reserved - sa.bindparam("b_usd", type_=sa.BigInteger()),
        ),
        add_ledger=sa.insert(budget_ledger),
        add_to_totals=totals.on_conflict_do_update(
            index_elements=[c.name for c in budget_model_usage.primary_key],
            set_={
                "invocations": budget_model_usage.c.invocations + 1,
                "tokens": budget_model_usage.c.tokens + totals.excluded.tokens,
                "usd": budget_model_usage.c.usd + totals.excluded.usd,
            },
        ),
        mark=alert.on_conflict_do_nothing().returning(budget_alerts.c.kind),
    )


def _usage(row: RowMapping) -> UsageRow:
    return UsageRow(
        scope=row["scope"],
        period=row["period"],
        tokens_used=int(row["tokens_used"]),
        tokens_reserved=int(row["tokens_reserved"]),
        usd_used=int(row["usd_used"]),
        usd_reserved=int(row["usd_reserved"]),
    )


_MODEL_TOTALS = (
    sa.select(
        budget_model_usage.c.model,
        budget_model_usage.c.invocations,
        budget_model_usage.c.tokens,
        budget_model_usage.c.usd,
    )
    .where(
        budget_model_usage.c.agent == sa.bindparam("agent"),
        budget_model_usage.c.day == sa.bindparam("day"),
    )
    .order_by(budget_model_usage.c.model)
)


_USAGE = sa.select(budget_usage).where(
    sa.tuple_(budget_usage.c.scope, budget_usage.c.period).in_(sa.bindparam("keys", expanding=True))
)


def _read_usage(conn: Connection, wanted: list[tuple[str, str]]) -> list[UsageRow]:
    found = {
        (r.scope, r.period): _usage(r._mapping)
        for r in conn.execute(_USAGE, {"keys": wanted}).all()
    }
    return [found.get(key, UsageRow(*key)) for key in wanted]


def _read_model_totals(conn: Connection, agent: str, day: str) -> list[ModelUsage]:
    rows = conn.execute(_MODEL_TOTALS, {"agent": agent, "day": day}).all()
    return [ModelUsage(r.model, int(r.invocations), int(r.tokens), int(r.usd)) for r in rows]


def _totals_values(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "b_agent": entry.agent,
        "b_day": aware_utc(entry.at).date().isoformat(),
        "b_model": entry.model,
        "b_tokens": entry.tokens,
        "b_usd": entry.usd,
    }


def _ledger_values(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "at": aware_utc(entry.at),
        "agent": entry.agent,
        "model": entry.model,
        "tokens_in": entry.tokens_in,
        "tokens_out": entry.tokens_out,
        "tokens": entry.tokens,
        "usd": entry.usd,
        "run_id": entry.run_id,
        "workflow": entry.workflow,
        "operation": entry.operation,
        "phase": entry.phase,
    }
