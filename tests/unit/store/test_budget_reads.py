"""usage_today() reads running totals: a constant number of statements, none on the ledger."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from alembic import command

from bastion.clock import SimClock
from bastion.guard.budget import Budget, BudgetLimits, BudgetUsage, ModelUsage
from bastion.llm.pricing import Cost
from bastion.store import Store
from bastion.store.budget import budget_ledger
from bastion.store.engine import writing
from bastion.store.migrate import alembic_config

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
LEDGER_ROWS = 200_000
MODELS = ("model-a", "model-b", "model-c")


@contextmanager
def _statements(engine: sa.Engine) -> Iterator[list[str]]:
    """Every SQL statement ``engine`` sends while the block runs."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def _ledger_rows(count: int) -> Iterator[dict[str, Any]]:
    """Ledger rows: most for agent ``a`` today, the rest on other days or for agent ``b``."""
    for n in range(count):
        agent, at = ("b", T0) if n % 4 == 0 else ("a", T0 - timedelta(days=n % 3))
        yield {
            "at": at + timedelta(microseconds=n),
            "agent": agent,
            "model": MODELS[n % len(MODELS)],
            "tokens_in": 1,
            "tokens_out": 1,
            "tokens": 2 + n % 7,
            "usd": 10 + n % 11,
        }


def _fill_ledger_before_the_totals(store: Store, count: int) -> None:
    """Write ``count`` rows straight into the ledger at revision 0005, then upgrade to head.

    This is a database that grew before the totals existed: 0006 must fill them from it.
    """
    config = alembic_config()
    with writing(store.engine) as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0005")
        rows = list(_ledger_rows(count))
        for start in range(0, count, 20_000):
            conn.execute(sa.insert(budget_ledger), rows[start : start + 20_000])
        command.upgrade(config, "head")


def _read(budget: Budget, store: Store) -> tuple[BudgetUsage, list[str]]:
    with _statements(store.engine) as sent:
        usage = budget.usage_today()
    return usage, sent


async def test_usage_today_reads_totals_not_the_ledger(store: Store) -> None:
    """With 200k ledger rows, usage_today sends as few statements as on an empty ledger, none
    of them on the ledger, and its figures equal the ledger's own aggregate."""
    clock = SimClock(start=T0.timestamp())
    budget = Budget(store, clock=clock, agent="a", limits=BudgetLimits(daily_tokens=10**9))
    _, empty = _read(budget, store)
    _fill_ledger_before_the_totals(store, LEDGER_ROWS)
    for n, model in enumerate((*MODELS, "model-d")):
        reservation = await budget.reserve(Cost(100), model=model)
        await reservation.commit(Cost(50 + n, (3_000 + n) / 1e6), tokens_in=40, tokens_out=10 + n)
    usage, sent = _read(budget, store)
    assert len(sent) == len(empty)
    assert len([statement for statement in sent if statement.startswith("SELECT")]) == 2
    assert not [statement for statement in sent if "budget_ledger" in statement]
    expected = {
        m.model: ModelUsage(m.invocations, m.tokens, m.usd / 1_000_000)
        for m in store.budget.by_model("a", T0.replace(hour=0), T0.replace(hour=0) + timedelta(1))
    }
    assert usage.by_model == expected
    assert usage.invocations_today == sum(m.invocations for m in expected.values())
    written_today = sum(1 for r in _ledger_rows(LEDGER_ROWS) if r["agent"] == "a" and r["at"] >= T0)
    assert usage.invocations_today == written_today + 4
    assert usage.tokens_used_today == 50 + 51 + 52 + 53


async def test_totals_follow_every_commit_by_day_and_model(store: Store) -> None:
    """Each commit adds to its model's totals for its UTC day only; tomorrow starts at zero."""
    clock = SimClock(start=T0.timestamp())
    budget = Budget(store, clock=clock, agent="a", limits=BudgetLimits())
    for model in ("m", "m", "n"):
        reservation = await budget.reserve(Cost(10), model=model)
        await reservation.commit(Cost(7, 5e-6))
    assert budget.usage_today().by_model == {
        "m": ModelUsage(2, 14, 10 / 1_000_000),
        "n": ModelUsage(1, 7, 5 / 1_000_000),
    }
    clock.advance(86_400)
    assert budget.usage_today().by_model == {}
    assert budget.usage_today().invocations_today == 0
