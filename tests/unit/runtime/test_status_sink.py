"""The status sink: the loop's events folded into the console's RuntimeStatus."""

from __future__ import annotations

from typing import Any

from bastion.events import Event, EventKind, Journal
from bastion.market import AccountSummary, Order, Position
from bastion.runtime.payloads import book_payload, order_from_payload, order_payload
from bastion.runtime.status_sink import StatusSink, fold
from bastion.status import HaltState, RuntimeStatus

START = RuntimeStatus(run_id="r1", agent="scripted 0", currency="BTC", dry_run=False)
ACCOUNT = AccountSummary("BTC", 10.0, 10.5, 9.0, 0.5, 0.2)
HALT = {"reason": "operator", "who": "ops", "when": "2027-01-15T08:00:00+00:00"}


def _order(order_id: str = "BTC-1", state: Any = "open", filled: float = 0.0) -> Order:
    return Order(
        order_id,
        "BTC-PERPETUAL",
        "buy",
        "limit",
        state,
        10.0,
        filled,
        85_000.0,
        0.0,
        "r1-1-0",
        1_000,
        1_000,
    )


def _fold(
    *events: tuple[EventKind, dict[str, Any]], status: RuntimeStatus = START
) -> RuntimeStatus:
    for kind, payload in events:
        status = fold(status, Event(kind, payload))
    return status


def test_order_payloads_round_trip() -> None:
    """Every field of an order survives the event payload, so the status shows it whole."""
    order = _order()
    assert order_from_payload(order_payload(order)) == order


def test_the_observation_sets_the_book_and_means_running() -> None:
    """Equity, balance, index, positions and resting orders come from the observation."""
    position = Position("BTC-PERPETUAL", "future", 20.0, 90_000.0, 91_000.0, 0.0002, 0.01)
    book = book_payload(ACCOUNT, (position,), (_order(),))
    status = _fold((EventKind.OBSERVATION, {"step": 1, "index_price": 90_000.0, **book}))
    assert (status.state, status.equity, status.balance, status.index_price) == (
        "running",
        10.5,
        10.0,
        90_000.0,
    )
    assert status.positions == (position,)
    assert status.open_orders == (_order(),)


def test_an_order_sent_to_rest_shows_until_it_fills() -> None:
    """Sent and resting: in open_orders, counted; filled later: out of them, counted."""
    sent = _fold((EventKind.ORDER_SENT, {"step": 1, "stage": "send", **order_payload(_order())}))
    assert [o.order_id for o in sent.open_orders] == ["BTC-1"]
    assert sent.orders_sent == 1
    filled_payload = {"step": 2, "stage": "reconcile", **order_payload(_order(state="filled"))}
    filled = _fold((EventKind.ORDER_FILLED, filled_payload), status=sent)
    assert (filled.open_orders, filled.orders_filled) == ((), 1)


def test_an_order_filled_at_once_never_rests_and_a_late_confirmation_is_not_recounted() -> None:
    """A market fill does not show as resting; a late-confirmed send does not count twice."""
    at_once = order_payload(_order(state="filled", filled=10.0))
    late = {
        "step": 2,
        "stage": "reconcile",
        "confirmed_late": True,
        **order_payload(_order("BTC-2")),
    }
    status = _fold((EventKind.ORDER_SENT, {"step": 1, **at_once}), (EventKind.ORDER_SENT, late))
    assert [o.order_id for o in status.open_orders] == ["BTC-2"]
    assert status.orders_sent == 1


def test_a_cancel_found_by_reconcile_takes_the_order_off() -> None:
    """order_skipped with the order cancelled: no longer resting; intent events pass by."""
    sent = _fold((EventKind.ORDER_SENT, order_payload(_order())))
    cancelled = {"reason": "cancelled", **order_payload(_order(state="cancelled"))}
    dry_run = {"reason": "dry_run", "label": "r1-2-0", "instrument": "BTC-PERPETUAL"}
    status = _fold((EventKind.ORDER_SKIPPED, dry_run), status=sent)
    assert len(status.open_orders) == 1
    status = _fold((EventKind.ORDER_SKIPPED, cancelled), status=status)
    assert status.open_orders == ()


def test_step_completed_records_the_step_and_the_halt_it_ended_under() -> None:
    """The last step, when, outcome, detail; halted with the flag's halt, running without."""
    halted = _fold(
        (
            EventKind.STEP_COMPLETED,
            {"step": 3, "status": "halted", "detail": "d", "at": "t", "halt": HALT},
        )
    )
    assert (halted.last_step, halted.last_step_at, halted.last_outcome, halted.last_detail) == (
        3,
        "t",
        "halted",
        "d",
    )
    assert (halted.state, halted.halt) == ("halted", HaltState(**HALT))
    ok = {"step": 4, "status": "ok", "detail": "", "at": "t2", "halt": None}
    running = _fold((EventKind.STEP_COMPLETED, ok), status=halted)
    assert (running.state, running.halt) == ("running", None)


def test_a_halted_steps_book_updates_the_holdings() -> None:
    """Reconcile-only steps look at the holdings; the index stays what it was."""
    before = _fold(
        (EventKind.OBSERVATION, {"index_price": 90_000.0, **book_payload(ACCOUNT, (), (_order(),))})
    )
    book = book_payload(AccountSummary("BTC", 9.0, 9.0, 9.0, 0.0, 0.0), (), ())
    payload = {"step": 2, "status": "halted", "detail": "", "halt": HALT, "book": book}
    status = _fold((EventKind.STEP_COMPLETED, payload), status=before)
    assert (status.equity, status.index_price, status.open_orders) == (9.0, 90_000.0, ())


def test_halt_events_resume_and_finish_move_the_state() -> None:
    """Tripped or enforced: halted; trading_resumed: running; run_finished: stopped."""
    tripped = _fold((EventKind.HALT_TRIPPED, {**HALT, "cancelled_orders": 0}))
    assert (tripped.state, tripped.halt) == ("halted", HaltState(**HALT))
    enforced = _fold((EventKind.HALT_ENFORCED, {**HALT, "cancelled_orders": 1}))
    assert enforced.state == "halted"
    person_resumed = _fold((EventKind.HALT_RESUMED, {"reason": "operator"}), status=tripped)
    assert person_resumed.state == "halted"  # until the loop's next step says so
    resumed = _fold((EventKind.TRADING_RESUMED, {"step": 5}), status=tripped)
    assert (resumed.state, resumed.halt) == ("running", None)
    assert _fold((EventKind.RUN_FINISHED, {"status": "completed"})).state == "stopped"


def test_the_sink_listens_on_a_journal() -> None:
    """Subscribed to a journal, the sink's status follows what is emitted."""
    journal = Journal(run_id="r1")
    sink = StatusSink(START)
    journal.subscribe(sink)
    journal.emit(EventKind.ORDER_SENT, order_payload(_order()))
    journal.emit(EventKind.DECISION, {"step": 1, "rationale": "", "intents": []})
    assert sink.status.orders_sent == 1


def test_the_phase_follows_the_steps_landmarks_and_the_run_keeps_its_bound() -> None:
    """starting (with max_steps), deciding, reviewing, sending, waiting, finished."""
    seen = []
    status = START
    for kind, payload in [
        (EventKind.RUN_STARTED, {"max_steps": 10}),
        (EventKind.OBSERVATION, {"step": 1, **book_payload(ACCOUNT, (), ())}),
        (EventKind.DECISION, {"step": 1, "intents": []}),
        (EventKind.RISK_VERDICT, {"step": 1, "status": "approved"}),
        (EventKind.ORDER_SENT, {"step": 1, **order_payload(_order())}),
        (EventKind.STEP_COMPLETED, {"step": 1, "status": "ok"}),
        (EventKind.RUN_FINISHED, {"status": "completed"}),
    ]:
        status = fold(status, Event(kind, payload))
        seen.append(status.phase)
    assert seen == [
        "starting", "deciding", "reviewing", "sending", "sending", "waiting", "finished"
    ]  # fmt: skip
    assert status.max_steps == 10
    assert status.to_dict()["phase"] == "finished"
    assert status.to_dict()["max_steps"] == 10
    unbounded = _fold((EventKind.RUN_STARTED, {"max_steps": None}))
    assert unbounded.max_steps is None
