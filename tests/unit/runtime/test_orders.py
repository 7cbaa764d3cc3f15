"""The OrderTracker on the paper exchange: each order's fate recorded, the book fed by fills."""

from __future__ import annotations

from bastion.events import Event, EventKind, Journal
from bastion.exchange.deribit import DeribitClient
from bastion.guard.drift import PositionBook
from bastion.market import Order, OrderRequest
from bastion.runtime.orders import OrderTracker

PERP = "BTC-PERPETUAL"


def _tracker(client: DeribitClient) -> tuple[OrderTracker, list[Event]]:
    events: list[Event] = []
    journal = Journal(run_id="r1")
    journal.subscribe(events.append)
    book = PositionBook(dust_coin=1e-4, observations=1)
    return OrderTracker(exchange=client, journal=journal, book=book), events


async def _resting_buy(client: DeribitClient, label: str = "r1-1-0") -> Order:
    mark = (await client.get_ticker(PERP)).mark_price
    return await client.place_order(
        OrderRequest(PERP, "buy", 10.0, price=float(round(mark * 0.9)), label=label)
    )


async def test_a_market_fill_is_sent_filled_and_in_the_expected_book(
    client: DeribitClient,
) -> None:
    """accepted(): order_sent and order_filled at the send; the book moves by the fill."""
    tracker, events = _tracker(client)
    tracker.seed(())
    order = await client.place_order(OrderRequest(PERP, "buy", 20.0, order_type="market"))
    tracker.accepted(1, order)
    assert [(e.kind, e.payload["stage"]) for e in events] == [
        (EventKind.ORDER_SENT, "send"),
        (EventKind.ORDER_FILLED, "send"),
    ]
    assert tracker.book.expected == {PERP: 20.0}
    await tracker.reconcile(2, await client.get_open_orders("BTC"))
    assert len(events) == 2  # its fate is known: nothing more to say


async def test_an_order_cancelled_outside_is_found_and_forgotten(client: DeribitClient) -> None:
    """A tracked order that left the book unfilled: order_skipped, reason cancelled."""
    tracker, events = _tracker(client)
    tracker.accepted(1, await _resting_buy(client))
    await client.cancel_all()
    await tracker.reconcile(2, await client.get_open_orders("BTC"))
    fate = events[-1]
    assert (fate.kind, fate.payload["stage"], fate.payload["reason"]) == (
        EventKind.ORDER_SKIPPED,
        "reconcile",
        "cancelled",
    )
    assert tracker.tracked == set()


async def test_a_send_with_no_answer_is_confirmed_by_its_label(client: DeribitClient) -> None:
    """unanswered(label): when the label shows on the book, the order is sent after all."""
    tracker, events = _tracker(client)
    tracker.unanswered("r1-3-0")
    order = await _resting_buy(client, label="r1-3-0")
    await tracker.reconcile(3, await client.get_open_orders("BTC"))
    [late] = events
    assert (late.kind, late.payload["confirmed_late"], late.payload["order_id"]) == (
        EventKind.ORDER_SENT,
        True,
        order.order_id,
    )
    assert (tracker.unconfirmed, tracker.tracked) == (set(), {order.order_id})


def test_seed_happens_once() -> None:
    """The first positions seed the book; later ones do not overwrite what fills built."""
    book = PositionBook(dust_coin=1e-4)
    tracker = OrderTracker(exchange=None, journal=Journal(), book=book)  # type: ignore[arg-type]
    tracker.seed(())
    book.apply_fill(PERP, "sell", 10)
    tracker.seed(())
    assert book.expected == {PERP: -10}


async def test_a_market_fill_whose_answer_was_lost_is_found_by_its_label(
    client: DeribitClient,
) -> None:
    """An unanswered market order never rests: the label lookup finds its fill, once."""
    tracker, events = _tracker(client)
    tracker.seed(())
    tracker.unanswered("r1-4-0")
    order = await client.place_order(
        OrderRequest(PERP, "buy", 20.0, order_type="market", label="r1-4-0")
    )
    await tracker.reconcile(5, await client.get_open_orders("BTC"))
    assert [(e.kind, e.payload["stage"], e.payload["order_id"]) for e in events] == [
        (EventKind.ORDER_SENT, "reconcile", order.order_id),
        (EventKind.ORDER_FILLED, "reconcile", order.order_id),
    ]
    assert events[0].payload["confirmed_late"] is True
    assert tracker.book.expected == {PERP: 20.0}
    assert (tracker.unconfirmed, tracker.tracked) == (set(), set())
    await tracker.reconcile(6, await client.get_open_orders("BTC"))
    assert len(events) == 2, "its fate is recorded once"


async def test_an_unanswered_label_the_exchange_never_saw_is_recorded_as_not_sent(
    client: DeribitClient,
) -> None:
    tracker, events = _tracker(client)
    tracker.seed(())
    tracker.unanswered("r1-7-0")
    await tracker.reconcile(8, await client.get_open_orders("BTC"))
    [skipped] = events
    assert (skipped.kind, skipped.payload["reason"], skipped.payload["label"]) == (
        EventKind.ORDER_SKIPPED,
        "never_reached_exchange",
        "r1-7-0",
    )
    assert tracker.unconfirmed == set()
    assert tracker.book.expected == {}
