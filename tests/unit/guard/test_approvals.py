"""Approvals: request, notify, decide once, expire on the clock, on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from bastion.clock import SimClock
from bastion.errors import UsageError
from bastion.guard.approvals import (
    ApprovalAlreadyDecided,
    ApprovalNotFound,
    ApprovalRecord,
    Approvals,
    ApprovalStatus,
)
from bastion.store import Store


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A migrated store on SQLite or PostgreSQL."""
    with Store.open(store_url) as opened:
        yield opened


async def test_request_queues_a_pending_entry_and_notifies(store: Store) -> None:
    """request stores the entry with the clock's time and TTL and hands it to on_request."""
    clock = SimClock()
    seen: list[ApprovalRecord] = []
    approvals = Approvals(store, clock=clock, agent="seller", on_request=seen.append)
    record = await approvals.request(
        "llm_escalation",
        {"prompt_sha256": "ab12", "models_tried": ["a", "b"]},
        "every model failed and no cached answer is fresh",
        run_id="run-1",
        ttl_seconds=300,
    )
    assert seen == [record]
    assert (record.kind, record.agent, record.run_id) == ("llm_escalation", "seller", "run-1")
    assert record.status is ApprovalStatus.PENDING
    assert record.created_at == clock.now()
    assert record.expires_at == clock.now() + timedelta(seconds=300)
    assert await approvals.get(record.id) == record
    assert await approvals.pending() == [record]


async def test_on_request_may_be_a_coroutine(store: Store) -> None:
    """An async on_request is awaited before request returns."""
    seen: list[str] = []

    async def notify(record: ApprovalRecord) -> None:
        seen.append(record.id)

    approvals = Approvals(store, clock=SimClock(), agent="seller", on_request=notify)
    record = await approvals.request("order", {"instrument": "BTC-PERPETUAL"}, "over the cap")
    assert seen == [record.id]
    assert record.expires_at is None


@pytest.mark.parametrize(("approve", "status"), [(True, "approved"), (False, "rejected")])
async def test_decide_records_the_answer_once(store: Store, approve: bool, status: str) -> None:
    """The first decision wins at the clock's time; a second one is refused naming the first."""
    clock = SimClock()
    approvals = Approvals(store, clock=clock, agent="seller")
    record = await approvals.request("order", {"amount": 10}, "needs a person")
    clock.advance(30)
    decided = await approvals.decide(record.id, approve, "alice", note="checked")
    assert (decided.status, decided.decided_by, decided.note) == (status, "alice", "checked")
    assert decided.decided_at == clock.now()
    assert await approvals.pending() == []
    with pytest.raises(ApprovalAlreadyDecided, match=rf"already {status} by alice at .*nothing"):
        await approvals.decide(record.id, not approve, "bob")


async def test_unknown_id_is_not_found(store: Store) -> None:
    """Deciding an id that was never queued raises ApprovalNotFound; get returns None."""
    approvals = Approvals(store, clock=SimClock(), agent="seller")
    with pytest.raises(ApprovalNotFound):
        await approvals.decide("missing", True, "alice")
    assert await approvals.get("missing") is None


async def test_an_unanswered_entry_expires_and_cannot_be_approved(store: Store) -> None:
    """Past its TTL an entry leaves the pending list and an approval is refused."""
    clock = SimClock()
    approvals = Approvals(store, clock=clock, agent="seller")
    short = await approvals.request("llm_escalation", {}, "no model", ttl_seconds=60)
    clock.advance(1)
    long = await approvals.request("llm_escalation", {}, "no model", ttl_seconds=600)
    assert await approvals.pending() == [long, short]
    clock.advance(59)
    assert [r.id for r in await approvals.pending()] == [long.id]
    with pytest.raises(ApprovalAlreadyDecided, match=r"expired at .* ask again"):
        await approvals.decide(short.id, True, "alice")
    assert await approvals.expire() == 0
    clock.advance(600)
    assert await approvals.expire() == 1


@pytest.mark.parametrize("ttl", [0, -5])
async def test_ttl_must_be_positive(store: Store, ttl: float) -> None:
    """A TTL of zero or less is a UsageError and queues nothing."""
    approvals = Approvals(store, clock=SimClock(), agent="seller")
    with pytest.raises(UsageError, match="ttl_seconds must be > 0"):
        await approvals.request("order", {}, "x", ttl_seconds=ttl)
    assert store.approvals.count_pending() == 0


async def test_recent_lists_every_status_and_count_pending_sweeps(store: Store) -> None:
    """recent shows decided and expired entries too; count_pending excludes expired ones."""
    clock = SimClock()
    approvals = Approvals(store, clock=clock, agent="seller")
    expiring = await approvals.request("order", {}, "needs a person", ttl_seconds=10)
    clock.advance(1)
    decided = await approvals.request("order", {}, "needs a person")
    clock.advance(1)
    waiting = await approvals.request("order", {}, "needs a person")
    await approvals.decide(decided.id, False, "alice")
    assert await approvals.count_pending() == 2
    clock.advance(10)
    assert await approvals.count_pending() == 1
    recent = await approvals.recent()
    assert [(r.id, r.status.value) for r in recent] == [
        (waiting.id, "pending"),
        (decided.id, "rejected"),
        (expiring.id, "expired"),
    ]
    assert [r.id for r in await approvals.recent(limit=1)] == [waiting.id]
