"""Halts: idempotent trip, resume, history, and one active halt across processes."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from bastion.errors import UsageError
from bastion.store import HaltRecord, Store
from bastion.store.schema import halts

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_trip_raises_an_active_halt(store: Store) -> None:
    """trip() records who, why, when and detail, and the halt is active."""
    assert store.halts.active() is None
    record = store.halts.trip("daily_loss", "loop", T0, {"loss_usd": 1200})
    assert record.active
    assert (record.reason, record.who, record.tripped_at, record.detail) == (
        "daily_loss",
        "loop",
        T0,
        {"loss_usd": 1200},
    )
    assert store.halts.active() == record


def test_tripping_again_returns_the_active_halt_and_adds_nothing(store: Store) -> None:
    """A second trip while halted is a no-op that returns the first halt."""
    first = store.halts.trip("daily_loss", "loop", T0)
    second = store.halts.trip("operator", "alice", T0 + timedelta(seconds=5), {"x": 1})
    assert second == first
    assert store.halts.history() == [first]


def test_resume_closes_the_active_halt(store: Store) -> None:
    """resume() records who, why and when, and nothing is active afterwards."""
    tripped = store.halts.trip("health_fail", "health", T0)
    resumed = store.halts.resume("alice", "exchange back", T0 + timedelta(minutes=3))
    assert resumed is not None
    assert resumed.id == tripped.id
    assert not resumed.active
    assert (resumed.resumed_by, resumed.resume_reason, resumed.resumed_at) == (
        "alice",
        "exchange back",
        T0 + timedelta(minutes=3),
    )
    assert store.halts.active() is None


def test_resume_without_a_halt_is_none(store: Store) -> None:
    """Resuming when nothing is halted changes nothing and says so."""
    assert store.halts.resume("alice", "just in case", T0) is None
    assert store.halts.history() == []


def test_history_keeps_every_halt_newest_first(store: Store) -> None:
    """After a resume, a new trip adds a row; history lists them newest first."""
    for n in range(3):
        store.halts.trip(f"reason-{n}", "loop", T0 + timedelta(hours=n))
        store.halts.resume("alice", "ok", T0 + timedelta(hours=n, minutes=1))
    current = store.halts.trip("reason-3", "loop", T0 + timedelta(hours=3))
    history = store.halts.history()
    assert [h.reason for h in history] == ["reason-3", "reason-2", "reason-1", "reason-0"]
    assert [h.active for h in history] == [True, False, False, False]
    assert history[0] == current
    assert [h.reason for h in store.halts.history(limit=2)] == ["reason-3", "reason-2"]
    with pytest.raises(UsageError):
        store.halts.history(limit=0)


def test_the_database_itself_refuses_a_second_active_halt(store: Store) -> None:
    """The one-active-halt rule is a unique index, not a read-then-write in our code."""
    store.halts.trip("first", "loop", T0)
    row = {"tripped_at": T0, "reason": "second", "who": "rogue", "detail": {}}
    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
        conn.execute(sa.insert(halts).values(row))


def _trip_together(a: Store, b: Store, n: int) -> tuple[HaltRecord, HaltRecord]:
    barrier = threading.Barrier(2)
    results: dict[str, HaltRecord] = {}

    def trip(name: str, store: Store) -> None:
        barrier.wait()
        results[name] = store.halts.trip(f"{name}-{n}", name, T0 + timedelta(hours=n))

    threads = [
        threading.Thread(target=trip, args=("a", a)),
        threading.Thread(target=trip, args=("b", b)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results["a"], results["b"]


def test_concurrent_trips_from_two_processes_leave_one_active_halt(store_url: str) -> None:
    """Two stores (own engines, as two processes would have) tripping at once make one row."""
    rounds = 10
    with Store.open(store_url) as a, Store.open(store_url) as b:
        for n in range(rounds):
            from_a, from_b = _trip_together(a, b, n)
            assert from_a == from_b
            assert a.halts.resume("alice", "next round", T0 + timedelta(hours=n, minutes=1))
        with a.engine.connect() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(halts)).scalar()
    assert count == rounds


def test_a_fleet_halt_and_a_host_halt_are_active_side_by_side(store: Store) -> None:
    """One active halt per scope: the fleet's can rise while a host is halted, and each is
    resumed on its own."""
    host = store.halts.trip("operator", "alice", T0)
    fleet = store.halts.trip("incident", "ops", T0 + timedelta(seconds=1), scope="fleet")
    assert (host.scope, fleet.scope) == ("host", "fleet")
    assert store.halts.active() == host
    assert store.halts.active(scope="fleet") == fleet
    again = store.halts.trip("again", "bob", T0 + timedelta(seconds=2), scope="fleet")
    assert again == fleet
    closed = store.halts.resume("ops", "incident over", T0 + timedelta(minutes=5), scope="fleet")
    assert closed is not None
    assert closed.id == fleet.id
    assert store.halts.active(scope="fleet") is None
    assert store.halts.active() == host, "resuming the fleet leaves the host's own halt"


def test_the_database_itself_refuses_a_second_active_fleet_halt(store: Store) -> None:
    store.halts.trip("first", "ops", T0, scope="fleet")
    row = {"tripped_at": T0, "reason": "second", "who": "rogue", "detail": {}, "scope": "fleet"}
    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
        conn.execute(sa.insert(halts).values(row))
