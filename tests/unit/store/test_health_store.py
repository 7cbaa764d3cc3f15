"""Health runs are stored, listed newest first, pruned, kept across restarts, and migrated in."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from bastion.errors import UsageError
from bastion.store import HealthStore, Store
from bastion.store.engine import create_engine, parse_url, writing
from bastion.store.events import EventStore
from bastion.store.migrate import alembic_config

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class _Check:
    name: str
    status: str = "OK"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "detail": "", "code": None}


@dataclass(frozen=True)
class _Report:
    run_at: datetime
    overall_status: str = "OK"
    summary: str = "all 1 checks OK"
    checks: tuple[_Check, ...] = field(default=(_Check("config"),))


def _report(n: int, status: str = "OK") -> _Report:
    return _Report(T0 + timedelta(minutes=n), status, f"run {n}", (_Check("config", status),))


def test_record_and_read_back(store: Store) -> None:
    """A recorded run reads back with its status, summary, aware UTC time and checks."""
    new_id = store.health.record(_report(1, "WARN"))
    record = store.health.latest()
    assert record is not None
    assert record.id == new_id
    assert (record.overall_status, record.summary) == ("WARN", "run 1")
    assert record.run_at == T0 + timedelta(minutes=1)
    assert record.run_at.tzinfo is not None
    assert record.checks == ({"name": "config", "status": "WARN", "detail": "", "code": None},)


def test_recent_is_newest_first_and_bounded(store: Store) -> None:
    """recent(limit) lists the last runs, most recently recorded first."""
    for n in range(5):
        store.health.record(_report(n))
    assert [r.summary for r in store.health.recent(3)] == ["run 4", "run 3", "run 2"]
    assert store.health.count() == 5


def test_empty_store_has_no_latest(store: Store) -> None:
    """Before the first run there is nothing to show."""
    assert store.health.latest() is None
    assert store.health.recent(10) == []


def test_prune_keeps_the_most_recent(store: Store) -> None:
    """prune(keep) deletes all but the newest `keep` runs and says how many went."""
    for n in range(6):
        store.health.record(_report(n))
    assert store.health.prune(4) == 2
    assert [r.summary for r in store.health.recent(10)] == [f"run {n}" for n in (5, 4, 3, 2)]
    assert store.health.prune(4) == 0
    assert store.health.prune(10) == 0


def test_invalid_arguments_are_usage_errors(store: Store) -> None:
    """Bad limits, an unknown status and naive times are caught before the database."""
    with pytest.raises(UsageError):
        store.health.recent(0)
    with pytest.raises(UsageError):
        store.health.prune(0)
    with pytest.raises(UsageError):
        store.health.record(_report(1, "MAYBE"))
    with pytest.raises(UsageError):
        store.health.record(_Report(datetime(2026, 1, 1)))


def test_probe_writes_and_reads_back_one_row(store: Store) -> None:
    """The store check's probe round-trips a token and never adds a row."""
    assert store.health.probe("first", at=T0)
    assert store.health.probe("second", at=T0 + timedelta(seconds=1))
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT token FROM health_probe")).all()
    assert [r[0] for r in rows] == ["second"]


def test_history_survives_a_new_store_on_the_same_url(store_url: str) -> None:
    """A restart (a new Store on the same database) sees the runs recorded before."""
    with Store.open(store_url) as first:
        first.health.record(_report(1, "FAIL"))
    with Store.open(store_url) as second:
        record = second.health.latest()
        assert record is not None
        assert (record.overall_status, record.summary) == ("FAIL", "run 1")


def test_migration_0002_applies_on_an_existing_0001_database(store_url: str) -> None:
    """A database left at 0001 gains the health tables on open and keeps its data."""
    engine = create_engine(parse_url(store_url))
    config = alembic_config()
    try:
        with writing(engine) as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0001")
        EventStore(engine).append("before_0002", {"n": 1}, at=T0)
        assert "health_runs" not in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()
    with Store.open(store_url) as opened:
        assert {"health_runs", "health_probe"} <= set(sa.inspect(opened.engine).get_table_names())
        assert [e.kind for e in opened.events.list()] == ["before_0002"]
        opened.health.record(_report(1))
        assert opened.health.count() == 1


def test_migration_0002_downgrades_cleanly(store: Store) -> None:
    """Downgrading to 0001 drops exactly the health tables."""
    config = alembic_config()
    with writing(store.engine) as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0001")
    tables = set(sa.inspect(store.engine).get_table_names())
    assert {"runs", "events", "halts"} <= tables
    assert not tables & {"health_runs", "health_probe"}


def test_health_store_is_exported() -> None:
    """HealthStore is part of the store package's public face."""
    with Store.open("sqlite://") as opened:
        assert isinstance(opened.health, HealthStore)
