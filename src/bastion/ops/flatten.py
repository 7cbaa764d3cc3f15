"""Flattening from another terminal: what ``bastion flatten`` does once it reaches the exchange.

The loop flattens by itself while the trading state is REDUCING; this is for a person who wants
positions closed now, by this process, with a record of every step. It plans with the same pure
:func:`~bastion.guard.flatten.flatten_decision` the loop uses, has the plan reviewed under
REDUCING (the risk caps still hold: an order they reject is not sent), then sends each approved
order reduce-only with the idempotency label ``<run_id>-<k>`` (``run_id`` also names its trace).
Every step is emitted on the journal it is given: the ``decision`` (``source: flatten``), each
``risk_verdict``, and each ``order_sent`` or ``order_failed``; the trace keeps them all, the
store's event log the orders.

A running loop that flattens at the same time cannot make it worse: every order is reduce-only,
so the exchange caps it at what is still held and never flips a position.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from bastion.agent import Decision, Observation, OrderIntent
from bastion.errors import BastionError
from bastion.events import EventKind, Journal
from bastion.exchange.base import Exchange
from bastion.guard.flatten import FLATTEN_SOURCE, flatten_decision
from bastion.guard.risk import RiskLimits, Verdict, review
from bastion.market import Order
from bastion.runtime.observe import Observer
from bastion.runtime.orders import order_request
from bastion.runtime.payloads import intent_payload, order_payload

__all__ = ["FlattenPlan", "FlattenResult", "Flattener"]


@dataclass(frozen=True, slots=True)
class FlattenPlan:
    """What would be sent: one reviewed order per position to close."""

    observation: Observation
    decision: Decision
    verdicts: tuple[Verdict, ...]

    @property
    def approved(self) -> tuple[OrderIntent, ...]:
        return tuple(v.intent for v in self.verdicts if v.approved)


@dataclass(frozen=True, slots=True)
class FlattenResult:
    """What was sent, and what was not and why (the review's reason or the exchange's)."""

    plan: FlattenPlan
    sent: tuple[Order, ...]
    not_sent: tuple[tuple[OrderIntent, str], ...]

    @property
    def complete(self) -> bool:
        """Every position planned was closed by an accepted order."""
        return not self.not_sent


class Flattener:
    """Plans, reviews and sends the orders that close positions, recording each step."""

    def __init__(
        self,
        *,
        exchange: Exchange,
        observer: Observer,
        limits: RiskLimits,
        journal: Journal,
        run_id: str,
    ) -> None:
        """``run_id`` (``flatten-<stamp>-<pid>``) prefixes every order's label."""
        self._exchange = exchange
        self._observer = observer
        self._limits = limits
        self._journal = journal
        self.run_id = run_id

    async def plan(self, instruments: Collection[str] | None = None, *, why: str) -> FlattenPlan:
        """Observe, plan the closing orders (only ``instruments`` when given) and review them."""
        obs = await self._observer.observe()
        decision = flatten_decision(obs, instruments=instruments, why=why)
        verdicts = tuple(review(decision, obs, self._limits, reducing=True))
        self._journal.emit(
            EventKind.DECISION,
            {
                "step": None,
                "source": FLATTEN_SOURCE,
                "rationale": decision.rationale,
                "intents": [intent_payload(i) for i in decision.intents],
            },
        )
        for verdict in verdicts:
            self._journal.emit(
                EventKind.RISK_VERDICT, {"step": None, **verdict.to_dict(), "reducing": True}
            )
        return FlattenPlan(obs, decision, verdicts)

    @staticmethod
    def unsent(plan: FlattenPlan) -> FlattenResult:
        """``plan`` as a dry run's result: nothing sent, the rejected orders named."""
        rejected = tuple((v.intent, v.reason) for v in plan.verdicts if not v.approved)
        return FlattenResult(plan, (), rejected)

    async def execute(self, plan: FlattenPlan) -> FlattenResult:
        """Send every approved order of ``plan``; a failure is recorded and the rest still go."""
        sent: list[Order] = []
        not_sent = list(self.unsent(plan).not_sent)
        for k, intent in enumerate(plan.approved):
            label = f"{self.run_id}-{k}"[:64]  # Deribit labels hold 64 characters
            try:
                order = await self._exchange.place_order(order_request(intent, label))
            except BastionError as exc:
                self._journal.emit(EventKind.ORDER_FAILED, _failed(intent, label, exc))
                not_sent.append((intent, str(exc)))
                continue
            self._journal.emit(
                EventKind.ORDER_SENT, {"step": None, "stage": "flatten", **order_payload(order)}
            )
            sent.append(order)
        return FlattenResult(plan, tuple(sent), tuple(not_sent))


def _failed(intent: OrderIntent, label: str, exc: BastionError) -> dict[str, Any]:
    return {
        "step": None,
        "stage": "flatten",
        "label": label,
        **intent_payload(intent),
        "error": exc.to_dict(),
    }
