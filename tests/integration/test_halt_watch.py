"""A flag touched between steps or during one cancels resting orders at once, at any interval.

The loop runs on the wall clock with a 30 s interval and its slowest polling fallback (10 s, the
setting's maximum), twice the patience below: only the flag watcher can cancel what rests in
time. The bound fails a broken watcher; it is not a latency figure (``benchmarks/
halt_latency.py`` measures that).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from bastion.agent import Context, Decision, Observation, OrderIntent
from bastion.agents.scripted import ScriptedAgent
from bastion.clock import WallClock
from bastion.config import Settings
from bastion.events import Event, EventKind
from bastion.guard.halt import Halt
from bastion.runner import Runner
from bastion.store import Store

PATIENCE = 5.0
"""For what only the watcher can do in time (the polling fallback needs 10 s)."""
STARTUP = 60.0
"""For what a slow machine may take long to reach (the run's start, the first order)."""


def _resting_buy(obs: Observation, ctx: Context) -> Decision:
    """A limit buy under the mark: it rests on the paper book (inside its 10 % band, with room
    for the mark to move while the order is in flight)."""
    mark = obs.tickers["BTC-PERPETUAL"].mark_price
    price = round(mark * 0.95 * 2) / 2
    return Decision((OrderIntent("BTC-PERPETUAL", "buy", 10.0, order_type="limit", price=price),))


async def _until(condition: Callable[[], Awaitable[bool]], patience: float = PATIENCE) -> None:
    async with asyncio.timeout(patience):
        while not await condition():  # noqa: ASYNC110  polls state outside this loop
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def _running(runner: Runner) -> AsyncIterator[list[Event]]:
    """``runner`` running in the background; yields the events it journals, stops it after."""
    events: list[Event] = []
    runner.journal.subscribe(events.append)
    stop = asyncio.Event()
    run = asyncio.create_task(runner.run(stop=stop))
    try:
        yield events
    finally:
        stop.set()
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
        await runner.aclose()


async def test_a_touch_between_steps_cancels_resting_orders_before_the_next_step(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(loop_interval_seconds=30.0, halt_poll_seconds=10.0)
    runner = Runner(settings, clock=WallClock(), agent=ScriptedAgent(_resting_buy))
    async with _running(runner) as events:

        async def one_resting() -> bool:
            return len(await runner.exchange.get_open_orders("BTC")) == 1

        await _until(one_resting, STARTUP)
        # `bastion kill` from another terminal: the flag, and no exchange of its own.
        await Halt(flag_path=settings.kill_switch_path, clock=WallClock()).trip("drill", who="ops")

        async def none_resting() -> bool:
            return await runner.exchange.get_open_orders("BTC") == []

        await _until(none_resting)
        steps = [e for e in events if e.kind is EventKind.STEP_COMPLETED]
        assert len(steps) == 1, "the watcher, not a later step, cancelled the order"
        enforced = [e for e in events if e.kind is EventKind.HALT_ENFORCED]
        assert [e.payload["cancelled_orders"] for e in enforced] == [1]
        state = runner.halt.state()
        assert state is not None
        assert state.enforced, "status can say halted: the cancel is confirmed"


async def test_an_order_acknowledged_after_the_halt_is_cancelled_at_once(
    settings_factory: Callable[..., Settings],
) -> None:
    """The send passed the halt check, then the flag rose while the order was in flight.

    The paper exchange holds the buy for 3 s; the flag rises 0.5 s into it, so the halt's own
    cancel-all finds nothing to cancel and the order lands afterwards: the loop cancels it as
    soon as the exchange acknowledges it.
    """
    settings = settings_factory(
        loop_interval_seconds=30.0,
        halt_poll_seconds=10.0,
        paper_faults=[{"kind": "delay", "method": "private/buy", "seconds": 3.0, "times": 1}],
    )
    halt = Halt(flag_path=settings.kill_switch_path, clock=WallClock())

    def decide(obs: Observation, ctx: Context) -> Decision:
        loop = asyncio.get_running_loop()
        loop.call_later(0.5, lambda: loop.create_task(halt.trip("drill", who="ops")))
        return _resting_buy(obs, ctx)

    runner = Runner(settings, clock=WallClock(), agent=ScriptedAgent(decide))
    async with _running(runner) as events:

        async def raced_and_cancelled() -> bool:
            skipped = [e for e in events if e.kind is EventKind.ORDER_SKIPPED]
            return any(e.payload["stage"] == "after_send" for e in skipped)

        async def observed() -> bool:
            return any(e.kind is EventKind.OBSERVATION for e in events)

        await _until(observed, STARTUP)
        # The alternative, the next step's sweep, comes 30 s after the first step began.
        await _until(raced_and_cancelled, 20.0)
        assert await runner.exchange.get_open_orders("BTC") == []
        [sent] = [e for e in events if e.kind is EventKind.ORDER_SENT]
        [skipped] = [e for e in events if e.kind is EventKind.ORDER_SKIPPED]
        assert skipped.payload["order_id"] == sent.payload["order_id"]


async def test_every_agent_follows_the_fleet_halt_and_its_resume(
    settings_factory: Callable[..., Settings],
) -> None:
    """`bastion kill --fleet` on any host: the run halts with reason fleet_flag and cancels its
    resting orders within a poll; `resume --fleet` lifts that halt, not one of its own."""
    settings = settings_factory(loop_interval_seconds=30.0, halt_poll_seconds=0.05)
    runner = Runner(settings, clock=WallClock(), agent=ScriptedAgent(_resting_buy))
    async with _running(runner) as events:

        async def one_resting() -> bool:
            return len(await runner.exchange.get_open_orders("BTC")) == 1

        await _until(one_resting, STARTUP)
        with Store.open(settings.resolved_store_url) as elsewhere:  # another host's process
            operator = Halt(
                flag_path=Path("/nonexistent/flag"), clock=WallClock(), halts=elsewhere.halts
            )
            await operator.trip_fleet("incident", who="ops")

            async def none_resting() -> bool:
                return await runner.exchange.get_open_orders("BTC") == []

            await _until(none_resting)
            state = runner.halt.state()
            assert state is not None
            assert (state.reason, state.who) == ("fleet_flag", "the fleet halt by ops")
            operator.resume_fleet(who="ops", why="incident over")

            async def lifted() -> bool:
                return runner.halt.state() is None

            await _until(lifted)
        resumed = [e.payload for e in events if e.kind is EventKind.HALT_RESUMED]
        assert [r["why"] for r in resumed] == ["the fleet halt was resumed"]
