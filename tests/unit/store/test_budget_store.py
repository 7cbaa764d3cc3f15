"""BudgetStore: conditional holds, settle, release and reclaim on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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
