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

A hold may be for one call or, as the budget uses it, an escrow lease for several
(:mod:`bastion.guard.lease`): :meth:`BudgetStore.top_up` grows or shrinks a live hold with the
same conditional upserts, and :meth:`BudgetStore.give_back` returns what it did not use.

Every statement is built once per dialect with bind parameters (:func:`_statements`), so each
call only binds values and SQLAlchemy's compiled cache serves the SQL. Settlement, the write
every LLM call makes, goes through the driver instead (:mod:`bastion.store.settlement`): a
batch of calls in one transaction, with running totals per agent, UTC day and model kept beside
the ledger, so today's figures are read without touching the ledger, which keeps every row for
audit.

A reservation row remembers what it holds and when it expires; :meth:`BudgetStore.reclaim`
deletes expired rows with ``DELETE … RETURNING`` (each row is returned to exactly one caller)
and hands their holds back. The tables and value types live in
:mod:`bastion.store.budget_rows` and are re-exported here.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, RowMapping

from bastion.store.budget_rows import (
    BudgetClaim,
    LedgerEntry,
    ModelUsage,
    Settlement,
    Shortfall,
    UsageRow,
    budget_alerts,
    budget_ledger,
    budget_model_usage,
    budget_reservations,
    budget_usage,
    resize_hold,
)
from bastion.store.engine import reading, writing
from bastion.store.settlement import SettlementWriter, WouldWait
from bastion.store.types import aware_utc

__all__ = [
    "BudgetClaim",
    "BudgetStore",
    "LedgerEntry",
    "ModelUsage",
    "Settlement",
    "Shortfall",
    "UsageRow",
    "WouldWait",
    "budget_alerts",
    "budget_ledger",
    "budget_model_usage",
    "budget_reservations",
    "budget_usage",
]


class BudgetStore:
    """Reserve, settle, release and reclaim budget; record the ledger and alert marks."""

    def __init__(self, engine: Engine, *, synchronous_settle: bool = False) -> None:
        """``synchronous_settle`` makes PostgreSQL wait for the WAL flush of every settlement;
        by default settlements commit asynchronously (holds always wait, see the module)."""
        self._engine = engine
        self._sql = _statements(engine.dialect.name)
        # SQLite has one writer at a time. Threads of this store queue on a lock rather than on
        # SQLite's busy handler, which sleeps and retries, so more tasks do not mean fewer
        # admissions; PostgreSQL locks rows, not the file, and is left to do so.
        serial = threading.Lock() if engine.dialect.name == "sqlite" else None
        self._serial: contextlib.AbstractContextManager[object] = serial or contextlib.nullcontext()
        self._settlements = SettlementWriter(engine, serial=serial, synchronous=synchronous_settle)

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
                self._hold(conn, ordered, tokens, usd)
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

    def top_up(
        self,
        reservation_id: str,
        *,
        claims: Sequence[BudgetClaim],
        tokens: int,
        usd: int,
        expires_at: datetime,
    ) -> Shortfall | Literal["gone"] | None:
        """Add ``tokens`` and ``usd`` (either may be negative) to a live hold, all or none.

        The conditional upserts of :meth:`reserve` on every claim, then the hold's own row,
        whose expiry moves to ``expires_at``. ``"gone"`` when the hold had expired and was
        reclaimed: nothing is changed and the caller starts a new one.
        """
        ordered = sorted(claims)
        try:
            with self._serial, writing(self._engine) as conn:
                params = {"b_id": reservation_id, "b_tokens": tokens, "b_usd": usd}
                found = conn.execute(
                    self._sql.grow_reservation,
                    {**params, "b_expires_at": aware_utc(expires_at)},
                ).first()
                if found is None:
                    return "gone"
                self._hold(conn, ordered, tokens, usd)
        except _Refused as refused:
            failed = refused.claim
            return Shortfall(failed, self.usage([(failed.scope, failed.period)])[0])
        return None

    @property
    def synchronous_settle(self) -> bool:
        """Whether settlements wait for PostgreSQL's WAL flush, as holds do (the constructor's
        flag; setting ``budget_synchronous_settle``). SQLite ignores it."""
        return self._settlements.synchronous

    @property
    def settles_inline(self) -> bool:
        """Whether :meth:`settle` can be tried with ``wait=False`` on an event loop's thread:
        SQLite, where a settlement is local file I/O of some tens of microseconds."""
        return self._settlements.inline

    def settle(
        self, settlements: Sequence[Settlement], *, expires_at: datetime, wait: bool = True
    ) -> list[UsageRow]:
        """Turn holds into spend for a batch of calls, in one transaction (a group commit).

        For each settlement the hold it was admitted from shrinks by what it held, its scopes'
        rows move that much from reserved to used (plus or minus the actual difference), and
        its ledger entry and running totals are written. A hold that expired and was reclaimed
        meanwhile gave its budget back already: the spend is still recorded, it was spent.
        Live holds' expiry moves to ``expires_at``. Returns the scope rows after the update.
        See :mod:`bastion.store.settlement` for how, and for PostgreSQL's commit.

        With ``wait=False`` (SQLite only, :attr:`settles_inline`) nothing waits: if a lock is
        taken, :class:`~bastion.store.settlement.WouldWait` is raised before anything is
        written, and the caller writes from a worker thread instead.
        """
        return self._settlements.settle(settlements, expires_at=expires_at, wait=wait)

    def close(self) -> None:
        """Close the settlement connection; the engine's dispose closes the rest."""
        self._settlements.close()

    def _hold(self, conn: Connection, ordered: list[BudgetClaim], tokens: int, usd: int) -> None:
        """The conditional upsert on every claim, in (scope, period) order; raises on the first
        that does not fit, which rolls the caller's transaction back. An amount that is not
        positive gives budget back and always fits, even on a row already over its limit."""
        for claim in ordered:
            tokens_checked = claim.tokens_limit is not None and tokens > 0
            usd_checked = claim.usd_limit is not None and usd > 0
            hold = self._sql.hold[(tokens_checked, usd_checked)]
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

    def give_back(
        self, reservation_id: str, *, scopes: Sequence[tuple[str, str]], tokens: int, usd: int
    ) -> bool:
        """Return part of a live hold unused; ``False`` (nothing changed) if it was reclaimed."""
        with self._serial, writing(self._engine) as conn:
            found = conn.execute(
                self._sql.shrink_only,
                {"b_id": reservation_id, "b_tokens": tokens, "b_usd": usd},
            ).first()
            if found is None:
                return False
            unholds = [
                {"b_scope": scope, "b_period": period, "b_tokens": tokens, "b_usd": usd}
                for scope, period in sorted(set(scopes))
            ]
            if unholds:
                conn.execute(self._sql.unhold, unholds)
        return True

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
    drop_reservation: sa.Executable
    grow_reservation: sa.Executable
    shrink_only: sa.Executable
    drop_expired: sa.Executable
    unhold: sa.Executable
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
        drop_reservation=sa.delete(budget_reservations).where(this_id).returning(*r),
        grow_reservation=resize_hold(+1, expires=True),
        shrink_only=resize_hold(-1, expires=False),
        drop_expired=sa.delete(budget_reservations)
        .where(r.expires_at < sa.bindparam("b_now", type_=r.expires_at.type))
        .returning(*r),
        unhold=sa.update(budget_usage)
        .where(u.scope == sa.bindparam("b_scope"), u.period == sa.bindparam("b_period"))
        .values(
            tokens_reserved=u.tokens_reserved - sa.bindparam("b_tokens", type_=sa.BigInteger()),
            usd_reserved=u.usd_reserved - sa.bindparam("b_usd", type_=sa.BigInteger()),
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
