"""Ledger retention deletes exactly the rows older than the cut-off, in batches, and no total."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from bastion.clock import SimClock
from bastion.errors import ConfigError, ErrorCode
from bastion.guard.budget import Budget, BudgetLimits
from bastion.llm.pricing import Cost
from bastion.store import Store
from bastion.store.budget import (
    LedgerEntry,
    Settlement,
    budget_ledger,
    budget_model_usage,
    budget_usage,
)
from bastion.store.retention import LedgerRetention

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
"""When the tests prune: ten days of spend lie behind it."""


async def _ten_days_of_spend(store: Store) -> Budget:
    """Three priced calls a day, a minute apart, for ten days up to T0, through the budget
    itself; its clock is left on T0's day."""
    clock = SimClock(start=(T0 - timedelta(days=9)).timestamp())
    budget = Budget(store, clock=clock, agent="a", limits=BudgetLimits(monthly_tokens=10**9))
    for day in range(10):
        if day:
            clock.advance(86_400 - 180)
        for n, model in enumerate(("m", "m", "n")):
            reservation = await budget.reserve(Cost(100), model=model)
            await reservation.commit(Cost(10 + n, 2e-6), tokens_in=8, tokens_out=2 + n)
            clock.advance(60)
    return budget


def _ledger(store: Store) -> dict[int, datetime]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(budget_ledger.c.id, budget_ledger.c.at)).all()
    return {int(row.id): row.at for row in rows}


def _totals(store: Store) -> dict[str, list[Any]]:
    """Every row of both running-total tables, in key order."""
    with store.engine.connect() as conn:
        return {
            table.name: [
                tuple(row)
                for row in conn.execute(sa.select(table).order_by(*table.primary_key)).all()
            ]
            for table in (budget_usage, budget_model_usage)
        }


def _retention(store: Store, days: int, batch_size: int = 4) -> LedgerRetention:
    return LedgerRetention(store.engine, days=days, batch_size=batch_size, pause_seconds=0)


async def test_prune_deletes_exactly_the_rows_older_than_the_cutoff(store: Store) -> None:
    """Three days kept at T0: the 18 calls of the six days before go, in several batches; the
    rest stay, the first of them exactly at the cut-off."""
    await _ten_days_of_spend(store)
    retention = _retention(store, days=3)
    cutoff = retention.cutoff(T0)
    before = _ledger(store)
    older = {i for i, at in before.items() if at < cutoff}
    assert len(before) == 30
    assert len(older) == 18
    assert retention.expired(T0) == 18
    assert retention.prune(T0) == 18
    assert set(_ledger(store)) == set(before) - older
    assert min(_ledger(store).values()) == cutoff
    assert retention.expired(T0) == 0
    assert retention.prune(T0) == 0


async def test_prune_keeps_every_running_total(store: Store) -> None:
    """Totals per scope and per agent, day and model read the same after a prune: retention
    is about the audit trail, not a refund."""
    budget = await _ten_days_of_spend(store)
    totals, today = _totals(store), budget.usage_today()
    assert _retention(store, days=1).prune(T0) > 0
    assert _totals(store) == totals
    assert budget.usage_today() == today
    assert today.invocations_today == 3


def test_a_row_at_the_cutoff_is_kept_and_one_just_before_it_goes(store: Store) -> None:
    """The cut-off is now - days; a row written after newer ones is found all the same."""
    retention = _retention(store, days=30)
    cutoff = retention.cutoff(T0)
    for at in (T0, cutoff, cutoff - timedelta(microseconds=1), T0 - timedelta(days=400)):
        entry = LedgerEntry(at=at, agent="a", model="m", tokens_in=1, tokens_out=1, tokens=2, usd=1)
        store.budget.settle([Settlement("none", (), 0, 0, entry)], expires_at=at)
    assert retention.prune(T0) == 2
    assert sorted(_ledger(store).values()) == [cutoff, T0]


async def test_should_stop_ends_the_prune_between_batches(store: Store) -> None:
    """A stop asked for keeps what was deleted; the next prune takes the rest."""
    await _ten_days_of_spend(store)
    retention = _retention(store, days=3, batch_size=5)
    assert retention.prune(T0, should_stop=lambda: True) == 5
    assert retention.expired(T0) == 13
    assert retention.prune(T0) == 13


@pytest.mark.parametrize("days", [0, -1])
def test_fewer_than_one_day_is_a_config_error_with_the_fix(store: Store, days: int) -> None:
    with pytest.raises(ConfigError, match="BASTION_BUDGET_LEDGER_RETENTION_DAYS") as info:
        LedgerRetention(store.engine, days=days)
    assert info.value.code is ErrorCode.CONFIG
    assert "Fix:" in str(info.value)
