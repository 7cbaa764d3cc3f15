"""Orders and fills as the paper exchange records them, and their Deribit JSON shapes.

An :class:`Order` is mutable (it fills and gets cancelled); a :class:`Trade` is a fact and
frozen; :class:`RestingOrders` holds one account's resting orders in one instrument with the
running sums the margin check reads. ``to_deribit`` renders the fields of the OAS ``order``
and ``user_trade`` objects plus the older fields ccxt still reads (``commission``,
``max_show``). An order's ``average_price`` is the amount-weighted mean of its fill prices,
and ``profit_loss`` the realised PnL its fills produced, in coin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from bastion.simulators.paper.instruments import Instrument

__all__ = ["Direction", "Order", "RestingOrders", "Trade"]

Direction = Literal["buy", "sell"]
_AMOUNT_DECIMALS = 8


@dataclass(slots=True)
class Order:
    """One order of one account; ``price`` is None for market orders."""

    order_id: str
    account_id: int
    instrument: Instrument
    direction: Direction
    order_type: Literal["limit", "market"]
    price: float | None
    amount: float
    time_in_force: str
    label: str
    creation_ms: int
    post_only: bool = False
    reduce_only: bool = False
    last_update_ms: int = 0
    filled_amount: float = 0.0
    filled_value: float = 0.0
    commission: float = 0.0
    profit_loss: float = 0.0
    state: Literal["open", "filled", "cancelled", "rejected"] = "open"
    cancel_reason: str | None = None

    @property
    def remaining(self) -> float:
        return round(self.amount - self.filled_amount, _AMOUNT_DECIMALS)

    @property
    def is_open(self) -> bool:
        return self.state == "open"

    @property
    def average_price(self) -> float:
        if self.filled_amount <= 0:
            return 0.0
        return round(self.filled_value / self.filled_amount, _AMOUNT_DECIMALS)

    def record_fill(
        self, *, amount: float, price: float, fee: float, pnl: float, now_ms: int
    ) -> None:
        """Account for one execution; the order is filled once nothing remains."""
        self.filled_amount = round(self.filled_amount + amount, _AMOUNT_DECIMALS)
        self.filled_value += amount * price
        self.commission = round(self.commission + fee, 10)
        self.profit_loss = round(self.profit_loss + pnl, 10)
        self.last_update_ms = now_ms
        if self.remaining <= 0:
            self.state = "filled"

    def close(self, *, reason: str, now_ms: int) -> None:
        """Cancel what is left (``reason`` becomes Deribit's ``cancel_reason``)."""
        self.state = "cancelled"
        self.cancel_reason = reason
        self.last_update_ms = now_ms

    def to_deribit(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "order_id": self.order_id,
            "order_state": self.state,
            "order_type": self.order_type,
            "instrument_name": self.instrument.name,
            "direction": self.direction,
            "price": "market_price" if self.price is None else self.price,
            "amount": self.amount,
            "contracts": round(self.amount / self.instrument.contract_size, _AMOUNT_DECIMALS),
            "filled_amount": self.filled_amount,
            "average_price": self.average_price,
            "commission": self.commission,
            "profit_loss": self.profit_loss,
            "time_in_force": self.time_in_force,
            "post_only": self.post_only,
            "reduce_only": self.reduce_only,
            "label": self.label,
            "max_show": self.amount,
            "creation_timestamp": self.creation_ms,
            "last_update_timestamp": self.last_update_ms,
            "api": True,
            "web": False,
            "is_liquidation": False,
            "risk_reducing": False,
            "replaced": False,
            "mmp": False,
        }
        if self.cancel_reason is not None:
            data["cancel_reason"] = self.cancel_reason
        return data


class RestingOrders:
    """One account's resting orders in one instrument, in placement order, with running sums.

    The sums are what :func:`~.margin.orders_margin` needs: the remaining amount of the buys, of
    the sells, and the premium of the buys (``remaining * price``; resting orders are limit
    orders, so they always have a price). They are kept as prefix sums in placement order, so
    each equals ``sum(...)`` over the orders exactly, bit for bit: appending an order (every new
    order is the newest) and removing the newest cost O(1); removing an older one, or a partial
    fill, re-adds the orders after it, O(orders of the instrument).
    """

    __slots__ = ("_buys", "_premium", "_sells", "orders")

    def __init__(self, orders: list[Order] | None = None) -> None:
        self.orders: dict[str, Order] = {}
        self._buys: list[float] = [0]
        self._sells: list[float] = [0]
        self._premium: list[float] = [0]
        for order in orders or ():
            self.add(order)

    def __len__(self) -> int:
        return len(self.orders)

    def add(self, order: Order) -> None:
        """Rest ``order`` as the newest."""
        self.orders[order.order_id] = order
        self._append(order)

    def _append(self, order: Order) -> None:
        buys, sells, premium = self.sums_with(order)
        self._buys.append(buys)
        self._sells.append(sells)
        self._premium.append(premium)

    def sums_with(self, order: Order, ask_price: float = 0.0) -> tuple[float, float, float]:
        """The sums as they would be with ``order`` appended (a market buy's premium at the ask)."""
        remaining = order.remaining
        buys, sells, premium = self._buys[-1], self._sells[-1], self._premium[-1]
        if order.direction == "buy":
            return buys + remaining, sells, premium + remaining * (order.price or ask_price)
        return buys, sells + remaining, premium

    @property
    def sums(self) -> tuple[float, float, float]:
        """Remaining buys, remaining sells and the buys' premium."""
        return self._buys[-1], self._sells[-1], self._premium[-1]

    def remove(self, order_id: str) -> None:
        """Take an order off (filled or cancelled)."""
        ids = list(self.orders)
        del self.orders[order_id]
        position = ids.index(order_id)
        if position == len(ids) - 1:
            self._buys.pop()
            self._sells.pop()
            self._premium.pop()
        else:
            self._resum(position)

    def changed(self, order_id: str) -> None:
        """An order's remaining amount changed (a partial fill): re-add from it on."""
        self._resum(list(self.orders).index(order_id))

    def _resum(self, position: int) -> None:
        del self._buys[position + 1 :], self._sells[position + 1 :], self._premium[position + 1 :]
        for order in list(self.orders.values())[position:]:
            self._append(order)


@dataclass(frozen=True, slots=True)
class Trade:
    """One execution of one of an account's orders."""

    trade_id: str
    trade_seq: int
    account_id: int
    instrument: Instrument
    order_id: str
    order_type: str
    order_state: str
    direction: Direction
    price: float
    amount: float
    fee: float
    liquidity: Literal["M", "T"]
    tick_direction: int
    index_price: float
    mark_price: float
    timestamp: int
    label: str
    post_only: bool
    reduce_only: bool
    profit_loss: float
    iv: float | None = None

    def to_deribit(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "trade_id": self.trade_id,
            "trade_seq": self.trade_seq,
            "instrument_name": self.instrument.name,
            "timestamp": self.timestamp,
            "order_id": self.order_id,
            "order_type": self.order_type,
            "matching_id": None,
            "direction": self.direction,
            "tick_direction": self.tick_direction,
            "price": self.price,
            "amount": self.amount,
            "contracts": round(self.amount / self.instrument.contract_size, _AMOUNT_DECIMALS),
            "fee": self.fee,
            "fee_currency": self.instrument.currency,
            "liquidity": self.liquidity,
            "index_price": self.index_price,
            "mark_price": self.mark_price,
            "state": self.order_state,
            "label": self.label,
            "post_only": self.post_only,
            "reduce_only": self.reduce_only,
            "profit_loss": self.profit_loss,
            "api": True,
        }
        if self.iv is not None:
            data["iv"] = self.iv
            data["underlying_price"] = self.index_price
        return data
