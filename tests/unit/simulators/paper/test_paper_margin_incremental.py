"""The incremental margin book-keeping equals a from-scratch rescan after any sequence of actions.

The oracle is the scan the engine ran before issue 10: every resting order of the ledger
filtered per instrument, each sum recomputed with ``sum()``. Per-instrument risks must match it
bit for bit; account totals must equal the correctly rounded (``math.fsum``) sum of its
per-instrument terms exactly, and its old left-to-right sums to within rounding; and every
margin check must accept or refuse exactly as the oracle's check would, with the same message.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paper_support import CALL, DAILY_CALL, PERP, START

from bastion.clock import SimClock
from bastion.simulators.paper import OrderRequest, PaperVenue, RpcError
from bastion.simulators.paper.accounts import Account, Ledger, Position
from bastion.simulators.paper.instruments import Instrument
from bastion.simulators.paper.margin import (
    InstrumentRisk,
    Valuation,
    position_im,
    summary_dict,
)
from bastion.simulators.paper.market import Quote
from bastion.simulators.paper.orders import Order
from bastion.simulators.paper.pricing import Greeks

PUT = "BTC-2JAN26-90000-P"
INSTRUMENTS = [PERP, CALL, PUT, DAILY_CALL]
CLIENTS = ["alice", "bob"]


# -- the oracle: the pre-issue-10 scan, verbatim but for the names -------------------------
def _old_orders_margin(
    instrument: Instrument, size: float, quote: Quote, orders: list[Order]
) -> float:
    buying = [o for o in orders if o.direction == "buy"]
    buys = sum(o.remaining for o in buying)
    sells = sum(o.remaining for o in orders if o.direction == "sell")
    held = position_im(instrument, size, quote)
    if_buys = position_im(instrument, size + buys, quote)
    if instrument.is_option:
        if_buys += sum(o.remaining * (o.price or quote.best_ask_price) for o in buying)
    if_sells = position_im(instrument, size - sells, quote)
    return max(if_buys, if_sells, held) - held


def _old_instrument_risk(position: Position, quote: Quote, orders: list[Order]) -> InstrumentRisk:
    instrument, size = position.instrument, position.size
    im = position_im(instrument, size, quote)
    oom = _old_orders_margin(instrument, size, quote, orders)
    floating = position.floating_pl(quote.mark_price)
    mm = im * 0.75
    if not instrument.is_option:
        return InstrumentRisk(im, mm, oom, 0.0, floating, size / quote.mark_price)
    g = quote.greeks or Greeks(delta=0.0, gamma=0.0, vega=0.0, theta=0.0, rho=0.0)
    return InstrumentRisk(
        im, mm, oom, size * quote.mark_price, floating,
        size * g.delta, size * g.gamma, size * g.vega, size * g.theta,
    )  # fmt: skip


def _old_scan(
    ledger: Ledger, orders: list[Order], quote_of: Callable[[Instrument], Quote]
) -> dict[str, tuple[Instrument, InstrumentRisk]]:
    instruments = {p.instrument.name: p.instrument for p in ledger.open_positions()}
    for order in orders:
        instruments.setdefault(order.instrument.name, order.instrument)
    risks = {}
    for name, instrument in instruments.items():
        position = ledger.positions.get(name) or Position(instrument)
        own = [o for o in orders if o.instrument.name == name]
        risks[name] = (instrument, _old_instrument_risk(position, quote_of(instrument), own))
    return risks


def _totals(
    ledger: Ledger, risks: dict[str, tuple[Instrument, InstrumentRisk]], add: Callable[..., float]
) -> Valuation:
    """The oracle's totals, each summed with ``add`` (``math.fsum`` or the old ``sum``)."""
    options = [r for i, r in risks.values() if i.is_option]
    futures = [r for i, r in risks.values() if not i.is_option]
    every = [r for _, r in risks.values()]
    return Valuation(
        balance=ledger.balance,
        initial_margin_positions=add(r.initial_margin for r in every),
        maintenance_margin=add(r.maintenance_margin for r in every),
        open_orders_margin=add(r.open_orders_margin for r in every),
        delta=add(r.delta for r in every),
        options_value=add(r.value for r in options),
        long_options_value=add(max(r.value, 0.0) for r in options),
        options_floating_pl=add(r.floating_pl for r in options),
        futures_floating_pl=add(r.floating_pl for r in futures),
        options_delta=add(r.delta for r in options),
        options_gamma=add(r.gamma for r in options),
        options_vega=add(r.vega for r in options),
        options_theta=add(r.theta for r in options),
        options_rpl=ledger.realized(options=True),
        futures_rpl=ledger.realized(options=False),
    )


def _oracle(venue: PaperVenue, account: Account) -> tuple[dict[str, Any], Valuation, Valuation]:
    ledger = account.ledger("BTC")
    resting = venue.engine.open_orders(account_id=account.account_id, currency="BTC")
    risks = _old_scan(ledger, resting, venue.market.quote)
    return risks, _totals(ledger, risks, math.fsum), _totals(ledger, risks, sum)


def _refusal(venue: PaperVenue, account: Account, order: Order) -> str | None:
    """The oracle's 10009 reason for ``order``, or None when the old check let it through."""
    ledger = account.ledger("BTC")
    resting = venue.engine.open_orders(account_id=account.account_id, currency="BTC")
    before = _totals(ledger, _old_scan(ledger, resting, venue.market.quote), math.fsum)
    after = _totals(ledger, _old_scan(ledger, [*resting, order], venue.market.quote), math.fsum)
    if after.available_funds < 0 and after.available_funds < before.available_funds - 1e-12:
        needed = round(before.available_funds - after.available_funds, 8)
        free = round(before.available_funds, 8)
        return f"order needs {needed} BTC of margin; {free} available"
    return None


# -- the actions ---------------------------------------------------------------------------
PLACE = st.tuples(
    st.just("place"),
    st.sampled_from(CLIENTS),
    st.sampled_from(INSTRUMENTS),
    st.sampled_from(["buy", "sell"]),
    st.integers(min_value=1, max_value=40),  # amount in steps
    st.sampled_from(["rest", "deep", "take", "market", "post_only"]),
    st.sampled_from([False, False, False, True]),  # reduce_only
)
CANCEL = st.tuples(st.just("cancel"), st.sampled_from(CLIENTS), st.integers(0, 50))
ADVANCE = st.tuples(st.just("advance"), st.sampled_from([1, 7, 60, 900, 3600, 9 * 3600]))
ACTIONS = st.lists(st.one_of(PLACE, PLACE, CANCEL, ADVANCE), min_size=1, max_size=40)


def _request(venue: PaperVenue, action: tuple[Any, ...]) -> OrderRequest:
    _, _, name, direction, steps, how, reduce_only = action
    instrument = venue.market.instrument(name)
    quote = venue.market.quote(instrument)
    unit = instrument.min_trade_amount if instrument.is_option else instrument.contract_size
    amount = round(steps * unit, 8)
    buy = direction == "buy"
    touch = quote.best_ask_price if buy else quote.best_bid_price
    tick = instrument.tick_size
    fields: dict[str, Any] = {"reduce_only": reduce_only}
    if how == "market":
        fields["order_type"] = "market"
    elif how == "take":
        fields["price"] = touch
    else:
        away = {"rest": 1, "deep": 20, "post_only": -1}[how]
        if how == "post_only":
            fields["post_only"] = True
        far = quote.best_bid_price - away * tick if buy else quote.best_ask_price + away * tick
        fields["price"] = instrument.floor_price(max(far, tick))
    return OrderRequest(name, direction, amount, **fields)


def _check_everything(venue: PaperVenue) -> None:
    for client in CLIENTS:
        account = venue.account(client)
        valuation, risks = venue.engine.valuation(account, "BTC")
        old_risks, exact, naive = _oracle(venue, account)
        assert risks == {name: risk for name, (_, risk) in old_risks.items()}
        assert valuation == exact
        for field in Valuation.__slots__:
            assert getattr(valuation, field) == pytest.approx(getattr(naive, field), abs=1e-12)
        expected = summary_dict(account, account.ledger("BTC"), exact, extended=False)
        assert venue.account_summary(client, "BTC") == expected


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions=ACTIONS, balance=st.sampled_from([0.05, 0.5, 10.0]))
def test_incremental_margin_equals_a_rescan(actions: list[tuple[Any, ...]], balance: float) -> None:
    """After every place, cancel, fill, settlement or clock move, figures equal the old scan's."""
    clock = SimClock(START)
    venue = PaperVenue(clock=clock, seed=1, initial_balances={"BTC": balance})
    engine = venue.engine
    real_check = engine._check_margin

    def compared_check(account: Account, order: Order) -> None:
        reason = _refusal(venue, account, order)
        if reason is None:
            real_check(account, order)
            return
        with pytest.raises(RpcError) as refused:
            real_check(account, order)
        assert (refused.value.code, refused.value.data) == (
            10009,
            {"reason": reason, "param": "amount"},
        )
        raise refused.value

    engine._check_margin = compared_check  # type: ignore[method-assign]
    for action in actions:
        if action[0] == "advance":
            clock.advance(action[1])
            venue.sync()
        elif action[0] == "cancel":
            _, client, pick = action
            open_orders = venue.open_orders(client)
            if open_orders:
                venue.cancel(client, open_orders[pick % len(open_orders)]["order_id"])
        else:
            with contextlib.suppress(RpcError):  # refused orders are part of the sequence
                venue.place(action[1], _request(venue, action))
        _check_everything(venue)


def test_cancelling_an_older_order_resums_the_newer_ones() -> None:
    """Removing an order from the middle of an instrument's book keeps the sums of a rescan."""
    venue = PaperVenue(clock=SimClock(START), seed=1)
    bid = venue.ticker(CALL)["best_bid_price"]
    ids = [
        venue.place("alice", OrderRequest(CALL, "buy", amount, price=bid))["order"]["order_id"]
        for amount in (0.1, 0.7, 0.3, 1.1)
    ]
    venue.cancel("alice", ids[1])
    venue.cancel("alice", ids[0])
    _check_everything(venue)
