"""The loop under REDUCING on the real paper exchange: only orders that shrink a position go out."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bastion.agent import Context, Decision, Observation, OrderIntent
from bastion.agents.scripted import ScriptedAgent
from bastion.events import Event, EventKind
from bastion.guard.halt import Halt
from bastion.guard.limits import Breach, HaltReason, Ledger, Limits
from bastion.runner import Runner
from bastion.status import TradingState

RunnerFactory = Callable[..., Runner]


def _buy_then_both(obs: Observation, ctx: Context) -> Decision:
    """Step 1 buys the perpetual; later steps ask to add to it and to reduce it."""
    if ctx.step == 1:
        return Decision((OrderIntent("BTC-PERPETUAL", "buy", 20.0, order_type="market"),))
    return Decision(
        (
            OrderIntent("BTC-PERPETUAL", "buy", 10.0, order_type="market"),
            OrderIntent("BTC-PERPETUAL", "sell", 10.0, order_type="market", reduce_only=True),
        )
    )


async def test_reducing_flattens_without_asking_the_agent_then_refuses_what_adds(
    runner_factory: RunnerFactory,
) -> None:
    agent = ScriptedAgent(_buy_then_both)
    runner = runner_factory(agent)
    events: list[Event] = []
    runner.journal.subscribe(events.append)
    assert (await runner.loop.step()).orders_sent == 1
    await Halt(flag_path=runner.settings.kill_switch_path, clock=runner.clock).trip(
        "daily_loss", who="limits", state=TradingState.REDUCING
    )
    flatten = await runner.loop.step()
    assert (flatten.status, flatten.orders_sent, agent.calls) == ("ok", 1, 1)
    decision = [e.payload for e in events if e.kind is EventKind.DECISION][-1]
    assert decision["source"] == "flatten"
    assert [(i["direction"], i["amount"], i["reduce_only"]) for i in decision["intents"]] == [
        ("sell", 20.0, True)
    ]
    assert await runner.exchange.get_positions("BTC") == []
    flat = await runner.loop.step()  # nothing held: the agent is asked again, reduce-only
    assert (flat.status, flat.orders_sent, agent.calls) == ("ok", 0, 2)
    verdicts = [e.payload for e in events if e.kind is EventKind.RISK_VERDICT][-2:]
    assert [(v["direction"], v["status"], v.get("cap"), v["reducing"]) for v in verdicts] == [
        ("buy", "rejected", "reduce_only", True),
        ("sell", "rejected", "reduce_only", True),  # from flat, a sell would open a short
    ]
    assert await runner.exchange.get_positions("BTC") == []
    assert EventKind.TRADING_RESUMED not in [e.kind for e in events]


async def test_a_resume_between_deciding_and_sending_keeps_the_positions(
    runner_factory: RunnerFactory,
) -> None:
    """A flatten decided under REDUCING is not sent once a person resumed: the positions are
    theirs to keep, and nothing else goes out that step."""
    runner = runner_factory(ScriptedAgent(_buy_then_both))
    await runner.loop.step()
    halt = Halt(flag_path=runner.settings.kill_switch_path, clock=runner.clock)
    await halt.trip("daily_loss", who="limits", state=TradingState.REDUCING)
    decide = runner.loop._decide

    async def resume_after_deciding(*args: Any, **kwargs: Any) -> Any:
        decided = await decide(*args, **kwargs)
        halt.resume(who="ops", why="the loss is understood")
        return decided

    runner.loop._decide = resume_after_deciding  # type: ignore[method-assign]
    outcome = await runner.loop.step()
    assert (outcome.status, outcome.orders_sent) == ("ok", 0)
    [position] = await runner.exchange.get_positions("BTC")
    assert position.size == 20.0


class _Always:
    """A trigger that breaches at every check, as a real one would under a lasting condition."""

    def __init__(self, breach: Breach) -> None:
        self.breach = breach

    def check(self, observation: Observation | None, ledger: Ledger) -> Breach | None:
        return self.breach


async def test_triggers_firing_together_make_one_halt_one_alert_one_record(
    runner_factory: RunnerFactory,
) -> None:
    """The strictest state wins, and the halt lapses only if every breach does."""
    runner = runner_factory(ScriptedAgent(_buy_then_both))
    until = datetime(2030, 1, 2, tzinfo=UTC)
    runner.loop.halt_limits = Limits(
        [
            _Always(Breach(HaltReason.DRAWDOWN, "limits", {}, TradingState.REDUCING, until)),
            _Always(Breach(HaltReason.COST_CAP, "budget", {"reason": "daily"})),
            _Always(Breach(HaltReason.DAILY_LOSS, "limits", {}, TradingState.REDUCING, until)),
        ]
    )
    events: list[Event] = []
    runner.journal.subscribe(events.append)
    for _ in range(3):
        await runner.loop.step()
    [tripped] = [e for e in events if e.kind is EventKind.HALT_TRIPPED]
    assert (tripped.payload["reason"], tripped.payload["state"]) == ("drawdown", "halted")
    assert tripped.payload["until"] is None, "a cost-cap halt does not lapse with the day"
    assert [b["reason"] for b in tripped.payload["detail"]["also"]] == ["cost_cap", "daily_loss"]
    assert runner.store is not None
    [record] = runner.store.halts.history()
    assert (record.reason, record.state, record.active) == ("drawdown", "halted", True)
    assert runner.halt.trading_state() is TradingState.HALTED


class _ToolHungry(ScriptedAgent):
    """Calls the ticker tool ``calls`` times in its first step, then buys; declares the tool."""

    tools = ("ticker",)

    def __init__(self, calls: int) -> None:
        super().__init__(self._decide_with_tools)
        self._calls = calls

    async def _decide_with_tools(self, obs: Observation, ctx: Context) -> Decision:
        assert ctx.tools is not None
        for _ in range(self._calls):
            await ctx.tools.call("ticker", {"instrument": "BTC-PERPETUAL"})
        return Decision((OrderIntent("BTC-PERPETUAL", "buy", 10.0, order_type="market"),))


async def test_a_runaway_of_tool_calls_halts_before_the_step_sends(
    runner_factory: RunnerFactory,
) -> None:
    runner = runner_factory(_ToolHungry(calls=6), max_tool_calls_per_step=5)
    events: list[Event] = []
    runner.journal.subscribe(events.append)
    outcome = await runner.loop.step()
    assert (outcome.status, outcome.orders_sent) == ("halted", 0)
    [tripped] = [e for e in events if e.kind is EventKind.HALT_TRIPPED]
    assert tripped.payload["reason"] == "runaway_loop"
    assert tripped.payload["detail"]["tool_calls"] == 6
    assert await runner.exchange.get_positions("BTC") == []


async def test_as_many_tool_calls_as_allowed_trade_on(runner_factory: RunnerFactory) -> None:
    runner = runner_factory(_ToolHungry(calls=5), max_tool_calls_per_step=5)
    outcome = await runner.loop.step()
    assert (outcome.status, outcome.orders_sent) == ("ok", 1)


async def test_a_run_past_its_step_cap_halts_as_a_runaway_and_sends_nothing_more(
    runner_factory: RunnerFactory,
) -> None:
    runner = runner_factory(ScriptedAgent(_buy_then_both), max_steps_per_run=2)
    events: list[Event] = []
    runner.journal.subscribe(events.append)
    outcomes = [await runner.loop.step() for _ in range(4)]
    assert [o.status for o in outcomes] == ["ok", "ok", "halted", "halted"]
    assert sum(o.orders_sent for o in outcomes) == 3  # step 1 buys; step 2 adds and reduces
    [tripped] = [e for e in events if e.kind is EventKind.HALT_TRIPPED]
    assert tripped.payload["reason"] == "runaway_loop"
    assert tripped.payload["detail"] == {"steps": 3, "limit": 2}
    assert runner.halt.trading_state() is TradingState.HALTED


async def test_a_reducing_breach_flattens_in_its_own_step_and_is_recorded_once(
    runner_factory: RunnerFactory,
) -> None:
    """A daily loss that asks for REDUCING and persists: the step it trips in flattens (flag,
    cancel and alert first), the steps after trade reduce-only, and no second halt is
    recorded."""
    runner = runner_factory(ScriptedAgent(_buy_then_both))
    events: list[Event] = []
    runner.journal.subscribe(events.append)
    assert (await runner.loop.step()).orders_sent == 1  # the position to flatten
    runner.loop.halt_limits = Limits(
        [_Always(Breach(HaltReason.DAILY_LOSS, "limits", {}, TradingState.REDUCING))]
    )
    first = await runner.loop.step()
    assert (first.status, first.orders_sent) == ("ok", 1)
    assert runner.halt.trading_state() is TradingState.REDUCING
    kinds = [e.kind for e in events]
    [flatten] = [k for k, e in enumerate(events) if e.payload.get("source") == "flatten"]
    assert kinds.index(EventKind.HALT_TRIPPED) < flatten
    later = [await runner.loop.step() for _ in range(2)]
    assert [(o.status, o.orders_sent) for o in later] == [("ok", 0), ("ok", 0)]
    assert await runner.exchange.get_positions("BTC") == [], "20 bought, 20 flattened"
    assert [e.kind for e in events].count(EventKind.HALT_TRIPPED) == 1
