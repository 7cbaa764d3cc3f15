"""BudgetStore: conditional holds, top-ups, batched settlements, give-backs, release and
reclaim, on both backends."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from bastion.store import Store
from bastion.store.budget import BudgetClaim, LedgerEntry, Settlement, WouldWait

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
KEY = ("agent:a", "day:2026-01-01")
LATER = T0 + timedelta(minutes=5)


def _entry(tokens: int, usd: int = 0, model: str = "m") -> LedgerEntry:
    return LedgerEntry(
        at=T0, agent="a", model=model, tokens_in=tokens, tokens_out=0, tokens=tokens, usd=usd
    )


def _settle(store: Store, hold: str, scopes: list[tuple[str, str]], held: int, spent: int) -> Any:
    settlement = Settlement(hold, tuple(scopes), held, 0, _entry(spent))
    return store.budget.settle([settlement], expires_at=LATER)


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
    settled = Settlement("r1", (KEY,), held_tokens=30, held_usd=5, entry=entry)
    (row,) = store.budget.settle([settled], expires_at=T0 + timedelta(seconds=10))
    assert (row.tokens_used, row.tokens_reserved, row.usd_used, row.usd_reserved) == (20, 60, 4, 10)
    assert store.budget.release("r2") is True
    assert store.budget.release("r2") is False
    # r3 expired; r1, settled in full, lives on (empty) until its moved expiry
    assert store.budget.reclaim(T0 + timedelta(seconds=2)) == 1
    (row,) = store.budget.usage([KEY])
    assert (row.tokens_used, row.tokens_reserved, row.usd_reserved) == (20, 0, 0)
    (model,) = store.budget.by_model("a", T0, T0 + timedelta(days=1))
    assert (model.model, model.invocations, model.tokens, model.usd) == ("m", 1, 20, 4)


def test_mark_wins_once(store: Store) -> None:
    """An alert mark is won by the first caller only."""
    assert store.budget.mark(*KEY, "2026-01-01", "alert:tokens", T0) is True
    assert store.budget.mark(*KEY, "2026-01-01", "alert:tokens", T0) is False


def test_top_up_grows_and_shrinks_a_hold_and_refuses_past_a_limit(store: Store) -> None:
    """A lease's top-up is conditional like a hold, gives back when negative even on a row
    over its limit, moves the expiry, and says "gone" for a reclaimed hold."""
    claims = [BudgetClaim(*KEY, tokens_limit=100)]
    assert (
        store.budget.reserve(
            "L", agent="a", claims=claims, tokens=40, usd=0, at=T0, expires_at=LATER
        )
        is None
    )
    assert store.budget.top_up("L", claims=claims, tokens=50, usd=0, expires_at=LATER) is None
    refused = store.budget.top_up("L", claims=claims, tokens=11, usd=0, expires_at=LATER)
    assert refused is not None
    assert refused != "gone"
    assert (refused.usage.tokens_reserved, refused.claim.tokens_limit) == (90, 100)
    _settle(store, "L", [KEY], held=10, spent=40)  # 30 more than it held: 120 of 100
    assert store.budget.top_up("L", claims=claims, tokens=-20, usd=0, expires_at=LATER) is None
    (row,) = store.budget.usage([KEY])
    assert (row.tokens_used, row.tokens_reserved) == (40, 60)
    later = LATER + timedelta(minutes=5)
    assert store.budget.top_up("L", claims=claims, tokens=0, usd=0, expires_at=later) is None
    assert store.budget.reclaim(LATER + timedelta(seconds=1)) == 0  # the expiry moved
    assert store.budget.reclaim(later + timedelta(seconds=1)) == 1
    assert store.budget.top_up("L", claims=claims, tokens=1, usd=0, expires_at=later) == "gone"


def test_give_back_returns_part_of_a_live_hold(store: Store) -> None:
    """Giving back unused budget lowers the hold and every scope row; a reclaimed hold is left
    alone (its budget went back already)."""
    claims = [BudgetClaim(*KEY, tokens_limit=100), BudgetClaim("fleet", KEY[1])]
    store.budget.reserve("L", agent="a", claims=claims, tokens=70, usd=0, at=T0, expires_at=LATER)
    assert store.budget.give_back("L", scopes=[KEY, ("fleet", KEY[1])], tokens=50, usd=0)
    assert [r.tokens_reserved for r in store.budget.usage([KEY, ("fleet", KEY[1])])] == [20, 20]
    assert store.budget.release("L") is True
    assert store.budget.give_back("L", scopes=[KEY], tokens=5, usd=0) is False
    assert [r.tokens_reserved for r in store.budget.usage([KEY, ("fleet", KEY[1])])] == [0, 0]


def test_a_batch_settles_many_calls_in_one_transaction(store: Store) -> None:
    """Settlements of two holds and two models: one transaction, exact totals, a ledger row
    each; a hold reclaimed meanwhile unholds nothing but its spend is still recorded."""
    claims = [BudgetClaim(*KEY, tokens_limit=1_000), BudgetClaim("fleet", KEY[1])]
    soon = T0 + timedelta(seconds=1)
    store.budget.reserve("A", agent="a", claims=claims, tokens=100, usd=0, at=T0, expires_at=LATER)
    store.budget.reserve("B", agent="a", claims=claims, tokens=50, usd=0, at=T0, expires_at=soon)
    assert store.budget.reclaim(soon + timedelta(seconds=1)) == 1  # B is gone
    scopes = (KEY, ("fleet", KEY[1]))
    batch = [
        Settlement("A", scopes, 30, 0, _entry(25, model="m1")),
        Settlement("A", scopes, 30, 0, _entry(35, model="m2")),
        Settlement("B", scopes, 50, 0, _entry(40, model="m1")),
    ]
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        sent.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", record)
    try:
        rows = store.budget.settle(batch, expires_at=LATER)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", record)
    assert sent == []  # the driver's own cursor: no SQLAlchemy execution on this path
    assert [(r.scope, r.tokens_used, r.tokens_reserved) for r in rows] == [
        (KEY[0], 100, 40),
        ("fleet", 100, 40),
    ]
    totals = {
        m.model: (m.invocations, m.tokens) for m in store.budget.model_totals("a", KEY[1][4:])
    }
    assert totals == {"m1": (2, 65), "m2": (1, 35)}
    assert [m.invocations for m in store.budget.by_model("a", T0, LATER)] == [2, 1]


def test_settling_without_waiting_refuses_a_taken_write_lock(store: Store) -> None:
    """With wait=False a write lock held elsewhere answers WouldWait at once and writes
    nothing (SQLite, where settlement may run on the event loop's thread)."""
    if not store.budget.settles_inline:
        assert store.dialect == "postgresql"
        return
    claims = [BudgetClaim(*KEY, tokens_limit=1_000)]
    store.budget.reserve("A", agent="a", claims=claims, tokens=100, usd=0, at=T0, expires_at=LATER)
    other = store.engine.raw_connection()
    try:
        other.cursor().execute("BEGIN IMMEDIATE")
        with pytest.raises(WouldWait):
            _settle_nowait(store)
        other.rollback()
    finally:
        other.close()
    assert store.budget.usage([KEY])[0].tokens_used == 0
    (row,) = _settle_nowait(store)
    assert (row.tokens_used, row.tokens_reserved) == (7, 90)


def _settle_nowait(store: Store) -> Any:
    settlement = Settlement("A", (KEY,), 10, 0, _entry(7))
    return store.budget.settle([settlement], expires_at=LATER, wait=False)


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
    admitted: list[int] = []

    def work(worker: int) -> None:
        for n in range(40):
            rid = f"t{worker}-{n}"
            shortfall = store.budget.reserve(
                rid, agent="a", claims=claims, tokens=7, usd=0, at=T0, expires_at=LATER
            )
            if shortfall is None:
                _settle(store, rid, [KEY, ("fleet", KEY[1])], held=7, spent=7)
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
