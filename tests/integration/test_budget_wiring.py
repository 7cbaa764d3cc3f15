"""The budget inside a runtime: cost cap halts through the one path; CLI and API show spend."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
import orjson
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from bastion.agent import Decision
from bastion.agents.scripted import ScriptedAgent
from bastion.build import build_budget
from bastion.cli import app
from bastion.clock import SimClock, WallClock
from bastion.config import load_settings
from bastion.errors import BudgetExhausted
from bastion.llm.pricing import Cost
from bastion.runner import Runner
from bastion.store import Store
from bastion.store.budget import LedgerEntry, Settlement, budget_ledger

RunnerFactory = Callable[..., Runner]


async def test_using_up_the_daily_budget_trips_the_cost_cap_halt(
    runner_factory: RunnerFactory,
) -> None:
    """Daily tokens spent: the next step trips halt('cost_cap') with the reason, before its
    decision; the next call is refused."""
    agent = ScriptedAgent(lambda o, c: Decision())
    runner = runner_factory(agent, daily_token_budget=1_000)
    reservation = await runner.budget.reserve(Cost(900), model="gpt-test")
    await reservation.commit(Cost(1_000), tokens_in=800, tokens_out=200, model="gpt-test")
    assert (await runner.loop.step()).status == "halted"
    assert agent.calls == 0
    state = runner.halt.state()
    assert state is not None
    assert state.reason == "cost_cap"
    with pytest.raises(BudgetExhausted, match=r"Daily budget exhausted \(1,000 of 1,000 tokens"):
        await runner.budget.reserve(Cost(10), model="gpt-test")


async def test_the_console_serves_the_budget(runner_factory: RunnerFactory) -> None:
    """GET /api/budget and /api/status carry today's figures."""
    runner = runner_factory(ScriptedAgent(lambda o, c: Decision()), console=True)
    await runner.__aenter__()
    reservation = await runner.budget.reserve(Cost(100), model="gpt-test")
    await reservation.commit(Cost(120), tokens_in=100, tokens_out=20, model="gpt-test")
    assert runner.console_url is not None
    base, token = runner.console_url.split("/?token=")
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        budget = (await client.get("/api/budget")).json()
        status = (await client.get("/api/status")).json()
    assert (budget["daily_budget"], budget["tokens_used_today"]) == (500_000, 120)
    assert budget["tokens_remaining"] == 500_000 - 120
    assert budget["by_model"]["gpt-test"]["invocations"] == 1
    assert status["budget"]["tokens_used_today"] == 120


def test_cli_status_and_budget_show_the_spend(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`bastion status` prints Used today with the share; `bastion budget --json` the detail."""
    monkeypatch.setenv("BASTION_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BASTION_DAILY_TOKEN_BUDGET", "500000")
    settings = load_settings()
    (tmp_path / "data").mkdir()
    with Store.open(settings.resolved_store_url) as store:
        budget = build_budget(settings, store, WallClock(), "options_seller")

        async def spend() -> None:
            reservation = await budget.reserve(Cost(12_000), model="gpt-test")
            await reservation.commit(Cost(12_345), tokens_in=12_000, tokens_out=345)

        asyncio.run(spend())
    cli = CliRunner()
    status = cli.invoke(app, ["status"])
    assert "Used today: 12,345 tokens (2.5%)" in status.output
    detail = orjson.loads(cli.invoke(app, ["budget", "--json"]).stdout)
    assert (detail["tokens_used_today"], detail["invocations_today"]) == (12_345, 1)


async def test_a_run_prunes_the_ledger_at_start_and_a_day_later(
    runner_factory: RunnerFactory,
) -> None:
    """With one day of retention: the row already past it goes at start; the row that ages out
    during the run goes at the first step a day later; the totals keep every call."""
    clock: list[SimClock] = []

    def half_a_day_per_step(_o: object, _c: object) -> Decision:
        clock[0].advance(43_200)  # a day passes in two steps, without sleeping through it
        return Decision()

    runner = runner_factory(
        ScriptedAgent(half_a_day_per_step),
        budget_ledger_retention_days=1,
        health_check_on_startup=False,
    )
    assert isinstance(runner.clock, SimClock)
    clock.append(runner.clock)
    start = runner.clock.now()
    past, ages_out, fresh = (start + timedelta(hours=h) for h in (-48, -18, 18))
    for at in (past, ages_out, fresh):
        entry = LedgerEntry(at=at, agent="a", model="m", tokens_in=1, tokens_out=1, tokens=2, usd=1)
        runner.store.budget.settle(
            [Settlement("none", tuple([]), 0, 0, entry)], expires_at=entry.at
        )
    summary = await runner.run(max_steps=3)  # the steps end 12, 24 and 36 h in
    assert summary.steps == 3
    pruning = runner.ledger_pruning
    assert pruning is not None
    assert (pruning.passes, pruning.deleted) == (2, 2)
    with runner.store.engine.connect() as conn:
        left = conn.scalars(sa.select(budget_ledger.c.at)).all()
    assert left == [fresh]
    totals = runner.store.budget.model_totals("a", f"{past:%Y-%m-%d}")
    assert [t.invocations for t in totals] == [1]


def test_without_a_retention_a_run_prunes_nothing(runner_factory: RunnerFactory) -> None:
    assert runner_factory(ScriptedAgent(lambda o, c: Decision())).ledger_pruning is None


@pytest.mark.parametrize("synchronous", [False, True])
def test_the_runner_opens_its_store_with_budget_synchronous_settle(
    runner_factory: RunnerFactory, monkeypatch: pytest.MonkeyPatch, synchronous: bool
) -> None:
    """BASTION_BUDGET_SYNCHRONOUS_SETTLE reaches the settlement writer of the run's store
    (off by default); what it does on PostgreSQL is tested in tests/unit/store."""
    if synchronous:
        monkeypatch.setenv("BASTION_BUDGET_SYNCHRONOUS_SETTLE", "true")
    runner = runner_factory(ScriptedAgent(lambda o, c: Decision()))
    assert runner.store.budget.synchronous_settle is synchronous
