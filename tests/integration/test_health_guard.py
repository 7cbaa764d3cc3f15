"""The health guard around a real run: start-up gate, runtime re-checks, one halt path."""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx
import pytest

from bastion.agent import Context, Decision, Observation, OrderIntent
from bastion.agents.scripted import ScriptedAgent
from bastion.clock import SimClock
from bastion.events import Event, EventKind
from bastion.guard.health import HealthStatus
from bastion.guard.health_guard import HealthAborted
from bastion.runner import Runner

RunnerFactory = Callable[..., Runner]


def _resting_buy(obs: Observation, ctx: Context) -> Decision:
    """Buy the perpetual well below the market: the order rests."""
    if ctx.step > 1:
        return Decision()
    price = float(round(obs.tickers["BTC-PERPETUAL"].mark_price * 0.95))
    return Decision((OrderIntent("BTC-PERPETUAL", "buy", 10.0, price=price),))


def _steps(events: list[Event]) -> int:
    return sum(1 for e in events if e.kind is EventKind.STEP_COMPLETED)


def _with_check(runner: Runner, statuses: list[HealthStatus]) -> None:
    """A user-registered check that answers the given statuses in turn (the last repeats)."""

    async def scripted() -> tuple[HealthStatus, str]:
        status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        return status, f"scripted {status.value}"

    runner.health.register("scripted", scripted, lightweight=True)


async def test_startup_ok_runs_the_loop(runner_factory: RunnerFactory) -> None:
    """All checks OK: the run starts and steps."""
    runner = runner_factory(ScriptedAgent(lambda o, c: Decision()))
    events: list[Event] = []
    runner.journal.subscribe(events.append)
    summary = await runner.run(max_steps=2)
    assert summary.status == "completed"
    assert _steps(events) == 2
    cached = runner.health.get_cached_health_status()
    assert cached.overall_status is HealthStatus.OK


async def test_startup_warn_warns_and_runs(
    runner_factory: RunnerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """WARN at start: the banner says so and the loop runs."""
    runner = runner_factory(ScriptedAgent(lambda o, c: Decision()))
    _with_check(runner, [HealthStatus.WARN])
    with caplog.at_level(logging.WARNING):
        summary = await runner.run(max_steps=1)
    assert summary.steps == 1
    assert "Starting agent with WARN health status: scripted WARN" in caplog.text


async def test_startup_fail_aborts_before_any_step(
    runner_factory: RunnerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """FAIL at start: AGENT ABORTED banner, no iteration, the run recorded as failed."""
    agent = ScriptedAgent(lambda o, c: Decision())
    runner = runner_factory(agent)
    _with_check(runner, [HealthStatus.FAIL])
    with caplog.at_level(logging.ERROR), pytest.raises(HealthAborted) as info:
        await runner.run(max_steps=3)
    assert "AGENT ABORTED – System Health FAIL: scripted FAIL" in caplog.text
    assert "System Health FAIL" in str(info.value)
    assert agent.calls == 0
    record = runner.store.runs.get(runner.run_id)
    assert record is not None
    assert (record.status, record.steps) == ("failed", 0)


async def test_ok_to_fail_at_runtime_halts_through_the_one_path(
    runner_factory: RunnerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A re-check that turns FAIL: flag written, resting orders cancelled, agent paused."""
    runner = runner_factory(ScriptedAgent(_resting_buy), health_recheck_interval_seconds=10.0)
    _with_check(runner, [HealthStatus.OK, HealthStatus.FAIL])
    await runner.guard.startup()
    assert (await runner.loop.step()).orders_sent == 1
    assert len(await runner.exchange.get_open_orders("BTC")) == 1
    assert not runner.guard.paused

    assert isinstance(runner.clock, SimClock)
    runner.clock.advance(11)
    with caplog.at_level(logging.ERROR):
        outcome = await runner.loop.step()
    assert outcome.status == "halted"
    assert "AGENT STOPPED – System Health FAIL during runtime." in caplog.text
    state = runner.halt.state()
    assert state is not None
    assert state.reason == "health_fail"
    assert runner.settings.kill_switch_path.exists()
    assert await runner.exchange.get_open_orders("BTC") == []
    assert runner.guard.paused


async def test_the_console_runs_and_serves_real_health_checks(
    runner_factory: RunnerFactory,
) -> None:
    """POST /api/agent_healthcheck runs the built-in checks of the running runtime."""
    runner = runner_factory(ScriptedAgent(lambda o, c: Decision()), console=True)
    await runner.__aenter__()
    assert runner.console_url is not None
    base, token = runner.console_url.split("/?token=")
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers) as client:
        ran = (await client.post("/api/agent_healthcheck")).json()
        last = (await client.get("/api/system_health/last")).json()
        history = (await client.get("/api/system_health/history?limit=5")).json()
    names = {c["name"] for c in ran["checks"]}
    assert {"config", "exchange_public", "exchange_private", "store", "disk"} <= names
    assert ran["overall_status"] == "OK"
    assert ran["agent_paused_due_to_health"] is False
    assert last["last_run_at"] == ran["last_run_at"]
    assert len(history["runs"]) == 1


async def test_without_auto_kill_a_runtime_fail_is_recorded_not_tripped(
    runner_factory: RunnerFactory,
) -> None:
    """auto_kill_on_health_fail off: the reading reaches the ledger, trading goes on."""
    runner = runner_factory(
        ScriptedAgent(lambda o, c: Decision()),
        health_recheck_interval_seconds=10.0,
        auto_kill_on_health_fail=False,
    )
    _with_check(runner, [HealthStatus.OK, HealthStatus.FAIL])
    await runner.guard.startup()
    assert isinstance(runner.clock, SimClock)
    runner.clock.advance(11)
    assert (await runner.loop.step()).status == "ok"
    reading = runner.loop.ledger.health
    assert reading is not None
    assert (reading.status, reading.halts) == (HealthStatus.FAIL, False)
    assert not runner.halt.active()


async def test_resuming_while_still_failing_does_not_trip_again(
    runner_factory: RunnerFactory,
) -> None:
    """FAIL -> FAIL is no news: after a person resumes, only a new turn to FAIL halts."""
    runner = runner_factory(
        ScriptedAgent(lambda o, c: Decision()), health_recheck_interval_seconds=10.0
    )
    _with_check(runner, [HealthStatus.OK, HealthStatus.FAIL])
    await runner.guard.startup()
    assert isinstance(runner.clock, SimClock)
    runner.clock.advance(11)
    assert (await runner.loop.step()).status == "halted"
    runner.halt.resume(who="ops", why="known outage, trading on")
    assert (await runner.loop.step()).status == "ok"
    runner.clock.advance(11)
    assert (await runner.loop.step()).status == "ok"  # re-checked, still FAIL
    assert not runner.halt.active()
