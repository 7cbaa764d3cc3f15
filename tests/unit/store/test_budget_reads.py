"""usage_today() reads running totals: a constant number of statements, none on the ledger.

The ledger here holds a million rows, written with one ``INSERT … SELECT`` (a recursive CTE on
SQLite, ``generate_series`` on PostgreSQL) at revision 0005 and then upgraded, so migration 0006
fills the totals from it as it would on a database that grew before they existed. Every
statement the budget read sends is captured with SQLAlchemy's ``before_cursor_execute`` event
and its plan asked of the database itself: none may name or scan ``budget_ledger``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from alembic import command

from bastion.api.app import create_app
from bastion.clock import SimClock
from bastion.guard.budget import Budget, BudgetLimits, BudgetUsage, ModelUsage
from bastion.guard.halt import Halt
from bastion.llm.pricing import Cost
from bastion.ops.status import StatusService
from bastion.store import Store
from bastion.store.engine import writing
from bastion.store.migrate import alembic_config
from bastion.telemetry.metrics import Metrics

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
LEDGER_ROWS = 1_000_000
MODELS = ("model-a", "model-b", "model-c")
TOKEN = "budget-reads-token"

Sent = list[tuple[str, Any]]
"""The statements an engine sent, each with its parameters as the driver received them."""

Console = Callable[[str], Awaitable[Any]]
"""GET on the real console app; returns the answer's JSON."""

CONSOLE_PATHS = ("/api/budget", "/api/status")

# Row n: agent b at T0 when n % 4 == 0, else agent a n % 3 days before T0; n microseconds past
# that; model MODELS[n % 3]; 2 + n % 7 tokens and 10 + n % 11 micro-USD.
_FILL = {
    "sqlite": """
WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n + 1 < :count)
INSERT INTO budget_ledger (at, agent, model, tokens_in, tokens_out, tokens, usd)
SELECT printf('%s 12:00:%02d.%06d',
              date('2026-01-01', printf('-%d days', CASE WHEN n % 4 = 0 THEN 0 ELSE n % 3 END)),
              n / 1000000, n % 1000000),
       CASE WHEN n % 4 = 0 THEN 'b' ELSE 'a' END,
       CASE n % 3 WHEN 0 THEN 'model-a' WHEN 1 THEN 'model-b' ELSE 'model-c' END,
       1, 1, 2 + n % 7, 10 + n % 11
  FROM seq
""",
    "postgresql": """
INSERT INTO budget_ledger (at, agent, model, tokens_in, tokens_out, tokens, usd)
SELECT TIMESTAMPTZ '2026-01-01 12:00:00+00'
         - (CASE WHEN n % 4 = 0 THEN 0 ELSE n % 3 END) * INTERVAL '1 day'
         + n * INTERVAL '1 microsecond',
       CASE WHEN n % 4 = 0 THEN 'b' ELSE 'a' END,
       CASE n % 3 WHEN 0 THEN 'model-a' WHEN 1 THEN 'model-b' ELSE 'model-c' END,
       1, 1, 2 + n % 7, 10 + n % 11
  FROM generate_series(0, :count - 1) AS n
""",
}


@contextmanager
def _statements(engine: sa.Engine) -> Iterator[Sent]:
    """Every SQL statement ``engine`` sends while the block runs, with its parameters."""
    sent: Sent = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        sent.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def _fill_ledger_before_the_totals(store: Store, count: int) -> None:
    """Write ``count`` rows straight into the ledger at revision 0005, then upgrade to head.

    This is a database that grew before the totals existed: 0006 must fill them from it.
    """
    config = alembic_config()
    with writing(store.engine) as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0005")
        conn.execute(sa.text(_FILL[store.engine.dialect.name]), {"count": count})
        command.upgrade(config, "head")
    with store.engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM budget_ledger")) == count


def _written_today_for_a(count: int) -> int:
    """How many of the filled rows are agent ``a``'s on T0's day (see ``_FILL``)."""
    return sum(1 for n in range(count) if n % 4 != 0 and n % 3 == 0)


def _plans(store: Store, sent: Sent) -> list[str]:
    """The database's own plan of every data statement in ``sent``, as text."""
    explain = "EXPLAIN QUERY PLAN " if store.engine.dialect.name == "sqlite" else "EXPLAIN "
    plans = []
    with store.engine.connect() as conn:
        for statement, parameters in sent:
            if statement.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE")):
                rows = conn.exec_driver_sql(explain + statement, parameters).all()
                plans.append("\n".join(str(row[-1]) for row in rows))
    return plans


def _assert_no_ledger(store: Store, sent: Sent) -> None:
    """No statement names the ledger, and the database plans none that reads it."""
    assert sent
    assert not [statement for statement, _ in sent if "budget_ledger" in statement]
    plans = _plans(store, sent)
    assert plans
    assert not [plan for plan in plans if "budget_ledger" in plan], plans


async def _spend_on_four_models(budget: Budget) -> None:
    for n, model in enumerate((*MODELS, "model-d")):
        reservation = await budget.reserve(Cost(100), model=model)
        await reservation.commit(Cost(50 + n, (3_000 + n) / 1e6), tokens_in=40, tokens_out=10 + n)


@pytest.fixture
def budget(store: Store) -> Budget:
    """Agent ``a``'s budget on ``store``, its clock at T0."""
    return Budget(
        store,
        clock=SimClock(start=T0.timestamp()),
        agent="a",
        limits=BudgetLimits(daily_tokens=10**9),
    )


@pytest.fixture
async def console(store: Store, budget: Budget, tmp_path: Path) -> AsyncIterator[Console]:
    """The real console app (httpx over ASGI) serving ``budget`` and the status report."""
    halt = Halt(flag_path=tmp_path / "kill_switch.flag", clock=SimClock(), metrics=Metrics())
    service = StatusService(
        data_dir=tmp_path,
        clock=SimClock(start=T0.timestamp()),
        halt_state=halt.state,
        store=store,
        budget=budget.usage_today,
    )
    app = create_app(
        status=lambda: service.report(None),
        halt=halt,
        metrics=Metrics(),
        token=TOKEN,
        budget=budget.usage_today,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://127.0.0.1",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as client:

        async def get(path: str) -> Any:
            response = await client.get(path)
            assert response.status_code == 200, response.text
            return response.json()

        yield get


async def _reads(
    store: Store, budget: Budget, console: Console
) -> tuple[BudgetUsage, dict[str, Any], dict[str, Sent]]:
    """usage_today() and each console path, with the statements each of them sent."""
    sent: dict[str, Sent] = {}
    with _statements(store.engine) as sent["usage_today"]:
        usage = budget.usage_today()
    bodies = {}
    for path in CONSOLE_PATHS:
        with _statements(store.engine) as sent[path]:
            bodies[path] = await console(path)
    return usage, bodies, sent


def _texts(sent: Sent) -> list[str]:
    return [statement for statement, _ in sent]


async def test_budget_reads_are_constant_and_touch_no_ledger_row(
    store: Store, budget: Budget, console: Console
) -> None:
    """With a million ledger rows, usage_today(), /api/budget and /api/status each send the
    statements they send on an empty ledger (usage_today: two SELECTs), none naming or, by the
    database's plan, reading the ledger; the figures equal the ledger's own aggregate."""
    _, _, empty = await _reads(store, budget, console)
    _fill_ledger_before_the_totals(store, LEDGER_ROWS)
    await _spend_on_four_models(budget)
    usage, bodies, full = await _reads(store, budget, console)
    for name, sent in full.items():
        assert _texts(sent) == _texts(empty[name]), name
        _assert_no_ledger(store, sent)
    assert len([s for s in _texts(full["usage_today"]) if s.startswith("SELECT")]) == 2
    assert _texts(full["/api/budget"]) == _texts(full["usage_today"])
    expected = {
        m.model: ModelUsage(m.invocations, m.tokens, m.usd / 1_000_000)
        for m in store.budget.by_model("a", T0.replace(hour=0), T0.replace(hour=0) + timedelta(1))
    }
    assert usage.by_model == expected
    assert usage.invocations_today == sum(m.invocations for m in expected.values())
    assert usage.invocations_today == _written_today_for_a(LEDGER_ROWS) + 4
    assert usage.tokens_used_today == 50 + 51 + 52 + 53
    assert bodies["/api/budget"] == usage.to_dict()
    assert bodies["/api/status"]["budget"] == usage.to_dict()


def test_the_plan_check_sees_a_ledger_read(store: Store) -> None:
    """The plan check is not vacuous: the plan of the ledger's own aggregate names it."""
    with _statements(store.engine) as sent:
        store.budget.by_model("a", T0, T0 + timedelta(1))
    assert [plan for plan in _plans(store, sent) if "budget_ledger" in plan]
    with pytest.raises(AssertionError):
        _assert_no_ledger(store, sent)


async def test_totals_follow_every_commit_by_day_and_model(store: Store) -> None:
    """Each commit adds to its model's totals for its UTC day only; tomorrow starts at zero."""
    clock = SimClock(start=T0.timestamp())
    budget = Budget(store, clock=clock, agent="a", limits=BudgetLimits())
    for model in ("m", "m", "n"):
        reservation = await budget.reserve(Cost(10), model=model)
        await reservation.commit(Cost(7, 5e-6))
    assert budget.usage_today().by_model == {
        "m": ModelUsage(2, 14, 10 / 1_000_000),
        "n": ModelUsage(1, 7, 5 / 1_000_000),
    }
    clock.advance(86_400)
    assert budget.usage_today().by_model == {}
    assert budget.usage_today().invocations_today == 0
