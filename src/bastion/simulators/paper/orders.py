"""Orders and fills as the paper exchange records them, and their Deribit JSON shapes.

An :class:`Order` is mutable (it fills and gets cancelled); a :class:`Trade` is a fact and
frozen. ``to_deribit`` renders the fields of the OAS ``order`` and ``user_trade`` objects plus
the older fields ccxt still reads (``commission``, ``max_show``). An order's
``average_price`` is the amount-weighted mean of its fill prices, and ``profit_loss`` the
realised PnL its fills produced, in coin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from bastion.simulators.paper.instruments import Instrument

__all__ = ["Direction", "Order", "Trade"]

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
