"""The market vocabulary: exchange-neutral, frozen models of instruments, quotes and orders.

The runtime, risk review and agents see only these frozen models, never raw JSON, so a second
venue is a second adapter and nothing else changes. Amounts are in the venue's units, and each
:class:`Instrument` says which (``amount_unit``, set by the adapter that lists it): on Deribit,
options and linear instruments in coin, inverse perpetuals and futures in USD; option prices in
coin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "AccountSummary",
    "AmountUnit",
    "Direction",
    "Fill",
    "Instrument",
    "InstrumentKind",
    "Order",
    "OrderRequest",
    "OrderState",
    "OrderType",
    "Position",
    "Ticker",
]

Direction = Literal["buy", "sell"]
OrderType = Literal["limit", "market"]
OrderState = Literal["open", "filled", "rejected", "cancelled", "untriggered", "triggered"]
InstrumentKind = Literal["option", "future"]
AmountUnit = Literal["coin", "usd"]
"""What an order ``amount`` and a position ``size`` count: coins of the base currency, or USD."""


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable instrument. ``expiration_ms`` is Deribit's sentinel for perpetuals.

    ``amount_unit`` is what its amounts count, as the venue adapter read it; the default is
    coin because counting USD as coin overstates exposure (a cap rejects), never understates it.
    """

    name: str
    kind: InstrumentKind
    currency: str
    expiration_ms: int
    tick_size: float
    min_trade_amount: float
    contract_size: float
    strike: float | None = None
    option_type: Literal["call", "put"] | None = None
    settlement_period: str = "month"
    amount_unit: AmountUnit = "coin"

    @property
    def is_perpetual(self) -> bool:
        return self.settlement_period == "perpetual"


@dataclass(frozen=True, slots=True)
class Ticker:
    """A top-of-book snapshot with the mark and, for options, the greeks."""

    instrument_name: str
    timestamp_ms: int
    mark_price: float
    index_price: float
    best_bid_price: float | None
    best_ask_price: float | None
    best_bid_amount: float = 0.0
    best_ask_amount: float = 0.0
    last_price: float | None = None
    underlying_price: float | None = None
    mark_iv: float | None = None
    delta: float | None = None
    gamma: float | None = None
    vega: float | None = None
    theta: float | None = None


@dataclass(frozen=True, slots=True)
class AccountSummary:
    """Balances for one currency, in that coin."""

    currency: str
    balance: float
    equity: float
    available_funds: float
    initial_margin: float
    maintenance_margin: float
    total_pl: float = 0.0
    delta_total: float = 0.0


@dataclass(frozen=True, slots=True)
class Position:
    """An open position. ``size`` is signed: negative when short."""

    instrument_name: str
    kind: InstrumentKind
    size: float
    average_price: float
    mark_price: float
    delta: float = 0.0
    floating_profit_loss: float = 0.0

    @property
    def direction(self) -> Literal["buy", "sell", "zero"]:
        if self.size > 0:
            return "buy"
        if self.size < 0:
            return "sell"
        return "zero"


@dataclass(frozen=True, slots=True)
class Order:
    """An order as the exchange last reported it. ``price`` is None for market orders."""

    order_id: str
    instrument_name: str
    direction: Direction
    order_type: str
    order_state: OrderState
    amount: float
    filled_amount: float
    price: float | None
    average_price: float
    label: str
    creation_ms: int
    last_update_ms: int
    reduce_only: bool = False
    time_in_force: str = "good_til_cancelled"
    cancel_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution of one of our orders."""

    trade_id: str
    order_id: str
    instrument_name: str
    direction: Direction
    amount: float
    price: float
    fee: float
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What to send. ``label`` carries the idempotency key so a retried send is recognisable."""

    instrument_name: str
    direction: Direction
    amount: float
    order_type: OrderType = "limit"
    price: float | None = None
    label: str = ""
    reduce_only: bool = False
    post_only: bool = False
    time_in_force: str = "good_til_cancelled"
