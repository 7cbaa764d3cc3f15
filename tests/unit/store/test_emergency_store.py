"""The emergency store writes the rows the full store writes, and opens only what it understands.

``bastion kill`` records through :class:`EmergencyStore` (sqlite3, no SQLAlchemy); a run and the
console read through :class:`Store`. Every test here writes with one and reads with the other,
so the two cannot drift apart in format (timestamps, JSON) or in the one-active-halt rule.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bastion.errors import UsageError
from bastion.store import Store
from bastion.store.emergency import _BUSY_TIMEOUT_MS, EmergencyStore
from bastion.store.engine import SQLITE_BUSY_TIMEOUT_MS

T0 = datetime(2026, 12, 2, 9, 30, 0, tzinfo=UTC)  # no microseconds: the text must still match


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A SQLite store migrated to head by the full store, as on any deployment that has run."""
    url = f"sqlite:///{tmp_path / 'bastion.db'}"
    Store.open(url).close()
    return url


@pytest.fixture
def pair(url: str) -> Iterator[tuple[EmergencyStore, Store]]:
    emergency = EmergencyStore.open(url)
    assert emergency is not None
    store = Store.open(url)
    yield emergency, store
    emergency.close()
    store.close()


def test_a_halt_it_trips_is_the_one_the_full_store_reads(
    pair: tuple[EmergencyStore, Store],
) -> None:
    emergency, store = pair
    tripped = emergency.trip("drill", "ops", T0, {"source": "cli", "n": 1})
    assert store.halts.active() == tripped
    assert tripped.tripped_at == T0
    assert tripped.detail == {"source": "cli", "n": 1}


def test_it_reads_a_halt_the_full_store_tripped(pair: tuple[EmergencyStore, Store]) -> None:
    emergency, store = pair
    tripped = store.halts.trip("cost_cap", "budget", T0 + timedelta(microseconds=7), {"usd": 3})
    assert emergency.active() == tripped


def test_one_halt_stays_active_whoever_trips_second(pair: tuple[EmergencyStore, Store]) -> None:
    emergency, store = pair
    first = store.halts.trip("position_drift", "loop", T0)
    again = emergency.trip("operator", "ops", T0 + timedelta(seconds=5))
    assert again == first
    assert len(store.halts.history()) == 1


def test_it_resumes_the_active_halt_once(pair: tuple[EmergencyStore, Store]) -> None:
    emergency, store = pair
    store.halts.trip("drill", "ops", T0)
    closed = emergency.resume("ops", "drill over", T0 + timedelta(minutes=1))
    assert closed is not None
    assert (closed.resumed_by, closed.resume_reason) == ("ops", "drill over")
    assert closed.resumed_at == T0 + timedelta(minutes=1)
    assert store.halts.history() == [closed]
    assert store.halts.active() is None
    assert emergency.resume("ops", "again", T0 + timedelta(minutes=2)) is None


def test_events_it_appends_read_back_through_the_full_store(
    pair: tuple[EmergencyStore, Store],
) -> None:
    emergency, store = pair
    before = store.events.append("halt_enforced", {"a": 1}, at=T0)
    new_id = emergency.append("halt_tripped", {"reason": "drill", "at": T0}, at=T0, run_id="r1")
    [event, _] = store.events.list()
    assert new_id > before
    assert (event.id, event.kind, event.run_id, event.at) == (new_id, "halt_tripped", "r1", T0)
    assert event.payload == {"reason": "drill", "at": T0.isoformat()}


def test_bad_values_are_refused_before_anything_is_written(
    pair: tuple[EmergencyStore, Store],
) -> None:
    emergency, store = pair
    with pytest.raises(UsageError, match="naive datetime"):
        emergency.trip("drill", "ops", datetime(2026, 12, 2, 9, 30))  # naive on purpose
    with pytest.raises(UsageError, match="not JSON-serialisable"):
        emergency.append("halt_tripped", {"x": object()}, at=T0)
    assert store.halts.history() == []
    assert store.events.list() == []


def test_two_processes_tripping_together_leave_one_halt(url: str) -> None:
    """Threads on separate connections race the partial unique index, as two commands do."""
    barrier = threading.Barrier(8)
    results = []

    def trip(n: int) -> None:
        store = EmergencyStore.open(url)
        assert store is not None
        barrier.wait()
        results.append(store.trip(f"r{n}", "ops", T0 + timedelta(seconds=n)))
        store.close()

    threads = [threading.Thread(target=trip, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with Store.open(url) as store:
        [halt] = store.halts.history()
    assert {r.id for r in results} == {halt.id}


def test_it_waits_for_a_writer_as_long_as_the_engine_does() -> None:
    assert _BUSY_TIMEOUT_MS == SQLITE_BUSY_TIMEOUT_MS


@pytest.mark.parametrize(
    "make_url",
    [
        pytest.param(lambda tmp: f"sqlite:///{tmp / 'missing.db'}", id="no-such-file"),
        pytest.param(lambda tmp: "sqlite://", id="memory"),
        pytest.param(lambda tmp: "sqlite:///:memory:", id="memory-named"),
        pytest.param(lambda tmp: f"sqlite:///{tmp / 'bastion.db'}?timeout=3", id="url-options"),
        pytest.param(lambda tmp: "postgresql+psycopg://u:p@localhost/db", id="postgresql"),
    ],
)
def test_what_it_cannot_open_is_left_to_the_full_store(
    make_url: Callable[[Path], str], tmp_path: Path
) -> None:
    (tmp_path / "bastion.db").touch()
    assert EmergencyStore.open(make_url(tmp_path)) is None
    assert not (tmp_path / "missing.db").exists()  # never creates a database


def test_a_database_not_at_this_codes_head_is_left_to_the_full_store(
    url: str, tmp_path: Path
) -> None:
    """Behind (it needs migrating) or ahead (a newer Bastion wrote it): the store decides."""
    path = tmp_path / "bastion.db"
    for stamped in ("0005", "9999"):
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE alembic_version SET version_num = ?", (stamped,))
        assert EmergencyStore.open(url) is None


def test_a_sqlite_file_that_is_not_a_store_is_left_to_the_full_store(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    sqlite3.connect(path).close()
    assert EmergencyStore.open(f"sqlite:///{path}") is None


def test_the_emergency_store_keeps_the_fleet_scope(pair: tuple[EmergencyStore, Store]) -> None:
    emergency, store = pair
    fleet = emergency.trip("incident", "ops", T0, scope="fleet")
    assert store.halts.active(scope="fleet") == fleet
    assert emergency.active() is None, "a fleet halt is not this host's"
    assert emergency.resume("ops", "over", T0 + timedelta(minutes=1)) is None
    closed = emergency.resume("ops", "over", T0 + timedelta(minutes=1), scope="fleet")
    assert closed is not None
    assert closed.id == fleet.id
