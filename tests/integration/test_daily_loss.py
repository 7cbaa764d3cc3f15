"""The daily-loss acceptance on a SimClock: a price shock on the real paper exchange trips the
halt within one step, the positions are flattened reduce-only in that step, the halt holds for
the rest of the UTC day and lifts when the day turns only if configured so."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest

from bastion.agent import Context, Decision, Observation, OrderIntent
from bastion.agents.scripted import ScriptedAgent
from bastion.clock import SimClock
from bastion.config import Settings
from bastion.events import Event, EventKind
from bastion.runner import Runner
from bastion.status import TradingState

SettingsFactory = Callable[..., Settings]

_START = datetime(2027, 1, 15, 0, 10, tzinfo=UTC)  # ten minutes into a UTC day
_LONG_USD = 80_000.0  # about 0.9 BTC of the perpetual on a 1 BTC account


def _long_then_add(obs: Observation, ctx: Context) -> Decision:
    """Step 1 goes long the perpetual; every later step asks to add a little more."""
    amount = _LONG_USD if ctx.step == 1 else 1_000.0
    return Decision((OrderIntent("BTC-PERPETUAL", "buy", amount, order_type="market"),))


@pytest.fixture
async def make_runner(settings_factory: SettingsFactory) -> AsyncIterator[Callable[..., Runner]]:
    made: list[Runner] = []

    def make(**overrides: object) -> Runner:
        settings = settings_factory(
            daily_loss_pct=3.0,
            daily_loss_flatten=True,
            paper_initial_balance_btc=1.0,
            **overrides,
        )
        clock = SimClock(start=_START.timestamp())
        runner = Runner(settings, clock=clock, agent=ScriptedAgent(_long_then_add))
        made.append(runner)
        return runner

    yield make
    for runner in made:
        await runner.aclose()


async def _shock(runner: Runner, pct: float) -> None:
    assert runner.paper is not None
    runner.paper.venue.market.shock("BTC", pct)
    await runner.clock.sleep(2)  # a shock holds from the next grid second


@pytest.mark.parametrize("auto_resume", [True, False])
async def test_a_price_shock_halts_flattens_and_holds_until_the_utc_day_turns(
    make_runner: Callable[..., Runner], auto_resume: bool
) -> None:
    runner = make_runner(halt_auto_resume=auto_resume)
    events: list[Event] = []
    runner.journal.subscribe(events.append)
    assert (await runner.loop.step()).orders_sent == 1
    [held] = await runner.exchange.get_positions("BTC")
    assert held.size == _LONG_USD

    await _shock(runner, -10)
    tripped_step = await runner.loop.step()

    [tripped] = [e.payload for e in events if e.kind is EventKind.HALT_TRIPPED]
    assert (tripped["reason"], tripped["state"]) == ("daily_loss", "reducing")
    assert tripped["until"] == "2027-01-16T00:00:00+00:00"
    assert tripped["detail"]["loss_pct"] > 3.0
    assert (tripped_step.status, tripped_step.orders_sent) == ("ok", 1)
    [flatten] = [e.payload for e in events if e.kind is EventKind.ORDER_SENT][1:]
    assert (flatten["direction"], flatten["amount"], flatten["reduce_only"]) == (
        "sell",
        _LONG_USD,
        True,
    )
    assert await runner.exchange.get_positions("BTC") == []

    runner.clock.advance(23 * 3600 - 120)  # 23:10 UTC: the same day, still reducing
    late = await runner.loop.step()
    assert (late.status, late.orders_sent) == ("ok", 0)
    assert runner.halt.trading_state() is TradingState.REDUCING
    refused = [e.payload for e in events if e.kind is EventKind.RISK_VERDICT][-1]
    assert (refused["status"], refused["cap"]) == ("rejected", "reduce_only")

    runner.clock.advance(3600)  # 00:10 UTC the next day
    next_day = await runner.loop.step()
    if auto_resume:
        assert runner.halt.trading_state() is TradingState.ACTIVE
        assert (next_day.status, next_day.orders_sent) == ("ok", 1)
        assert EventKind.TRADING_RESUMED in [e.kind for e in events]
    else:
        assert runner.halt.trading_state() is TradingState.REDUCING, "a person resumes"
        assert next_day.orders_sent == 0
    assert [e.kind for e in events].count(EventKind.HALT_TRIPPED) == 1
