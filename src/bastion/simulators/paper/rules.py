"""The rules an incoming order must pass before it reaches the book, as pure checks.

Each broken rule raises the code Deribit uses for it, so a client's error handling is exercised
exactly as on the real exchange: type and time-in-force outside their enumerations (-32602),
label over 64 characters (11029), amount not positive or off the step (10021), below the minimum
(10002), price not positive (11029), off the tick (10043) or outside the instrument's band
(10005 / 10007, the limit in the message as Deribit writes it).
"""

from __future__ import annotations

from dataclasses import dataclass

from bastion.simulators.paper.errors import RpcError, invalid_argument, invalid_param
from bastion.simulators.paper.instruments import Instrument
from bastion.simulators.paper.market import Quote
from bastion.simulators.paper.orders import Direction

__all__ = ["MAX_LABEL", "ORDER_TYPES", "TIME_IN_FORCE", "OrderRequest", "check_order"]

ORDER_TYPES = ("limit", "market")
TRIGGER_TYPES = (
    "stop_limit",
    "stop_market",
    "take_limit",
    "take_market",
    "market_limit",
    "trailing_stop",
)
TIME_IN_FORCE = ("good_til_cancelled", "good_til_day", "fill_or_kill", "immediate_or_cancel")
MAX_LABEL = 64


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What ``private/buy`` and ``private/sell`` ask for, already typed."""

    instrument_name: str
    direction: Direction
    amount: float
    order_type: str = "limit"
    price: float | None = None
    time_in_force: str = "good_til_cancelled"
    label: str = ""
    post_only: bool = False
    reject_post_only: bool = False
    reduce_only: bool = False


def check_order(request: OrderRequest, instrument: Instrument, quote: Quote) -> None:
    """Raise the Deribit error for the first rule ``request`` breaks."""
    if request.order_type in TRIGGER_TYPES:
        raise invalid_argument(
            "type", f"{request.order_type} orders are not supported by the paper exchange"
        )
    if request.order_type not in ORDER_TYPES:
        raise invalid_param("type", "must be one of: " + ", ".join(ORDER_TYPES + TRIGGER_TYPES))
    if request.time_in_force not in TIME_IN_FORCE:
        raise invalid_param("time_in_force", "must be one of: " + ", ".join(TIME_IN_FORCE))
    if len(request.label) > MAX_LABEL:
        raise invalid_argument("label", f"must be at most {MAX_LABEL} characters")
    check_amount(request.amount, instrument)
    if request.order_type == "limit":
        if request.price is None:
            raise invalid_param("price", "missing required parameter")
        check_price(request.price, instrument, quote)


def check_amount(amount: float, instrument: Instrument) -> None:
    """Amount rules: positive (10021), at least the minimum (10002), on the step (10021)."""
    if amount <= 0:
        raise RpcError(10021, data={"reason": "must be a positive number", "param": "amount"})
    if amount < instrument.min_trade_amount - 1e-12:
        reason = f"minimum is {instrument.min_trade_amount}"
        raise RpcError(10002, data={"reason": reason, "param": "amount"})
    if not instrument.on_amount_step(amount):
        reason = f"must be a multiple of {instrument.amount_step}"
        raise RpcError(10021, data={"reason": reason, "param": "amount"})


def check_price(price: float, instrument: Instrument, quote: Quote) -> None:
    """Price rules: positive (11029), on the tick (10043), inside the band (10005 / 10007)."""
    if price <= 0:
        raise invalid_argument("price", "must be a positive number")
    if not instrument.on_tick(price):
        reason = f"must be a multiple of the tick size {instrument.tick_size}"
        raise RpcError(10043, data={"reason": reason, "param": "price"})
    if price < quote.min_price:
        raise RpcError(
            10005,
            f"price_too_low {quote.min_price}",
            {"reason": "below the band", "param": "price"},
        )
    if price > quote.max_price:
        raise RpcError(
            10007,
            f"price_too_high {quote.max_price}",
            {"reason": "above the band", "param": "price"},
        )
