"""The plain-JSON shapes the loop's events carry, and the way back to the market types.

The trace, the store and every sink read the same payloads, so they are built in one place.
Fields are only ever added (readers of older traces keep working). The status sink rebuilds
:class:`~bastion.market.Order` and :class:`~bastion.market.Position` from them with
:func:`order_from_payload` and :func:`position_from_payload`, which is why an order or a
position payload carries every field of its type.

The ``observation`` payload is also what a replay feeds an agent again
(:func:`observation_from_payload`): besides what the console shows it carries every account,
ticker and instrument field an agent or the risk review reads. Instruments are static and the
venue lists about a thousand, so a run's :class:`ObservationPayloads` records an instrument
only the first time an observation ticks, holds or rests an order on it (and again if the
venue changes it): a reader of the trace keeps the ones read so far, as a replay does.

Keys the metrics sink (:mod:`bastion.telemetry.sink`) reads by name: ``status``,
``elapsed_s``, ``halt`` (its ``state``) and ``drift_coin`` of ``step_completed``; ``currency``,
``equity`` and ``time_ms`` of ``observation`` (``currency`` and ``equity`` of a halted step's
``book``); ``stage`` (``send`` or ``reconcile``), ``reason``, ``skipped`` and
``confirmed_late`` of the order events.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from operator import itemgetter
from typing import Any

from bastion.agent import Observation, OrderIntent
from bastion.market import AccountSummary, Instrument, Order, Position, Ticker

__all__ = [
    "ObservationPayloads",
    "book_payload",
    "instrument_from_payload",
    "instrument_payload",
    "instruments_from_payload",
    "intent_payload",
    "observation_from_payload",
    "observation_payload",
    "order_from_payload",
    "order_payload",
    "position_from_payload",
    "position_payload",
    "ticker_from_payload",
    "ticker_payload",
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


def ticker_payload(ticker: Ticker) -> dict[str, Any]:
    """A ticker; ``mark``, ``bid``, ``ask`` and ``delta`` keep their first traces' short names."""
    return {
        "mark": ticker.mark_price,
        "bid": ticker.best_bid_price,
        "ask": ticker.best_ask_price,
        "delta": ticker.delta,
        "timestamp_ms": ticker.timestamp_ms,
        "index_price": ticker.index_price,
        "bid_amount": ticker.best_bid_amount,
        "ask_amount": ticker.best_ask_amount,
        "last_price": ticker.last_price,
        "underlying_price": ticker.underlying_price,
        "mark_iv": ticker.mark_iv,
        "gamma": ticker.gamma,
        "vega": ticker.vega,
        "theta": ticker.theta,
    }


_TICKER_FIELDS = itemgetter(
    "timestamp_ms",
    "mark",
    "index_price",
    "bid",
    "ask",
    "bid_amount",
    "ask_amount",
    "last_price",
    "underlying_price",
    "mark_iv",
    "delta",
    "gamma",
    "vega",
    "theta",
)
"""The payload keys of :class:`Ticker`'s fields after its name, in the order it declares them."""


def _ticker_builder() -> Callable[..., Ticker]:
    """``Ticker(*fields)``, twice as fast: the slots set directly, in straight-line code.

    A frozen dataclass's ``__init__`` goes through ``object.__setattr__`` once per field, and a
    replay builds some thirty tickers a step, thousands of steps a second. Setting the slots
    through their descriptors gives an equal object; should ``Ticker`` change shape (another
    field, a ``__post_init__`` this would skip) its own constructor is used instead.
    """
    setters = [getattr(Ticker, f.name).__set__ for f in fields(Ticker)]
    if len(setters) != 15 or hasattr(Ticker, "__post_init__"):
        return Ticker
    s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14 = setters
    new = object.__new__

    def build(  # noqa: PLR0917  one parameter per field, as Ticker's own __init__
        a0: Any, a1: Any, a2: Any, a3: Any, a4: Any, a5: Any, a6: Any, a7: Any,
        a8: Any, a9: Any, a10: Any, a11: Any, a12: Any, a13: Any, a14: Any,
    ) -> Ticker:  # fmt: skip
        ticker: Ticker = new(Ticker)
        s0(ticker, a0)
        s1(ticker, a1)
        s2(ticker, a2)
        s3(ticker, a3)
        s4(ticker, a4)
        s5(ticker, a5)
        s6(ticker, a6)
        s7(ticker, a7)
        s8(ticker, a8)
        s9(ticker, a9)
        s10(ticker, a10)
        s11(ticker, a11)
        s12(ticker, a12)
        s13(ticker, a13)
        s14(ticker, a14)
        return ticker

    return build


_new_ticker = _ticker_builder()


def ticker_from_payload(name: str, data: Mapping[str, Any], index_price: float) -> Ticker:
    """A ticker back; fields older traces lack take the type's defaults."""
    try:  # one C call for the fields, and the slots set directly (see _ticker_builder)
        return _new_ticker(name, *_TICKER_FIELDS(data))
    except KeyError:
        pass
    return Ticker(
        instrument_name=name,
        timestamp_ms=data.get("timestamp_ms", 0),
        mark_price=data["mark"],
        index_price=data.get("index_price", index_price),
        best_bid_price=data["bid"],
        best_ask_price=data["ask"],
        best_bid_amount=data.get("bid_amount", 0.0),
        best_ask_amount=data.get("ask_amount", 0.0),
        last_price=data.get("last_price"),
        underlying_price=data.get("underlying_price"),
        mark_iv=data.get("mark_iv"),
        delta=data["delta"],
        gamma=data.get("gamma"),
        vega=data.get("vega"),
        theta=data.get("theta"),
    )


def instrument_payload(instrument: Instrument) -> dict[str, Any]:
    return {
        "kind": instrument.kind,
        "currency": instrument.currency,
        "expiration_ms": instrument.expiration_ms,
        "tick_size": instrument.tick_size,
        "min_trade_amount": instrument.min_trade_amount,
        "contract_size": instrument.contract_size,
        "strike": instrument.strike,
        "option_type": instrument.option_type,
        "settlement_period": instrument.settlement_period,
        "amount_unit": instrument.amount_unit,
    }


def instrument_from_payload(name: str, data: Mapping[str, Any]) -> Instrument:
    return Instrument(
        name=name,
        kind=data["kind"],
        currency=data["currency"],
        expiration_ms=data["expiration_ms"],
        tick_size=data["tick_size"],
        min_trade_amount=data["min_trade_amount"],
        contract_size=data["contract_size"],
        strike=data["strike"],
        option_type=data["option_type"],
        settlement_period=data["settlement_period"],
        amount_unit=data["amount_unit"],
    )


def observation_payload(step: int, obs: Observation) -> dict[str, Any]:
    """The ``observation`` event with every instrument it references (see the module docstring)."""
    return ObservationPayloads()(step, obs)


class ObservationPayloads:
    """Builds one run's ``observation`` payloads, each instrument recorded once unless it changes.

    The loop keeps one per run, so the first observation of a trace file carries every
    instrument it references and later ones only the instruments new to the file.
    """

    def __init__(self) -> None:
        self._recorded: dict[str, Instrument] = {}

    def __call__(self, step: int, obs: Observation) -> dict[str, Any]:
        """The ``observation`` event: the book, the index, the tickers and new instruments."""
        account = obs.account
        recorded = self._recorded
        instruments: dict[str, Any] = {}
        for name in (
            *obs.tickers,
            *(p.instrument_name for p in obs.positions),
            *(o.instrument_name for o in obs.open_orders),
        ):
            instrument = obs.instruments.get(name)
            if instrument is None or recorded.get(name) == instrument:
                continue
            recorded[name] = instrument
            instruments[name] = instrument_payload(instrument)
        return {
            "step": step,
            "time_ms": obs.time_ms,
            "index_price": obs.index_price,
            **book_payload(account, obs.positions, obs.open_orders),
            "currency": obs.currency,
            "initial_margin": account.initial_margin,
            "maintenance_margin": account.maintenance_margin,
            "total_pl": account.total_pl,
            "delta_total": account.delta_total,
            "tickers": {name: ticker_payload(t) for name, t in obs.tickers.items()},
            "instruments": instruments,
        }


def observation_from_payload(
    data: Mapping[str, Any], instruments: Mapping[str, Instrument] | None = None
) -> Observation:
    """The observation an ``observation`` line records, as the agent saw it.

    ``instruments``, when given, are what the trace recorded up to and including this line
    (:func:`instruments_from_payload` of each line, merged in order; a replay keeps them);
    without it, only the line's own. Either way an observation's ``instruments`` are not the
    venue's whole list: an agent looks instruments up by name, and the names an observation
    ticks, holds or rests on are all there.

    Raises ``KeyError`` or ``TypeError`` for a line that lacks a field (a trace from before
    the account, ticker and instrument fields were recorded): the caller names the line.
    """
    index_price = data["index_price"]
    account = AccountSummary(
        currency=data["currency"],
        balance=data["balance"],
        equity=data["equity"],
        available_funds=data["available_funds"],
        initial_margin=data["initial_margin"],
        maintenance_margin=data["maintenance_margin"],
        total_pl=data["total_pl"],
        delta_total=data["delta_total"],
    )
    return Observation(
        time_ms=data["time_ms"],
        currency=data["currency"],
        index_price=index_price,
        account=account,
        positions=tuple(position_from_payload(p) for p in data["positions"]),
        open_orders=tuple(order_from_payload(o) for o in data["open_order_details"]),
        tickers={
            name: ticker_from_payload(name, t, index_price) for name, t in data["tickers"].items()
        },
        instruments=instruments if instruments is not None else instruments_from_payload(data),
    )


def instruments_from_payload(data: Mapping[str, Any]) -> dict[str, Instrument]:
    """The instruments an ``observation`` line records (those new to its trace)."""
    return {name: instrument_from_payload(name, i) for name, i in data["instruments"].items()}
