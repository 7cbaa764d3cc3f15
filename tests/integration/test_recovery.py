"""Crash recovery on the real loop and paper exchange: a run dies mid-send, the next one starts.

The death is a ``BaseException`` raised from inside the exchange call, after the exchange took
the order: nothing of the step after it runs (no ``step_completed``, no checkpoint rewrite),
as when the process is killed while the answer is on its way. The lock is then given back
without a clean finish, so the next :class:`Runner` on the directory finds a crashed run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bastion.agent import Context, Decision, Observation, OrderIntent
from bastion.agents.scripted import ScriptedAgent
from bastion.config import Settings
from bastion.events import Event, EventKind
from bastion.market import Order, OrderRequest
from bastion.runner import Runner
from bastion.runtime.checkpoint import CHECKPOINT_FILE, Checkpoint

RunnerFactory = Callable[..., Runner]
SettingsFactory = Callable[..., Settings]
PERP = "BTC-PERPETUAL"


class _ProcessDied(BaseException):
    """The process ends here: no handler of the loop's may catch it."""


def _buy_each_step(obs: Observation, ctx: Context) -> Decision:
    return Decision((OrderIntent(PERP, "buy", 10.0, order_type="market"),))


class _Counting(ScriptedAgent):
    """A stateful agent: it remembers how many orders it asked for, and stops after two."""

    def __init__(self, version: str = "1.0.0") -> None:
        super().__init__(self._decide_counting, name="counting")
        self.version = version
        self.asked = 0

    async def _decide_counting(self, obs: Observation, ctx: Context) -> Decision:
        if self.asked >= 2:
            return Decision((), rationale="asked twice already")
        self.asked += 1
        return Decision((OrderIntent(PERP, "buy", 10.0, order_type="market"),))

    def snapshot(self) -> dict[str, Any]:
        return {"asked": self.asked}

    def restore(self, state: Any) -> None:
        self.asked = int(state["asked"])


def _die_after_sending(runner: Runner) -> list[Order]:
    """Make the runner's next order reach the exchange and then kill the 'process'."""
    sent: list[Order] = []
    place = runner.exchange.place_order

    async def place_then_die(request: OrderRequest) -> Order:
        sent.append(await place(request))
        raise _ProcessDied

    runner.exchange.place_order = place_then_die  # type: ignore[method-assign]
    return sent


def _crash(runner: Runner) -> None:
    """Leave the directory as a killed process does: its run still ``running`` in the store,
    ``run.json`` naming it, and the lock free (the kernel drops it with the process)."""
    runner.store.runs.start(
        run_id=runner.run_id,
        agent_name=runner.agent.name,
        agent_version=runner.agent.version,
        mode=runner.settings.mode,
        config_hash=runner.settings.config_hash(),
        started_at=runner.clock.now(),
    )
    assert runner.lock is not None
    runner.lock.release()


def _restart(runner: Runner, settings: Settings, agent: ScriptedAgent) -> Runner:
    again = Runner(
        settings,
        clock=runner.clock,
        agent=agent,
        exchange=runner.exchange,
        console=False,
    )
    assert again.crashed_run is not None
    assert again.crashed_run.run_id == runner.run_id
    return again


async def test_an_order_that_filled_while_its_answer_was_lost_is_adopted_not_sent_again(
    runner_factory: RunnerFactory, settings_factory: SettingsFactory
) -> None:
    first = runner_factory(ScriptedAgent(_buy_each_step))
    assert (await first.loop.step()).orders_sent == 1
    sent = _die_after_sending(first)
    with pytest.raises(_ProcessDied):
        await first.loop.step()
    [lost] = sent
    assert lost.order_state == "filled"
    on_disk = Checkpoint.from_json((first.settings.data_dir / CHECKPOINT_FILE).read_bytes())
    assert (on_disk.step, [e.label for e in on_disk.outbox]) == (1, [lost.label])
    _crash(first)

    agent = ScriptedAgent(lambda obs, ctx: Decision(()))
    second = _restart(first, settings_factory(), agent)
    try:
        events: list[Event] = []
        second.journal.subscribe(events.append)
        recovery = await second.loop.recover(first.run_id)

        assert recovery.last_step == 1
        [adopted] = recovery.orders
        assert (adopted.label, adopted.state, adopted.in_outbox) == (lost.label, "filled", True)
        assert adopted.filled_amount == 10.0
        assert recovery.not_sent == ()
        [recorded] = [e for e in events if e.kind is EventKind.RUN_RECOVERED]
        assert recorded.payload["orders"][0]["order_id"] == lost.order_id
        [position] = await second.exchange.get_positions("BTC")
        assert position.size == 20.0  # two buys of 10, the lost one once
        outcome = await second.loop.step()
        assert outcome.status == "ok"
        assert not [e for e in events if e.kind is EventKind.HALT_TRIPPED], "no drift halt"
    finally:
        await second.aclose()


async def test_a_label_the_exchange_never_took_is_reported_and_not_sent(
    runner_factory: RunnerFactory, settings_factory: SettingsFactory
) -> None:
    first = runner_factory(ScriptedAgent(_buy_each_step))

    async def die_before_the_exchange(request: OrderRequest) -> Order:
        raise _ProcessDied

    first.exchange.place_order = die_before_the_exchange  # type: ignore[method-assign]
    with pytest.raises(_ProcessDied):
        await first.loop.step()
    _crash(first)

    second = _restart(first, settings_factory(), ScriptedAgent(lambda obs, ctx: Decision(())))
    try:
        recovery = await second.loop.recover(first.run_id)
        assert recovery.last_step == 0
        assert recovery.orders == ()
        assert recovery.not_sent == (f"{first.run_id}-1-0",)
        assert await second.exchange.get_positions("BTC") == []
    finally:
        await second.aclose()


async def test_a_resting_order_of_the_crashed_run_is_tracked_by_the_next(
    runner_factory: RunnerFactory, settings_factory: SettingsFactory
) -> None:
    """An order the dead run left resting is adopted: its fate is recorded by the next run."""

    def bid_far_below(obs: Observation, ctx: Context) -> Decision:
        if ctx.step > 1:
            return Decision(())
        price = round(obs.index_price * 0.95 / 0.5) * 0.5
        return Decision((OrderIntent(PERP, "buy", 10.0, price=price),))

    first = runner_factory(ScriptedAgent(bid_far_below))
    await first.loop.step()
    [resting] = await first.exchange.get_open_orders("BTC")
    _crash(first)

    second = _restart(first, settings_factory(), ScriptedAgent(lambda obs, ctx: Decision(())))
    try:
        events: list[Event] = []
        second.journal.subscribe(events.append)
        recovery = await second.loop.recover(first.run_id)
        assert [(o.order_id, o.state, o.in_outbox) for o in recovery.orders] == [
            (resting.order_id, "open", False)
        ]
        await second.exchange.cancel_order(resting.order_id)  # someone cancels it by hand
        await second.loop.step()
        [fate] = [e for e in events if e.kind is EventKind.ORDER_SKIPPED]
        assert (fate.payload["order_id"], fate.payload["reason"]) == (
            resting.order_id,
            "cancelled",
        )
    finally:
        await second.aclose()


async def test_the_agent_goes_on_from_its_saved_state(
    runner_factory: RunnerFactory, settings_factory: SettingsFactory
) -> None:
    """Without its state the agent would ask twice more; restored, it asks nothing."""
    first = runner_factory(_Counting())
    for _ in range(3):
        await first.loop.step()
    _crash(first)

    agent = _Counting()
    second = _restart(first, settings_factory(), agent)
    try:
        recovery = await second.loop.recover(first.run_id)
        assert recovery.state_restored
        assert agent.asked == 2
        assert (await second.loop.step()).orders_sent == 0
        [position] = await second.exchange.get_positions("BTC")
        assert position.size == 20.0
    finally:
        await second.aclose()


async def test_another_agent_version_does_not_get_the_old_state(
    runner_factory: RunnerFactory, settings_factory: SettingsFactory
) -> None:
    first = runner_factory(_Counting())
    await first.loop.step()
    _crash(first)

    agent = _Counting(version="2.0.0")
    second = _restart(first, settings_factory(), agent)
    try:
        recovery = await second.loop.recover(first.run_id)
        assert not recovery.state_restored
        assert agent.asked == 0
        assert recovery.problems == (
            "agent state of counting 1.0.0 not restored into counting 2.0.0",
        )
    finally:
        await second.aclose()


async def test_a_step_whose_outbox_cannot_be_written_sends_nothing(
    runner_factory: RunnerFactory,
) -> None:
    """The write-ahead comes before the send: a send a restart could not find is not made."""
    runner = runner_factory(ScriptedAgent(_buy_each_step))
    checkpoint: Path = runner.settings.data_dir / CHECKPOINT_FILE
    os.mkdir(checkpoint)  # a directory where the file must go: every replace of it fails
    events: list[Event] = []
    runner.journal.subscribe(events.append)

    outcome = await runner.loop.step()

    assert (outcome.status, outcome.orders_sent) == ("failed", 0)
    [skipped] = [e for e in events if e.kind is EventKind.ORDER_SKIPPED]
    assert skipped.payload["reason"] == "checkpoint_unwritable"
    assert "nothing sent" in skipped.payload["detail"]
    assert await runner.exchange.get_positions("BTC") == []
