"""The budget's tables and the values that go in and out of them.

The tables are declared here, on the shared :data:`~bastion.store.schema.metadata`, so the test
that compares ``schema.py``'s metadata with the migrations covers them too. Amounts are
integers: tokens, and USD in micro-dollars, so limits compare exactly.

* ``budget_usage``: per scope and period (``agent:seller`` / ``day:2026-01-01``), what is used
  and what is held by reservations and leases;
* ``budget_reservations``: every live hold, what it holds, on which rows, until when;
* ``budget_ledger``: one row per priced LLM call, kept for audit;
* ``budget_model_usage``: running totals per agent, UTC day and model, beside the ledger;
* ``budget_alerts``: the once-a-day marks of alerts and exhaustion.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from bastion.store.schema import metadata
from bastion.store.types import JSONDocument, UtcDateTime, aware_utc

__all__ = [
    "BudgetClaim",
    "LedgerEntry",
    "ModelUsage",
    "Settlement",
    "Shortfall",
    "UsageRow",
    "budget_alerts",
    "budget_ledger",
    "budget_model_usage",
    "budget_reservations",
    "budget_usage",
    "ledger_values",
    "resize_hold",
    "usage_from",
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


@dataclass(frozen=True, slots=True)
class Settlement:
    """One call's spend: the hold it was admitted from and what it held there."""

    hold_id: str
    scopes: tuple[tuple[str, str], ...]
    held_tokens: int
    held_usd: int
    entry: LedgerEntry


def resize_hold(sign: int, *, expires: bool) -> sa.Executable:
    """``UPDATE`` a hold's row by ``sign`` times the bound amounts, ``RETURNING`` its id (no
    row: the hold was reclaimed); with ``expires`` its expiry moves to ``b_expires_at``."""
    r = budget_reservations.c
    tokens = sa.bindparam("b_tokens", type_=sa.BigInteger())
    usd = sa.bindparam("b_usd", type_=sa.BigInteger())
    values: dict[str, Any] = {
        "tokens": r.tokens + tokens if sign > 0 else r.tokens - tokens,
        "usd": r.usd + usd if sign > 0 else r.usd - usd,
    }
    if expires:
        values["expires_at"] = sa.bindparam("b_expires_at", type_=r.expires_at.type)
    return (
        sa.update(budget_reservations)
        .where(r.id == sa.bindparam("b_id"))
        .values(**values)
        .returning(r.id)
    )


def usage_from(row: Any) -> UsageRow:
    """A row of every budget_usage column, in table order, as a :class:`UsageRow`."""
    scope, period, tokens_used, tokens_reserved, usd_used, usd_reserved = row
    return UsageRow(
        scope, period, int(tokens_used), int(tokens_reserved), int(usd_used), int(usd_reserved)
    )


def ledger_values(entry: LedgerEntry) -> dict[str, Any]:
    """The ledger row for ``entry``, keyed by column name."""
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
