"""Budget: reserve/commit/release arithmetic, refusals, alerts, TTL, midnight, concurrency."""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from bastion.clock import SimClock
from bastion.errors import BudgetExhausted
from bastion.guard.budget import Budget, BudgetAlert, BudgetLimits, ModelUsage, format_amount
from bastion.llm.pricing import Cost
from bastion.store import Store

DAY = 86_400.0


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A migrated store on SQLite or PostgreSQL."""
    with Store.open(store_url) as opened:
        yield opened


def _budget(store: Store, clock: SimClock, **limits: float) -> Budget:
    return Budget(store, clock=clock, agent="seller", limits=BudgetLimits(**limits))  # type: ignore[arg-type]


async def test_reserve_commit_release_arithmetic(store: Store) -> None:
    """Holds count against the limit; commit keeps actual spend, release gives the hold back."""
    budget = _budget(store, SimClock(), daily_tokens=1000, daily_usd=1.0)
    first = await budget.reserve(Cost(600, 0.5), model="m")
    assert budget.usage_today().tokens_remaining == 400
    await first.commit(Cost(300, 0.25), tokens_in=200, tokens_out=100)
    usage = budget.usage_today()
    assert (usage.tokens_used_today, usage.tokens_remaining) == (300, 700)
    assert usage.usd_used_today == pytest.approx(0.25)
    second = await budget.reserve(Cost(700, 0.1))
    await second.release()
    usage = budget.usage_today()
    assert (usage.tokens_remaining, usage.invocations_today) == (700, 1)
    assert usage.by_model == {"m": ModelUsage(invocations=1, tokens=300, usd=0.25)}


async def test_refusal_messages_and_fields(store: Store) -> None:
    """Refusals say the limit and observed value, as 'exhausted' or 'insufficient'."""
    budget = _budget(store, SimClock(), daily_tokens=500_000, request_usd=1.0)
    held = await budget.reserve(Cost(497_900))
    with pytest.raises(BudgetExhausted) as insufficient:
        await budget.reserve(Cost(10_000))
    assert str(insufficient.value) == "Insufficient budget (2,100 remaining, need 10,000)"
    assert (insufficient.value.limit, insufficient.value.observed) == (500_000, 497_900)
    assert insufficient.value.code.value == "budget_exhausted"
    await held.commit(Cost(512_340))
    with pytest.raises(BudgetExhausted) as exhausted:
        await budget.reserve(Cost(1))
    assert str(exhausted.value) == "Daily budget exhausted (512,340 of 500,000 tokens used)"
    assert (exhausted.value.limit, exhausted.value.observed) == (500_000, 512_340)
    with pytest.raises(BudgetExhausted, match=r"\(\$1\.00 allowed, need \$1\.25\)"):
        await budget.reserve(Cost(1, 1.25))


@pytest.mark.parametrize(
    ("unit", "amount", "text"),
    [("tokens", 512_340, "512,340"), ("usd", 1.25, "$1.25"), ("usd", 1234.5, "$1,234.50")],
)
def test_format_amount(unit: str, amount: float, text: str) -> None:
    """Tokens get thousands separators; USD is written as dollars."""
    assert format_amount(unit, amount) == text  # type: ignore[arg-type]


async def test_refusal_holds_nothing_in_any_scope(store: Store) -> None:
    """A reservation refused by one scope (monthly) leaves the others untouched."""
    clock = SimClock()
    budget = _budget(store, clock, daily_tokens=1000, monthly_tokens=100, envelope_tokens=1000)
    with pytest.raises(BudgetExhausted, match="monthly"):
        await budget.reserve(Cost(200), workflow="wf")
    rows = store.budget.usage(
        [("agent:seller", "day:2026-01-01"), ("workflow:wf", "all"), ("fleet", "day:2026-01-01")]
    )
    assert all(r.tokens_reserved == 0 and r.tokens_used == 0 for r in rows)


async def test_envelope_limits_a_workflow(store: Store) -> None:
    """The envelope caps one workflow while another still has room."""
    budget = _budget(store, SimClock(), envelope_tokens=100)
    await budget.reserve(Cost(80), workflow="a")
    with pytest.raises(BudgetExhausted, match="workflow"):
        await budget.reserve(Cost(30), workflow="a")
    await budget.reserve(Cost(30), workflow="b")


async def test_abandoned_reservations_are_reclaimed_after_ttl(store: Store) -> None:
    """A hold never settled expires after the TTL and its budget is usable again."""
    clock = SimClock()
    budget = Budget(
        store,
        clock=clock,
        agent="seller",
        limits=BudgetLimits(daily_tokens=100),
        reservation_ttl_seconds=60,
    )
    await budget.reserve(Cost(100))
    with pytest.raises(BudgetExhausted):
        await budget.reserve(Cost(1))
    clock.advance(61)
    await budget.reserve(Cost(100))
    assert store.budget.reclaim(clock.now()) == 0


async def test_usage_resets_at_utc_midnight(store: Store) -> None:
    """Daily usage belongs to the UTC day of the injected clock; the next day starts at zero."""
    clock = SimClock(1_767_225_600.0 + DAY - 1)  # 2026-01-01T23:59:59Z
    budget = _budget(store, clock, daily_tokens=100)
    await (await budget.reserve(Cost(100))).commit(Cost(100))
    assert budget.usage_today().budget_available is False
    assert budget.usage_today().reset_date == "2026-01-02"
    clock.advance(1)
    usage = budget.usage_today()
    assert (usage.tokens_used_today, usage.budget_available) == (0, True)
    await budget.reserve(Cost(100))


async def test_alert_fires_once_per_scope_per_day_across_budgets(store: Store) -> None:
    """At 75% on_alert fires once, even with two Budget objects on the same store."""
    clock = SimClock()
    alerts: list[BudgetAlert] = []
    budgets = [
        Budget(
            store,
            clock=clock,
            agent="seller",
            limits=BudgetLimits(daily_tokens=100),
            on_alert=alerts.append,
        )
        for _ in range(2)
    ]
    for budget in budgets * 2:
        await (await budget.reserve(Cost(20))).commit(Cost(20))
    assert [(a.label, a.used, a.limit) for a in alerts] == [("Daily", 80, 100)]


async def test_on_exhausted_is_called_once_for_daily_and_usd_caps(store: Store) -> None:
    """Daily exhaustion and a USD cap call on_exhausted (async callbacks are awaited)."""
    reasons: list[str] = []

    async def exhausted(reason: str) -> None:
        reasons.append(reason)

    budget = Budget(
        store,
        clock=SimClock(),
        agent="seller",
        limits=BudgetLimits(daily_tokens=100, monthly_usd=1.0),
        on_exhausted=exhausted,
    )
    await (await budget.reserve(Cost(50, 0.5))).commit(Cost(100, 0.5))
    for _ in range(2):
        with pytest.raises(BudgetExhausted):
            await budget.reserve(Cost(1))
    assert reasons == ["Daily budget exhausted (100 of 100 tokens used)"]
    other = _budget(store, SimClock(), monthly_usd=1.0)
    other._on_exhausted = exhausted
    await (await other.reserve(Cost(0, 0.5))).commit(Cost(0, 1.0))
    assert reasons[-1] == "Monthly budget exhausted ($1.50 of $1.00 used)"


LIMIT = 5_000


def _worker(url: str, seed: int) -> int:
    """Run 16 concurrent tasks reserving and committing random costs; return tokens committed."""

    async def task(budget: Budget, rng: random.Random) -> int:
        spent = 0
        for _ in range(6):
            estimate = rng.randint(50, 400)
            try:
                reservation = await budget.reserve(Cost(estimate))
            except BudgetExhausted:
                continue
            if rng.random() < 0.2:
                await reservation.release()
            else:
                actual = rng.randint(0, estimate)
                await reservation.commit(Cost(actual))
                spent += actual
        return spent

    async def main() -> int:
        with Store.open(url) as store:
            # Closing gives the process's unused lease back: nothing is left held below.
            async with _budget(store, SimClock(), daily_tokens=LIMIT) as budget:
                rngs = [random.Random(seed * 100 + i) for i in range(16)]
                return sum(await asyncio.gather(*(task(budget, r) for r in rngs)))

    return asyncio.run(main())


def test_four_processes_never_commit_more_than_the_limit(store_url: str) -> None:
    """4 processes x 16 tasks with random costs never commit more than the daily limit."""
    with Store.open(store_url):
        pass
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        spent = pool.starmap(_worker, [(store_url, seed) for seed in range(4)])
    with Store.open(store_url) as store:
        (row,) = store.budget.usage([("agent:seller", "day:2026-01-01")])
    assert row.tokens_used == sum(spent) <= LIMIT
    assert row.tokens_reserved == 0
    assert sum(spent) > LIMIT // 2


async def test_a_reservation_cancelled_while_being_written_is_given_back(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hold is written in a thread a cancellation cannot stop; the caller that left must
    not leave it held until the TTL."""
    budget = _budget(store, SimClock(), daily_tokens=1_000)
    written = threading.Event()
    original = store.budget.reserve

    def slow_reserve(*args: object, **kwargs: object) -> object:
        result = original(*args, **kwargs)  # type: ignore[arg-type]
        written.wait(timeout=5)
        return result

    monkeypatch.setattr(store.budget, "reserve", slow_reserve)  # a first call takes a lease
    task = asyncio.create_task(budget.reserve(Cost(400), model="m"))
    await asyncio.sleep(0.05)
    task.cancel()
    written.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert budget.usage_today().tokens_remaining == 1_000


async def test_past_a_threshold_later_commits_do_not_rewrite_the_mark(store: Store) -> None:
    """Once the store answered for today's alert mark, later commits skip that write; a new
    day asks the store again and the alert fires again."""
    clock = SimClock()
    alerts: list[BudgetAlert] = []
    budget = Budget(
        store,
        clock=clock,
        agent="seller",
        limits=BudgetLimits(daily_tokens=100),
        on_alert=alerts.append,
    )
    marks: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        if "budget_alerts" in statement:
            marks.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", record)
    try:
        for _ in range(9):
            await (await budget.reserve(Cost(10))).commit(Cost(10))
        assert len(marks) == 1
        clock.advance(DAY)
        for _ in range(9):
            await (await budget.reserve(Cost(10))).commit(Cost(10))
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", record)
    assert len(marks) == 2
    assert [a.used for a in alerts] == [80, 80]
