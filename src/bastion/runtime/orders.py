"""The OrderTracker: what became of the orders this run sent, and the book they should leave.

It remembers the ids of our orders still resting, the labels of sends that got no answer (we
cannot tell whether the exchange took them), and how much of each order we have already seen
filled. Every fill it sees moves the expected :class:`~bastion.guard.drift.PositionBook` that
the drift trigger compares with the positions the exchange reports; the book is seeded from the
first positions it is shown.

At every step :meth:`OrderTracker.reconcile` compares that memory with the resting orders
observed and records each fate as an event (``order_sent`` confirmed late, ``order_filled``,
``order_skipped`` / ``order_rejected`` for an order cancelled or rejected by the venue). Order
events carry ``stage``: ``send`` when the loop sent, ``reconcile`` when a later look found out.

A send with no answer whose label is not resting is asked about by label
(``get_order_state_by_label``): a market order that filled at once while its answer was lost
never rests, and without the lookup its fill would be missing from the trace and the expected
book (the drift check would then halt on a position the run did take). A label the exchange
does not know was never accepted: recorded as skipped, ``never_reached_exchange``.
"""

from __future__ import annotations

from collections.abc import Sequence

from bastion.agent import OrderIntent
from bastion.events import EventKind, Journal
from bastion.exchange.base import Exchange
from bastion.guard.drift import PositionBook
from bastion.market import Order, OrderRequest, Position
from bastion.runtime.payloads import order_payload

__all__ = ["OrderTracker", "order_request"]


class OrderTracker:
    """Tracks our orders from the send to their fate, and feeds the expected book."""

    def __init__(
        self, *, exchange: Exchange, journal: Journal, book: PositionBook, currency: str = "BTC"
    ) -> None:
        self.exchange = exchange
        self.currency = currency
        self.journal = journal
        self.book = book
        self.tracked: set[str] = set()
        self.unconfirmed: set[str] = set()
        self.filled: dict[str, float] = {}

    def accepted(self, step: int, order: Order) -> None:
        """The exchange took an order we sent: record it, and its fill or track it.

        An order filled in the answer itself has met its fate: it is recorded filled now and
        not tracked, so no later look records the same fill again.
        """
        self._apply_fill(order)
        self.journal.emit(
            EventKind.ORDER_SENT, {"step": step, "stage": "send", **order_payload(order)}
        )
        if order.order_state == "filled":
            self.filled.pop(order.order_id, None)
            self._record_fill(step, order, stage="send")
        else:
            self.tracked.add(order.order_id)

    def adopt(self, order: Order) -> None:
        """An order a crashed run sent, found on the exchange: what it filled so far is in the
        positions the next look reports; a resting one is tracked from here like our own."""
        self.filled[order.order_id] = order.filled_amount
        if order.order_state == "open":
            self.tracked.add(order.order_id)

    def unanswered(self, label: str) -> None:
        """A send whose outcome is unknown: look for its label on the book from now on."""
        self.unconfirmed.add(label)

    def seed(self, positions: tuple[Position, ...]) -> None:
        """Start the expected book from ``positions`` unless it is already seeded."""
        if not self.book.seeded:
            self.book.seed(positions)

    async def reconcile(self, step: int, open_orders: Sequence[Order]) -> None:
        """Record what became of our orders since the last look.

        An order whose send got no answer is recognised on the book by its label and recorded
        as sent after all. An order that left the book is looked up: a fill is recorded, as is
        a cancel from outside. An id is forgotten only once its fate is recorded, so a failed
        lookup is retried next step instead of losing the fill from the trace.
        """
        for order in open_orders:
            if order.order_id in self.tracked:
                self._apply_fill(order)  # a partial fill while resting
            if order.label in self.unconfirmed:
                self.unconfirmed.discard(order.label)
                self.tracked.add(order.order_id)
                self._confirmed_late(step, order)
        await self._look_up_unanswered(step)
        still_open = {o.order_id for o in open_orders}
        for order_id in sorted(self.tracked - still_open):
            order = await self.exchange.get_order_state(order_id)
            self.tracked.discard(order_id)
            self._apply_fill(order)
            self.filled.pop(order_id, None)
            if order.order_state == "filled":
                self._record_fill(step, order, stage="reconcile")
            else:
                self._record_unfilled(step, order)

    async def _look_up_unanswered(self, step: int) -> None:
        """Ask the exchange about each unanswered label that was not on the book."""
        for label in sorted(self.unconfirmed):
            found = await self.exchange.get_order_state_by_label(self.currency, label)
            self.unconfirmed.discard(label)
            if not found:
                self.journal.emit(
                    EventKind.ORDER_SKIPPED,
                    {
                        "step": step,
                        "stage": "reconcile",
                        "reason": "never_reached_exchange",
                        "label": label,
                    },
                )
            for order in found:
                self._confirmed_late(step, order)
                if order.order_state == "open":
                    self.tracked.add(order.order_id)  # rested after all: its fate comes later
                    continue
                self.filled.pop(order.order_id, None)
                if order.filled_amount > 0:
                    self._record_fill(step, order, stage="reconcile")
                if order.order_state != "filled":
                    self._record_unfilled(step, order)

    def _confirmed_late(self, step: int, order: Order) -> None:
        """A send that got no answer was taken after all: record it, and what it filled."""
        self._apply_fill(order)
        self.journal.emit(
            EventKind.ORDER_SENT,
            {"step": step, "stage": "reconcile", "confirmed_late": True, **order_payload(order)},
        )

    def _record_unfilled(self, step: int, order: Order) -> None:
        """An order that left the book without filling in full: rejected, cancelled, closed."""
        self.journal.emit(
            EventKind.ORDER_REJECTED
            if order.order_state == "rejected"
            else EventKind.ORDER_SKIPPED,
            {
                "step": step,
                "stage": "reconcile",
                "reason": order.order_state,
                **order_payload(order),
            },
        )

    def _apply_fill(self, order: Order) -> None:
        """Move the expected book by what this order filled since we last looked."""
        seen = self.filled.get(order.order_id, 0.0)
        delta = order.filled_amount - seen
        if delta > 0:
            self.book.apply_fill(order.instrument_name, order.direction, delta)
            self.filled[order.order_id] = order.filled_amount

    def _record_fill(self, step: int, order: Order, *, stage: str) -> None:
        self.journal.emit(
            EventKind.ORDER_FILLED, {"step": step, "stage": stage, **order_payload(order)}
        )


def order_request(intent: OrderIntent, label: str) -> OrderRequest:
    """What to send for ``intent``, under its idempotency ``label``."""
    return OrderRequest(
        instrument_name=intent.instrument_name,
        direction=intent.direction,
        amount=intent.amount,
        order_type=intent.order_type,
        price=intent.price,
        label=label,
        reduce_only=intent.reduce_only,
    )
