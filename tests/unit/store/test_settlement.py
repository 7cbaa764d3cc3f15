"""SettlementWriter through BudgetStore.settle: batches of several holds, reclaimed holds, the
PostgreSQL deadlock retry and the PostgreSQL commit mode, on both backends where they apply."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from bastion.store import Store
from bastion.store.budget import (
    BudgetClaim,
    LedgerEntry,
    Settlement,
    UsageRow,
    budget_ledger,
    budget_reservations,
)

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
LATER = T0 + timedelta(minutes=5)
A_DAY = ("agent:a", "day:2026-01-01")
B_DAY = ("agent:b", "day:2026-01-01")
FLEET = ("fleet", "day:2026-01-01")
WF_X = ("workflow:x", "all")
WF_Y = ("workflow:y", "all")


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with Store.open(store_url) as opened:
        yield opened


def _entry(agent: str, tokens: int, usd: int, model: str = "m") -> LedgerEntry:
    return LedgerEntry(
        at=T0, agent=agent, model=model, tokens_in=tokens, tokens_out=0, tokens=tokens, usd=usd
    )


def _reserve(store: Store, hold: str, agent: str, keys: list[tuple[str, str]], **kw: Any) -> None:
    claims = [BudgetClaim(*k, tokens_limit=10_000, usd_limit=10_000) for k in keys]
    refused = store.budget.reserve(
        hold, agent=agent, claims=claims, at=T0, expires_at=kw.pop("expires_at", LATER), **kw
    )
    assert refused is None


def _holds(store: Store) -> dict[str, tuple[int, int, datetime]]:
    r = budget_reservations.c
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(r.id, r.tokens, r.usd, r.expires_at)).all()
    return {row.id: (int(row.tokens), int(row.usd), row.expires_at) for row in rows}


def _figures(rows: list[UsageRow]) -> dict[tuple[str, str], tuple[int, int, int, int]]:
    return {
        (r.scope, r.period): (r.tokens_used, r.tokens_reserved, r.usd_used, r.usd_reserved)
        for r in rows
    }


def _ledger_count(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(budget_ledger)) or 0)


def test_two_leases_settled_in_one_batch_update_both_holds_and_every_scope(store: Store) -> None:
    """Two agents' leases share the fleet row; one batch settles two calls of one and one of
    the other: each hold shrinks by what its calls held and moves its expiry, and every scope
    row moves exactly its calls' figures from reserved to used (returned and as stored)."""
    _reserve(store, "A", "a", [A_DAY, FLEET, WF_X], tokens=100, usd=50)
    _reserve(store, "B", "b", [B_DAY, FLEET, WF_Y], tokens=60, usd=30)
    moved = LATER + timedelta(minutes=10)
    batch = [
        Settlement("A", (A_DAY, FLEET, WF_X), 20, 10, _entry("a", 25, 9, "m1")),
        Settlement("A", (A_DAY, FLEET, WF_X), 30, 15, _entry("a", 5, 20, "m2")),
        Settlement("B", (B_DAY, FLEET, WF_Y), 40, 20, _entry("b", 41, 19, "m1")),
    ]
    returned = _figures(store.budget.settle(batch, expires_at=moved))
    expected = {
        A_DAY: (30, 50, 29, 25),  # held 100/50, settled 50/25 of it for 30/29
        WF_X: (30, 50, 29, 25),
        B_DAY: (41, 20, 19, 10),
        WF_Y: (41, 20, 19, 10),
        FLEET: (71, 70, 48, 35),  # both
    }
    assert returned == expected
    assert _figures(store.budget.usage(expected)) == expected
    assert _holds(store) == {"A": (50, 25, moved), "B": (20, 10, moved)}
    assert _ledger_count(store) == 3
    by_model_a = {
        m.model: (m.invocations, m.tokens, m.usd)
        for m in store.budget.model_totals("a", "2026-01-01")
    }
    assert by_model_a == {"m1": (1, 25, 9), "m2": (1, 5, 20)}
    (b_total,) = store.budget.model_totals("b", "2026-01-01")
    assert (b_total.model, b_total.invocations, b_total.tokens, b_total.usd) == ("m1", 1, 41, 19)


def test_a_batch_with_a_reclaimed_hold_records_its_spend_and_unholds_nothing_twice(
    store: Store,
) -> None:
    """B expired and was reclaimed (its hold went back then); a batch settling calls of A and
    of B records B's spend, unholds only A's share, and does not bring B's hold back."""
    _reserve(store, "A", "a", [A_DAY, FLEET], tokens=100, usd=0)
    _reserve(store, "B", "b", [B_DAY, FLEET], tokens=60, usd=0, expires_at=T0)
    assert store.budget.reclaim(T0 + timedelta(seconds=1)) == 1
    batch = [
        Settlement("B", (B_DAY, FLEET), 60, 0, _entry("b", 70, 0)),
        Settlement("A", (A_DAY, FLEET), 40, 0, _entry("a", 35, 0)),
    ]
    expected = {A_DAY: (35, 60, 0, 0), B_DAY: (70, 0, 0, 0), FLEET: (105, 60, 0, 0)}
    assert _figures(store.budget.settle(batch, expires_at=LATER)) == expected
    assert _figures(store.budget.usage(expected)) == expected
    assert set(_holds(store)) == {"A"}
    assert _holds(store)["A"][0] == 60
    assert _ledger_count(store) == 2


def _alter_database(store_url: str, setting: str, value: str) -> None:
    """Default ``setting`` for every new connection to the test database (superuser)."""
    engine = sa.create_engine(store_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            name = conn.scalar(sa.text("SELECT current_database()"))
            conn.execute(sa.text(f"ALTER DATABASE \"{name}\" SET {setting} = '{value}'"))
    finally:
        engine.dispose()


def _writer_setting(store: Store, setting: str) -> str:
    """``SHOW setting`` on the settlement writer's own connection (private: the test looks
    inside the session that wrote the settlements, not at a pooled one)."""
    fairy = store.budget._settlements._connection
    assert fairy is not None, "the writer opens its connection at the first settlement"
    with fairy.dbapi_connection.cursor() as cursor:
        cursor.execute(f"SHOW {setting}")
        return str(cursor.fetchone()[0])


@pytest.mark.parametrize(("synchronous", "shown"), [(True, "on"), (False, "off")])
def test_postgresql_settles_with_synchronous_commit_as_configured(
    postgresql_url: str, synchronous: bool, shown: str
) -> None:
    """``synchronous_settle`` leaves the writer's session at the server's synchronous_commit
    (set to ``on`` here; this test cluster runs with ``off``), without it the writer turns it
    off. Holds are unaffected: a pooled connection reads the server's setting either way."""
    _alter_database(postgresql_url, "synchronous_commit", "on")
    with Store.open(postgresql_url, synchronous_settle=synchronous) as store:
        _reserve(store, "A", "a", [A_DAY], tokens=10, usd=0)
        store.budget.settle(
            [Settlement("A", (A_DAY,), 10, 0, _entry("a", 10, 0))], expires_at=LATER
        )
        assert _writer_setting(store, "synchronous_commit") == shown
        with store.engine.connect() as conn:
            assert conn.scalar(sa.text("SHOW synchronous_commit")) == "on"
        assert store.budget.usage([A_DAY])[0].tokens_used == 10


def test_postgresql_retries_a_settlement_chosen_as_a_deadlock_victim(postgresql_url: str) -> None:
    """A real deadlock: another transaction holds the scope row the settlement must upsert,
    then asks for the hold row the settlement already updated. PostgreSQL aborts the
    settlement (its deadlock check runs first); the writer reconnects and retries once the
    other commits, and the spend is recorded exactly once."""
    # The settlement's wait is checked for a deadlock after 250 ms, the other's after 30 s:
    # the cycle is formed well within the first, so the settlement is the one aborted.
    _alter_database(postgresql_url, "deadlock_timeout", "250ms")
    with Store.open(postgresql_url) as store:
        _reserve(store, "A", "a", [A_DAY], tokens=100, usd=0)
        warm_up = Settlement("A", (A_DAY,), 10, 0, _entry("a", 10, 0))
        store.budget.settle([warm_up], expires_at=LATER)
        first_connection = store.budget._settlements._connection

        other = store.engine.connect()
        try:
            other.execute(sa.text("SET deadlock_timeout = '30s'"))
            other.execute(
                sa.text("UPDATE budget_usage SET tokens_used = tokens_used WHERE scope = :s"),
                {"s": A_DAY[0]},
            )
            outcome: list[Any] = []

            def settle() -> None:
                batch = [Settlement("A", (A_DAY,), 20, 0, _entry("a", 15, 0))]
                try:
                    outcome.append(store.budget.settle(batch, expires_at=LATER))
                except Exception as exc:  # pragma: no cover - reported below
                    outcome.append(exc)

            worker = threading.Thread(target=settle)
            worker.start()
            _wait_until_a_backend_waits_on_a_lock(store)
            # The cycle: the settlement holds the hold row and waits for the scope row.
            other.execute(sa.text("UPDATE budget_reservations SET tokens = tokens WHERE id = 'A'"))
            other.commit()
        finally:
            other.close()
        worker.join(timeout=60)
        assert not worker.is_alive()
        (result,) = outcome
        assert not isinstance(result, Exception), result
        assert _figures(result) == {A_DAY: (25, 70, 0, 0)}
        assert store.budget._settlements._connection is not first_connection
        assert _ledger_count(store) == 2  # the aborted attempt wrote nothing
        (row,) = store.budget.usage([A_DAY])
        assert (row.tokens_used, row.tokens_reserved) == (25, 70)
        assert _holds(store)["A"][0] == 70


def _wait_until_a_backend_waits_on_a_lock(store: Store) -> None:
    """Poll pg_stat_activity (a few ms apart) until another session waits on a lock."""
    query = sa.text(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND datname = current_database()"
    )
    for _ in range(10_000):
        with store.engine.connect() as conn:
            if conn.scalar(query):
                return
        time.sleep(0.002)
    raise AssertionError("the settlement never waited on the scope row")


@pytest.mark.parametrize("synchronous", [False, True])
def test_store_open_passes_synchronous_settle_on(store_url: str, synchronous: bool) -> None:
    with Store.open(store_url, synchronous_settle=synchronous) as store:
        assert store.budget.synchronous_settle is synchronous
