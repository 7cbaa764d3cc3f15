"""Opening a store creates and upgrades its schema, once, safely, and refuses newer ones."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from bastion.errors import BastionError, ConfigError, ErrorCode
from bastion.store import Store
from bastion.store.engine import parse_url
from bastion.store.migrate import alembic_config
from bastion.store.schema import metadata

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _head() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head() or ""


def test_open_creates_every_table_at_head(store: Store) -> None:
    """A fresh database gets all tables and is stamped with the newest revision."""
    inspector = sa.inspect(store.engine)
    assert {"runs", "events", "halts", "alembic_version"} <= set(inspector.get_table_names())
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == _head()


def test_schema_module_matches_the_migrations(store: Store) -> None:
    """schema.py describes exactly the columns (and nullability) the migrations create."""
    inspector = sa.inspect(store.engine)
    for table in metadata.sorted_tables:
        migrated = {c["name"]: c["nullable"] for c in inspector.get_columns(table.name)}
        declared = {c.name: c.nullable for c in table.columns}
        assert migrated == declared, table.name


def test_opening_twice_is_idempotent(store_url: str) -> None:
    """A second open of a migrated database changes nothing and keeps the data."""
    with Store.open(store_url) as first:
        first.events.append("kept", {"n": 1}, at=T0)
    with Store.open(store_url) as second:
        assert [e.kind for e in second.events.list()] == ["kept"]
        with second.engine.connect() as conn:
            versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
        assert [v[0] for v in versions] == [_head()]


def test_two_processes_opening_a_fresh_database_at_once_both_succeed(store_url: str) -> None:
    """Concurrent first opens serialise on the migration lock instead of racing."""
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def open_store() -> None:
        barrier.wait()
        try:
            Store.open(store_url).close()
        except BaseException as exc:  # handed to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with Store.open(store_url) as opened:
        assert opened.halts.active() is None


def test_a_database_from_a_newer_bastion_is_refused(store_url: str) -> None:
    """An unknown (newer) schema revision is a CONFIG error telling the operator to upgrade."""
    with Store.open(store_url) as opened, opened.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    with pytest.raises(ConfigError) as caught:
        Store.open(store_url)
    assert caught.value.code is ErrorCode.CONFIG
    assert "9999_from_the_future" in str(caught.value)
    assert "upgrade Bastion" in str(caught.value)


def test_sqlite_runs_in_wal_mode_with_safe_pragmas(tmp_path: Path) -> None:
    """SQLite connections use WAL, synchronous=NORMAL, a busy timeout and foreign keys."""
    with Store.open(f"sqlite:///{tmp_path / 'bastion.db'}") as opened:
        assert opened.dialect == "sqlite"
        with opened.engine.connect() as conn:
            pragma = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
            }
    assert pragma == {
        "journal_mode": "wal",
        "synchronous": 1,
        "busy_timeout": 5000,
        "foreign_keys": 1,
    }
    # WAL is a property of the file: a plain sqlite3 connection sees it too.
    raw = sqlite3.connect(tmp_path / "bastion.db")
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        raw.close()


def test_sqlite_parent_directories_are_created(tmp_path: Path) -> None:
    """The default data/bastion.db works on a machine where data/ does not exist yet."""
    path = tmp_path / "a" / "b" / "bastion.db"
    Store.open(f"sqlite:///{path}").close()
    assert path.is_file()


def test_in_memory_sqlite_keeps_its_schema_across_connections() -> None:
    """sqlite:// (in memory) shares one connection, so the migrated tables stay visible."""
    with Store.open("sqlite://") as opened:
        opened.events.append("boot", {}, at=T0)
        assert [e.kind for e in opened.events.list()] == ["boot"]


@pytest.mark.parametrize(
    "url", ["not a url", "mysql://u:p@localhost/db", "oracle+cx_oracle://h/db"]
)
def test_unusable_urls_are_config_errors(url: str) -> None:
    """A URL Bastion cannot use fails at open with the field name and the accepted forms."""
    with pytest.raises(ConfigError, match=r"store_url.*Fix: use sqlite:///"):
        Store.open(url)


def test_postgresql_without_driver_means_psycopg() -> None:
    """postgresql:// is read as postgresql+psycopg:// (the driver Bastion ships)."""
    assert parse_url("postgresql://u:p@h/db").drivername == "postgresql+psycopg"


def test_an_unreachable_server_is_a_network_error_without_the_password() -> None:
    """A database that cannot be reached is a classified error that does not leak the password."""
    with pytest.raises(BastionError) as caught:
        Store.open("postgresql+psycopg://bastion:hunter2hunter2@127.0.0.1:1/bastion")
    assert caught.value.code is ErrorCode.NETWORK
    assert caught.value.dependency == "store"
    assert "hunter2hunter2" not in str(caught.value)
    assert "***" in str(caught.value)
