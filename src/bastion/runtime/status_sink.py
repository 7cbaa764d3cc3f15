"""The status sink: the run's events folded into the :class:`~bastion.status.RuntimeStatus`.

The loop does not keep the console's picture itself; it emits events, and this sink (subscribed
to the same journal) replaces its frozen snapshot after each one, so a reader in another task
always sees one consistent picture without locks. :func:`fold` is the pure step.

What each event changes:

* ``observation``, and the ``book`` of a halted step's ``step_completed``: equity, balance,
  index, positions and resting orders, as the exchange reported them;
* ``order_sent`` / ``order_filled`` / ``order_skipped`` / ``order_rejected`` of an order: the
  order rests in ``open_orders`` while its state is open and leaves them otherwise, so the
  status shows the book *after* the step's sends; ``orders_sent`` (not counting a late
  confirmation, already counted as failed) and ``orders_filled`` count;
* ``step_completed``: the last step, when, its outcome and detail, and the halt flag as the
  step ended (``halt``: halted with it, or running without);
* ``halt_tripped`` / ``halt_enforced``: halted, with the halt; ``trading_resumed``: running;
  ``run_finished``: stopped. ``halt_resumed`` changes nothing: the loop says
  ``trading_resumed`` at its next step;
* the phase, from the last of the step's landmarks: ``run_started`` starting (and the run's
  ``max_steps``), ``observation`` deciding, ``decision`` reviewing, ``risk_verdict`` sending,
  ``step_completed`` waiting, ``run_finished`` finished.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from bastion.events import Event, EventKind
from bastion.runtime.payloads import order_from_payload, position_from_payload
from bastion.status import HaltState, RuntimeStatus

__all__ = ["StatusSink", "fold"]

Payload = Mapping[str, Any]
_RESTING = frozenset({"open", "untriggered"})


class StatusSink:
    """Keeps the latest :class:`RuntimeStatus`; subscribe it to the run's journal."""

    def __init__(self, initial: RuntimeStatus) -> None:
        self._status = initial

    @property
    def status(self) -> RuntimeStatus:
        return self._status

    def __call__(self, event: Event) -> None:
        self._status = fold(self._status, event)


def fold(status: RuntimeStatus, event: Event) -> RuntimeStatus:
    """The status after ``event``; kinds the status does not show leave it as it is."""
    change = _FOLDS.get(event.kind)
    folded = status if change is None else change(status, event.payload)
    phase = _PHASES.get(event.kind)
    if phase is None or phase == folded.phase:
        return folded
    return replace(folded, phase=phase)


def _started(status: RuntimeStatus, p: Payload) -> RuntimeStatus:
    bound = p.get("max_steps")
    return replace(status, max_steps=bound if isinstance(bound, int) and bound > 0 else None)


def _observed(status: RuntimeStatus, p: Payload) -> RuntimeStatus:
    status = _with_book(status, p)
    return replace(status, state="running") if status.state == "starting" else status


def _step_completed(status: RuntimeStatus, p: Payload) -> RuntimeStatus:
    status = replace(
        status,
        last_step=p["step"],
        last_step_at=p.get("at", status.last_step_at),
        last_outcome=p["status"],
        last_detail=p.get("detail", ""),
    )
    if "book" in p:
        status = _with_book(status, p["book"])
    if "halt" not in p:
        return status
    halt = p["halt"]
    if halt is None:
        return replace(status, state="running", halt=None)
    return replace(status, state="halted", halt=_halt_state(halt))


def _halted(status: RuntimeStatus, p: Payload) -> RuntimeStatus:
    return replace(status, state="halted", halt=_halt_state(p))


def _resumed(status: RuntimeStatus, p: Payload) -> RuntimeStatus:
    return replace(status, state="running", halt=None)


def _finished(status: RuntimeStatus, p: Payload) -> RuntimeStatus:
    return replace(status, state="stopped")


def _sent(status: RuntimeStatus, p: Payload) -> RuntimeStatus:
    status = _with_order(status, p)
    if p.get("confirmed_late"):
        return status
    return replace(status, orders_sent=status.orders_sent + 1)


def _filled(status: RuntimeStatus, p: Payload) -> RuntimeStatus:
    status = _with_order(status, p)
    return replace(status, orders_filled=status.orders_filled + 1)


def _with_order(status: RuntimeStatus, p: Payload) -> RuntimeStatus:
    """Put an order on, or take it off, the resting orders shown (events of intents pass)."""
    if "order_id" not in p or "order_state" not in p:
        return status
    others = tuple(o for o in status.open_orders if o.order_id != p["order_id"])
    resting = (order_from_payload(p),) if p["order_state"] in _RESTING else ()
    return replace(status, open_orders=(*others, *resting))


def _with_book(status: RuntimeStatus, p: Payload) -> RuntimeStatus:
    return replace(
        status,
        equity=p["equity"],
        balance=p["balance"],
        index_price=p.get("index_price", status.index_price),
        positions=tuple(position_from_payload(x) for x in p["positions"]),
        open_orders=tuple(order_from_payload(x) for x in p["open_order_details"]),
    )


def _halt_state(p: Payload) -> HaltState:
    return HaltState(
        reason=str(p["reason"]),
        who=str(p["who"]),
        when=str(p["when"]),
        enforced=bool(p.get("enforced", False)),
    )


_PHASES: dict[EventKind, str] = {
    EventKind.RUN_STARTED: "starting",
    EventKind.OBSERVATION: "deciding",
    EventKind.DECISION: "reviewing",
    EventKind.RISK_VERDICT: "sending",
    EventKind.STEP_COMPLETED: "waiting",
    EventKind.RUN_FINISHED: "finished",
}

_FOLDS: dict[EventKind, Callable[[RuntimeStatus, Payload], RuntimeStatus]] = {
    EventKind.RUN_STARTED: _started,
    EventKind.OBSERVATION: _observed,
    EventKind.STEP_COMPLETED: _step_completed,
    EventKind.HALT_TRIPPED: _halted,
    EventKind.HALT_ENFORCED: _halted,
    EventKind.TRADING_RESUMED: _resumed,
    EventKind.RUN_FINISHED: _finished,
    EventKind.ORDER_SENT: _sent,
    EventKind.ORDER_FILLED: _filled,
    EventKind.ORDER_SKIPPED: _with_order,
    EventKind.ORDER_REJECTED: _with_order,
}
