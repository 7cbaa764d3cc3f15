"""A run's ledger pruning: a pass at start, then one per interval at a step's end, one at a time."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from bastion.clock import SimClock
from bastion.events import Event, EventKind
from bastion.ops.ledger_pruning import DAY_SECONDS, LedgerPruning
from bastion.store import Store
from bastion.store.budget import LedgerEntry, Settlement, budget_ledger
from bastion.store.retention import LedgerRetention

STEP = Event(EventKind.STEP_COMPLETED, {"step": 1, "status": "ok"})


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with Store.open(store_url) as opened:
        yield opened


def _spend(store: Store, at: datetime) -> None:
    entry = LedgerEntry(at=at, agent="a", model="m", tokens_in=1, tokens_out=1, tokens=2, usd=1)
    store.budget.settle([Settlement("none", tuple([]), 0, 0, entry)], expires_at=entry.at)


def _ledger(store: Store) -> list[datetime]:
    with store.engine.connect() as conn:
        return sorted(conn.scalars(sa.select(budget_ledger.c.at)).all())


def _pruning(store: Store, clock: SimClock) -> LedgerPruning:
    retention = LedgerRetention(store.engine, days=1, batch_size=2, pause_seconds=0)
    return LedgerPruning(retention, clock)


async def test_start_prunes_then_a_step_a_day_later_prunes_again(store: Store) -> None:
    """At start the rows past one day go; steps within the day start nothing; the first step
    a day later prunes what has aged out since."""
    clock = SimClock()
    now = clock.now()
    for age in (timedelta(days=3), timedelta(days=2), timedelta(hours=20), timedelta(hours=1)):
        _spend(store, now - age)
    pruning = _pruning(store, clock)
    pruning.start()
    await pruning.idle()
    assert (pruning.passes, pruning.deleted) == (1, 2)
    assert _ledger(store) == [now - timedelta(hours=20), now - timedelta(hours=1)]
    clock.advance(DAY_SECONDS - 1)
    pruning(STEP)
    await pruning.idle()
    assert pruning.passes == 1
    clock.advance(1)
    pruning(Event(EventKind.OBSERVATION))
    await pruning.idle()
    assert pruning.passes == 1, "only a completed step starts a pass"
    pruning(STEP)
    await pruning.idle()
    assert (pruning.passes, pruning.deleted) == (2, 4)
    assert _ledger(store) == []


class _Gated(LedgerRetention):
    """A retention whose prune waits for the test to open the gate; counts its calls."""

    def __init__(self, store: Store) -> None:
        super().__init__(store.engine, days=1)
        self.gate = threading.Event()
        self.calls = 0
        self.stop_seen: list[bool] = []

    def prune(self, now: datetime, *, should_stop: Callable[[], bool] | None = None) -> int:
        self.calls += 1
        self.gate.wait()
        self.stop_seen.append(should_stop is not None and should_stop())
        return 0


async def test_one_pass_at_a_time_and_stop_asks_it_to_end(store: Store) -> None:
    """A step while a pass runs starts no second one; stop() tells the pass to end, waits for
    it, and no step starts one afterwards."""
    clock = SimClock()
    retention = _Gated(store)
    pruning = LedgerPruning(retention, clock)
    try:
        pruning.start()
        clock.advance(2 * DAY_SECONDS)
        pruning(STEP)
        stopping = asyncio.create_task(pruning.stop())
        await asyncio.sleep(0)  # stop() has asked the pass to end and waits for it
        assert not stopping.done()
    finally:
        retention.gate.set()
    await stopping
    assert retention.calls == 1
    assert retention.stop_seen == [True]
    clock.advance(2 * DAY_SECONDS)
    pruning(STEP)
    await pruning.idle()
    assert retention.calls == 1


class _Failing(LedgerRetention):
    def prune(self, now: datetime, *, should_stop: Callable[[], bool] | None = None) -> int:
        raise sa.exc.OperationalError("DELETE", {}, Exception("database is locked"))


async def test_a_failed_pass_is_logged_and_tried_again_when_due(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    clock = SimClock()
    pruning = LedgerPruning(_Failing(store.engine, days=1), clock)
    with caplog.at_level(logging.ERROR, logger="bastion.ops.ledger_pruning"):
        pruning.start()
        await pruning.idle()
    assert "budget ledger prune failed" in caplog.text
    assert (pruning.passes, pruning.deleted) == (1, 0)
    clock.advance(DAY_SECONDS)
    pruning(STEP)
    await pruning.idle()
    assert pruning.passes == 2
