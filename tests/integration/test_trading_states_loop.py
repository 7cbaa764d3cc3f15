"""The loop under REDUCING on the real paper exchange: only orders that shrink a position go out."""

from __future__ import annotations

from collections.abc import Callable

from bastion.agent import Context, Decision, Observation, OrderIntent
from bastion.agents.scripted import ScriptedAgent
from bastion.events import Event, EventKind
from bastion.guard.halt import Halt
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


async def test_reducing_rejects_what_adds_and_sends_what_reduces(
    runner_factory: RunnerFactory,
) -> None:
    runner = runner_factory(ScriptedAgent(_buy_then_both))
    events: list[Event] = []
    runner.journal.subscribe(events.append)
    assert (await runner.loop.step()).orders_sent == 1
    await Halt(flag_path=runner.settings.kill_switch_path, clock=runner.clock).trip(
        "daily_loss", who="limits", state=TradingState.REDUCING
    )
    outcome = await runner.loop.step()
    assert outcome.status == "ok"
    assert outcome.orders_sent == 1
    verdicts = [e.payload for e in events if e.kind is EventKind.RISK_VERDICT][-2:]
    assert [(v["direction"], v["status"], v.get("cap")) for v in verdicts] == [
        ("buy", "rejected", "trading_state"),
        ("sell", "approved", None),
    ]
    [position] = await runner.exchange.get_positions("BTC")
    assert position.size == 10.0  # 20 bought, 10 reduced, nothing added
    assert EventKind.TRADING_RESUMED not in [e.kind for e in events]
