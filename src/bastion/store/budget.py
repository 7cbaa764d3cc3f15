"""Budget usage, reservations, the invocation ledger and once-a-day alert marks.

The database, not the caller, keeps budgets honest across tasks, processes and machines. A
reservation is one write transaction holding one *conditional* ``UPDATE`` per scope row::

    UPDATE budget_usage SET tokens_reserved = tokens_reserved + :t, ...
     WHERE scope = :s AND period = :p AND tokens_used + tokens_reserved + :t <= :limit

and it succeeds only if every one of those updates touched its row; otherwise the transaction
rolls back and nothing is held anywhere. There is no read-then-write to race. Updates run in a
fixed (scope, period) order so two PostgreSQL transactions never wait on each other in a cycle.

Amounts are integers: tokens, and USD in micro-dollars, so limits compare exactly.
A reservation row remembers what it holds and when it expires; :meth:`BudgetStore.reclaim`
deletes expired rows with ``DELETE … RETURNING`` (each row is returned to exactly one caller)
and hands their holds back.

The tables are declared here, on the shared :data:`~bastion.store.schema.metadata`, so the test
that compares ``schema.py``'s metadata with the migrations covers them too.
"""

from __future__ import annotations

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
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        totals = self._insert(budget_model_usage).values(
            agent=sa.bindparam("agent"),
            day=sa.bindparam("day"),
            model=sa.bindparam("model"),
            invocations=1,
            tokens=sa.bindparam("tokens"),
            usd=sa.bindparam("usd"),
        )
        self._add_to_totals = totals.on_conflict_do_update(
            index_elements=[c.name for c in budget_model_usage.primary_key],
            set_={
                "invocations": budget_model_usage.c.invocations + 1,
                "tokens": budget_model_usage.c.tokens + totals.excluded.tokens,
                "usd": budget_model_usage.c.usd + totals.excluded.usd,
            },
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
        try:
            with writing(self._engine) as conn:
                self._ensure_rows(conn, ordered)
                for claim in ordered:
                    if conn.execute(_hold(claim, tokens, usd)).rowcount != 1:
                        raise _Refused(claim)
                conn.execute(
                    sa.insert(budget_reservations).values(
                        id=reservation_id,
                        agent=agent,
                        created_at=aware_utc(at),
                        expires_at=aware_utc(expires_at),
                        tokens=tokens,
                        usd=usd,
                        claims=[[c.scope, c.period] for c in ordered],
                    )
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
        with writing(self._engine) as conn:
            held = conn.execute(
                sa.delete(budget_reservations)
                .where(budget_reservations.c.id == reservation_id)
                .returning(budget_reservations.c.tokens, budget_reservations.c.usd)
            ).first()
            held_tokens, held_usd = (int(held.tokens), int(held.usd)) if held else (0, 0)
            self._ensure_rows(conn, [BudgetClaim(s, p) for s, p in sorted(scopes)])
            rows: list[UsageRow] = []
            for scope, period in sorted(scopes):
                row = conn.execute(
                    sa.update(budget_usage)
                    .where(budget_usage.c.scope == scope, budget_usage.c.period == period)
                    .values(
                        tokens_used=budget_usage.c.tokens_used + entry.tokens,
                        usd_used=budget_usage.c.usd_used + entry.usd,
                        tokens_reserved=budget_usage.c.tokens_reserved - held_tokens,
                        usd_reserved=budget_usage.c.usd_reserved - held_usd,
                    )
                    .returning(*budget_usage.c)
                ).one()
                rows.append(_usage(row._mapping))
            conn.execute(sa.insert(budget_ledger).values(_ledger_values(entry)))
            conn.execute(self._add_to_totals, _totals_values(entry))
        return rows

    def release(self, reservation_id: str) -> bool:
        """Give a hold back unspent; ``False`` if it was already settled or reclaimed."""
        with writing(self._engine) as conn:
            row = conn.execute(
                sa.delete(budget_reservations)
                .where(budget_reservations.c.id == reservation_id)
                .returning(*budget_reservations.c)
            ).first()
            if row is None:
                return False
            self._unhold(conn, [row._mapping])
        return True

    def reclaim(self, now: datetime) -> int:
        """Give back every hold that expired before ``now``; returns how many were reclaimed."""
        with writing(self._engine) as conn:
            rows = conn.execute(
                sa.delete(budget_reservations)
                .where(budget_reservations.c.expires_at < aware_utc(now))
                .returning(*budget_reservations.c)
            ).all()
            self._unhold(conn, [row._mapping for row in rows])
        return len(rows)

    def mark(self, scope: str, period: str, day: str, kind: str, at: datetime) -> bool:
        """Record that ``kind`` fired for a scope on ``day``; ``True`` only for the first caller."""
        statement = (
            self._insert(budget_alerts)
            .values(scope=scope, period=period, day=day, kind=kind, fired_at=aware_utc(at))
            .on_conflict_do_nothing()
            .returning(budget_alerts.c.kind)
        )
        with writing(self._engine) as conn:
            return conn.execute(statement).first() is not None

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

    def _ensure_rows(self, conn: Connection, claims: Sequence[BudgetClaim]) -> None:
        if not claims:
            return
        values = [
            {
                "scope": c.scope,
                "period": c.period,
                "tokens_used": 0,
                "tokens_reserved": 0,
                "usd_used": 0,
                "usd_reserved": 0,
            }
            for c in claims
        ]
        conn.execute(self._insert(budget_usage).values(values).on_conflict_do_nothing())

    def _unhold(self, conn: Connection, reservations: Sequence[RowMapping]) -> None:
        totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        for reservation in reservations:
            for scope, period in reservation["claims"]:
                total = totals[(scope, period)]
                total[0] += int(reservation["tokens"])
                total[1] += int(reservation["usd"])
        for (scope, period), (tokens, usd) in sorted(totals.items()):
            conn.execute(
                sa.update(budget_usage)
                .where(budget_usage.c.scope == scope, budget_usage.c.period == period)
                .values(
                    tokens_reserved=budget_usage.c.tokens_reserved - tokens,
                    usd_reserved=budget_usage.c.usd_reserved - usd,
                )
            )


class _Refused(Exception):
    """Rolls the reservation's transaction back; carries the claim that did not fit."""

    def __init__(self, claim: BudgetClaim) -> None:
        super().__init__(claim.scope)
        self.claim = claim


def _hold(claim: BudgetClaim, tokens: int, usd: int) -> sa.Update:
    c = budget_usage.c
    conditions = [c.scope == claim.scope, c.period == claim.period]
    if claim.tokens_limit is not None:
        conditions.append(c.tokens_used + c.tokens_reserved + tokens <= claim.tokens_limit)
    if claim.usd_limit is not None:
        conditions.append(c.usd_used + c.usd_reserved + usd <= claim.usd_limit)
    return (
        sa.update(budget_usage)
        .where(*conditions)
        .values(tokens_reserved=c.tokens_reserved + tokens, usd_reserved=c.usd_reserved + usd)
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


def _read_usage(conn: Connection, wanted: list[tuple[str, str]]) -> list[UsageRow]:
    statement = sa.select(budget_usage).where(
        sa.tuple_(budget_usage.c.scope, budget_usage.c.period).in_(wanted)
    )
    found = {(r.scope, r.period): _usage(r._mapping) for r in conn.execute(statement).all()}
    return [found.get(key, UsageRow(*key)) for key in wanted]


def _read_model_totals(conn: Connection, agent: str, day: str) -> list[ModelUsage]:
    rows = conn.execute(_MODEL_TOTALS, {"agent": agent, "day": day}).all()
    return [ModelUsage(r.model, int(r.invocations), int(r.tokens), int(r.usd)) for r in rows]


def _totals_values(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "agent": entry.agent,
        "day": aware_utc(entry.at).date().isoformat(),
        "model": entry.model,
        "tokens": entry.tokens,
        "usd": entry.usd,
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
