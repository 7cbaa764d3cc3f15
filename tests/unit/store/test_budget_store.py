"""BudgetStore: conditional holds, settle, release and reclaim on both backends."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine.default import CacheStats

from bastion.store import Store
from bastion.store.budget import BudgetClaim, LedgerEntry

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
KEY = ("agent:a", "day:2026-01-01")


def test_hold_is_refused_without_touching_other_claims(store: Store) -> None:
    """A claim that does not fit rolls back the whole reservation and is named."""
    claims = [BudgetClaim(*KEY, tokens_limit=100), BudgetClaim("fleet", KEY[1], tokens_limit=10)]
    later = T0 + timedelta(minutes=5)
    shortfall = store.budget.reserve(
        "r1", agent="a", claims=claims, tokens=50, usd=0, at=T0, expires_at=later
    )
    assert shortfall is not None
    assert shortfall.claim.scope == "fleet"
    assert [r.tokens_reserved for r in store.budget.usage([KEY, ("fleet", KEY[1])])] == [0, 0]


def test_settle_release_and_reclaim(store: Store) -> None:
    """Settle moves a hold to spend; release and reclaim give holds back exactly once."""
    claims = [BudgetClaim(*KEY, tokens_limit=100)]
    for rid in ("r1", "r2", "r3"):
        assert (
            store.budget.reserve(
                rid,
                agent="a",
                claims=claims,
                tokens=30,
                usd=5,
                at=T0,
                expires_at=T0 + timedelta(seconds=1),
            )
            is None
        )
    entry = LedgerEntry(at=T0, agent="a", model="m", tokens_in=10, tokens_out=10, tokens=20, usd=4)
    (row,) = store.budget.settle("r1", scopes=[KEY], entry=entry)
    assert (row.tokens_used, row.tokens_reserved, row.usd_used, row.usd_reserved) == (20, 60, 4, 10)
    assert store.budget.release("r2") is True
    assert store.budget.release("r2") is False
    assert store.budget.reclaim(T0 + timedelta(seconds=2)) == 1
    (row,) = store.budget.usage([KEY])
    assert (row.tokens_used, row.tokens_reserved, row.usd_reserved) == (20, 0, 0)
    (model,) = store.budget.by_model("a", T0, T0 + timedelta(days=1))
    assert (model.model, model.invocations, model.tokens, model.usd) == ("m", 1, 20, 4)


def test_mark_wins_once(store: Store) -> None:
    """An alert mark is won by the first caller only."""
    assert store.budget.mark(*KEY, "2026-01-01", "alert:tokens", T0) is True
    assert store.budget.mark(*KEY, "2026-01-01", "alert:tokens", T0) is False


def _cycle(store: Store, n: int, claims: list[BudgetClaim]) -> None:
    rid = f"cycle-{n}"
    later = T0 + timedelta(minutes=5)
    assert (
        store.budget.reserve(
            rid, agent="a", claims=claims, tokens=1, usd=1, at=T0, expires_at=later
        )
        is None
    )
    entry = LedgerEntry(at=T0, agent="a", model="m", tokens_in=1, tokens_out=0, tokens=1, usd=1)
    store.budget.settle(rid, scopes=[(c.scope, c.period) for c in claims], entry=entry)


def test_a_reservation_cycle_sends_few_statements_all_compiled_once(store: Store) -> None:
    """Warm, reserve+settle on 4 scopes is 4 holds + 1 insert, then 4 writes (every scope's
    spend in one upsert), and every statement comes from SQLAlchemy's compiled cache."""
    claims = [
        BudgetClaim(*KEY, tokens_limit=1_000),
        BudgetClaim("agent:a", "month:2026-01", usd_limit=1_000),
        BudgetClaim("fleet", KEY[1], tokens_limit=1_000, usd_limit=1_000),
        BudgetClaim("run:r", "all"),
    ]
    _cycle(store, 0, claims)
    sent: list[tuple[str, object]] = []

    def record(_conn: Any, _cursor: Any, statement: str, _p: Any, context: Any, _m: Any) -> None:
        if statement not in {"BEGIN", "BEGIN IMMEDIATE", "COMMIT"}:
            sent.append((statement.split(maxsplit=1)[0], getattr(context, "cache_hit", None)))

    sa.event.listen(store.engine, "before_cursor_execute", record)
    try:
        for n in range(1, 4):
            _cycle(store, n, claims)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", record)
    per_cycle = ["INSERT"] * 5 + ["DELETE", "INSERT", "INSERT", "INSERT"]
    assert [verb for verb, _ in sent] == per_cycle * 3
    assert {hit for _, hit in sent} == {CacheStats.CACHE_HIT}
    rows = store.budget.usage([(c.scope, c.period) for c in claims])
    assert [(r.tokens_used, r.tokens_reserved, r.usd_used, r.usd_reserved) for r in rows] == [
        (4, 0, 4, 0)
    ] * 4


def test_a_need_above_a_limit_is_refused_without_creating_rows(store: Store) -> None:
    """A claim whose limit is below the need refuses before writing: no row, no hold."""
    claims = [BudgetClaim(*KEY, tokens_limit=100), BudgetClaim("fleet", KEY[1], usd_limit=5)]
    later = T0 + timedelta(minutes=5)
    shortfall = store.budget.reserve(
        "r1", agent="a", claims=claims, tokens=50, usd=6, at=T0, expires_at=later
    )
    assert shortfall is not None
    assert shortfall.claim.scope == "fleet"
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM budget_usage")).scalar() == 0
        assert conn.execute(sa.text("SELECT COUNT(*) FROM budget_reservations")).scalar() == 0


def test_threads_of_one_store_never_hold_more_than_the_limit(store: Store) -> None:
    """8 threads reserving and settling on one store admit exactly what fits, no more."""
    claims = [BudgetClaim(*KEY, tokens_limit=1_000), BudgetClaim("fleet", KEY[1])]
    later = T0 + timedelta(minutes=5)
    admitted: list[int] = []

    def work(worker: int) -> None:
        for n in range(40):
            rid = f"t{worker}-{n}"
            shortfall = store.budget.reserve(
                rid, agent="a", claims=claims, tokens=7, usd=0, at=T0, expires_at=later
            )
            if shortfall is None:
                entry = LedgerEntry(
                    at=T0, agent="a", model="m", tokens_in=7, tokens_out=0, tokens=7, usd=0
                )
                store.budget.settle(rid, scopes=[KEY, ("fleet", KEY[1])], entry=entry)
                admitted.append(7)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    mine, fleet = store.budget.usage([KEY, ("fleet", KEY[1])])
    assert mine.tokens_used == fleet.tokens_used == sum(admitted) == 7 * (1_000 // 7)
    assert mine.tokens_reserved == fleet.tokens_reserved == 0
    (model,) = store.budget.model_totals("a", "2026-01-01")
    assert (model.invocations, model.tokens) == (1_000 // 7, sum(admitted))
