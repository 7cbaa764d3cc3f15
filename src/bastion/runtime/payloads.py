"""The plain-JSON shapes the loop's events carry, and the way back to the market types.

The trace, the store and every sink read the same payloads, so they are built in one place.
Fields are only ever added (readers of older traces keep working). The status sink rebuilds
:class:`~bastion.market.Order` and :class:`~bastion.market.Position` from them with
:func:`order_from_payload` and :func:`position_from_payload`, which is why an order or a
position payload carries every field of its type.

Keys the metrics sink (:mod:`bastion.telemetry.sink`) reads by name: ``status`` and
``elapsed_s`` of ``step_completed``; ``currency`` and ``equity`` of ``observation`` and of a
halted step's ``book``; ``stage`` (``send`` or ``reconcile``), ``reason``, ``skipped`` and
``confirmed_late`` of the order events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bastion.agent import Observation, OrderIntent
from bastion.market import AccountSummary, Order, Position

__all__ = [
    "book_payload",
    "intent_payload",
    "observation_payload",
    "order_from_payload",
    "order_payload",
    "position_from_payload",
    "position_payload",
]


def intent_payload(intent: OrderIntent) -> dict[str, Any]:
    return {
        "instrument": intent.instrument_name,
        "direction": intent.direction,
        "amount": intent.amount,
        "order_type": intent.order_type,
        "price": intent.price,
        "reduce_only": intent.reduce_only,
        "reason": intent.reason,
    }


def order_payload(order: Order) -> dict[str, Any]:
    return {
        "order_id": order.order_id,
        "instrument": order.instrument_name,
        "direction": order.direction,
        "amount": order.amount,
        "filled_amount": order.filled_amount,
        "price": order.price,
        "average_price": order.average_price,
        "order_state": order.order_state,
        "label": order.label,
        "order_type": order.order_type,
        "creation_ms": order.creation_ms,
        "last_update_ms": order.last_update_ms,
        "reduce_only": order.reduce_only,
        "time_in_force": order.time_in_force,
        "cancel_reason": order.cancel_reason,
    }


def order_from_payload(data: Mapping[str, Any]) -> Order:
    return Order(
        order_id=data["order_id"],
        instrument_name=data["instrument"],
        direction=data["direction"],
        order_type=data["order_type"],
        order_state=data["order_state"],
        amount=data["amount"],
        filled_amount=data["filled_amount"],
        price=data["price"],
        average_price=data["average_price"],
        label=data["label"],
        creation_ms=data["creation_ms"],
        last_update_ms=data["last_update_ms"],
        reduce_only=data["reduce_only"],
        time_in_force=data["time_in_force"],
        cancel_reason=data["cancel_reason"],
    )


def position_payload(position: Position) -> dict[str, Any]:
    return {
        "instrument": position.instrument_name,
        "size": position.size,
        "mark_price": position.mark_price,
        "kind": position.kind,
        "average_price": position.average_price,
        "delta": position.delta,
        "floating_profit_loss": position.floating_profit_loss,
    }


def position_from_payload(data: Mapping[str, Any]) -> Position:
    return Position(
        instrument_name=data["instrument"],
        kind=data["kind"],
        size=data["size"],
        average_price=data["average_price"],
        mark_price=data["mark_price"],
        delta=data["delta"],
        floating_profit_loss=data["floating_profit_loss"],
    )


def book_payload(
    account: AccountSummary, positions: Sequence[Position], open_orders: Sequence[Order]
) -> dict[str, Any]:
    """Balances, positions and resting orders: what the console shows of the account.

    ``open_orders`` stays a list of ids (its shape since the first traces);
    ``open_order_details`` carries the orders themselves.
    """
    return {
        "currency": account.currency,
        "equity": account.equity,
        "balance": account.balance,
        "available_funds": account.available_funds,
        "positions": [position_payload(p) for p in positions],
        "open_orders": [o.order_id for o in open_orders],
        "open_order_details": [order_payload(o) for o in open_orders],
    }


def observation_payload(step: int, obs: Observation) -> dict[str, Any]:
    """The ``observation`` event: the book, the index and the tickers the agent saw."""
    return {
        "step": step,
        "time_ms": obs.time_ms,
        "index_price": obs.index_price,
        **book_payload(obs.account, obs.positions, obs.open_orders),
        "currency": obs.currency,
        "tickers": {
            name: {
                "mark": t.mark_price,
                "bid": t.best_bid_price,
                "ask": t.best_ask_price,
                "delta": t.delta,
            }
            for name, t in obs.tickers.items()
        },
    }
