"""Picking up after a crash: restore the agent, find the crashed run's orders, say what was found.

A run that died (SIGKILL, OOM, a lost machine) may have been anywhere in a step. What it made
durable is its trace up to the last completed step (fsynced per step) and its checkpoint
(:mod:`bastion.runtime.checkpoint`): the last completed step, the agent's state and the
labels it was about to send. Before the next run's first step, :func:`recover`:

1. restores the agent's state from the crashed run's checkpoint (only that run's, and only
   for the same agent and version: another version's state may not mean the same thing);
2. asks the exchange about every label in the outbox (``get_order_state_by_label``). An order
   found was sent and reached the exchange, whether it rests or filled at once while its answer
   was lost: it is *adopted* (resting ones tracked, so their later fills are recorded and the
   drift check expects them). A label the exchange does not know was never accepted: it is
   reported as not sent and, like every label, never sent again;
3. adopts every other resting order whose label names the crashed run (sent in an earlier step
   and still open), for the same reason;
4. records one ``run_recovered`` event with all of it, which the CLI prints.

An exchange that cannot be asked does not stop the run: the problem is recorded, nothing is
re-sent, and the drift check still compares positions with what the exchange reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bastion.agent import Agent, StatefulAgent
from bastion.errors import BastionError
from bastion.events import EventKind, Journal
from bastion.exchange.base import Exchange
from bastion.market import Order
from bastion.runtime.checkpoint import Checkpoint, CheckpointFile, UnreadableCheckpoint
from bastion.runtime.orders import OrderTracker

__all__ = ["RecoveredOrder", "Recovery", "recover"]


@dataclass(frozen=True, slots=True)
class RecoveredOrder:
    """An order of the crashed run, as the exchange reports it now."""

    label: str
    order_id: str
    instrument: str
    direction: str
    amount: float
    filled_amount: float
    state: str
    in_outbox: bool
    """True when the crash came while this order was being sent (its answer may be lost)."""

    @classmethod
    def of(cls, order: Order, *, in_outbox: bool) -> RecoveredOrder:
        return cls(
            order.label,
            order.order_id,
            order.instrument_name,
            order.direction,
            order.amount,
            order.filled_amount,
            order.order_state,
            in_outbox,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "order_id": self.order_id,
            "instrument": self.instrument,
            "direction": self.direction,
            "amount": self.amount,
            "filled_amount": self.filled_amount,
            "state": self.state,
            "in_outbox": self.in_outbox,
        }


@dataclass(frozen=True, slots=True)
class Recovery:
    """What a restart found of the run that crashed before it."""

    crashed_run_id: str
    last_step: int | None = None
    """The crashed run's last completed step, by its checkpoint (None without one)."""
    state_restored: bool = False
    orders: tuple[RecoveredOrder, ...] = ()
    not_sent: tuple[str, ...] = ()
    """Labels the crashed run was sending that the exchange never accepted."""
    problems: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "crashed_run_id": self.crashed_run_id,
            "last_step": self.last_step,
            "state_restored": self.state_restored,
            "orders": [o.to_dict() for o in self.orders],
            "not_sent": list(self.not_sent),
            "problems": list(self.problems),
        }


async def recover(
    *,
    crashed_run_id: str,
    checkpoints: CheckpointFile,
    agent: Agent,
    exchange: Exchange,
    tracker: OrderTracker,
    currency: str,
    journal: Journal,
) -> Recovery:
    """Restore, reconcile by label, record (see the module docstring); never raises for I/O."""
    problems: list[str] = []
    checkpoint = _checkpoint_of(crashed_run_id, checkpoints, problems)
    restored = _restore(agent, checkpoint, problems)
    orders: list[RecoveredOrder] = []
    not_sent: list[str] = []
    try:
        for entry in checkpoint.outbox if checkpoint else ():
            found = await exchange.get_order_state_by_label(currency, entry.label)
            if not found:
                not_sent.append(entry.label)
            for order in found:
                tracker.adopt(order)
                orders.append(RecoveredOrder.of(order, in_outbox=True))
        seen = {o.order_id for o in orders}
        for order in await exchange.get_open_orders(currency):
            if order.label.startswith(f"{crashed_run_id}-") and order.order_id not in seen:
                tracker.adopt(order)
                orders.append(RecoveredOrder.of(order, in_outbox=False))
    except BastionError as exc:
        problems.append(f"could not ask the exchange about the crashed run's orders: {exc}")
    recovery = Recovery(
        crashed_run_id,
        checkpoint.step if checkpoint else None,
        restored,
        tuple(orders),
        tuple(not_sent),
        tuple(problems),
    )
    journal.emit(EventKind.RUN_RECOVERED, recovery.to_dict())
    return recovery


def _checkpoint_of(
    run_id: str, checkpoints: CheckpointFile, problems: list[str]
) -> Checkpoint | None:
    try:
        checkpoint = checkpoints.load()
    except UnreadableCheckpoint as exc:
        problems.append(f"checkpoint unreadable, ignored: {exc}")
        return None
    if checkpoint is None or checkpoint.run_id != run_id:
        return None  # it crashed before its first step, or the file is an earlier run's
    return checkpoint


def _restore(agent: Agent, checkpoint: Checkpoint | None, problems: list[str]) -> bool:
    if checkpoint is None or checkpoint.agent_state is None:
        return False
    if not isinstance(agent, StatefulAgent):
        problems.append("the checkpoint holds agent state, but this agent keeps none")
        return False
    if checkpoint.agent != f"{agent.name} {agent.version}":
        problems.append(
            f"agent state of {checkpoint.agent} not restored into {agent.name} {agent.version}"
        )
        return False
    try:
        agent.restore(checkpoint.agent_state)
    except Exception as exc:  # an agent bug must not stop the recovery; it is reported
        problems.append(f"the agent could not restore its state: {exc!r}")
        return False
    return True
