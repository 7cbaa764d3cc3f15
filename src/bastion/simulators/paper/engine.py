"""The matching engine: places, matches and cancels orders and keeps every fill.

Its matching model is described in :mod:`.venue`. The engine is the only writer of orders,
trades and positions; the margin check before an order is accepted uses the rules of
:mod:`.margin` with the new order counted as resting: the order is refused with 10009 when it
would leave ``available_funds`` negative and lower than before (so an order that reduces risk
is never refused for funds). Resting orders are also kept per account, currency and instrument
(:class:`~.orders.RestingOrders`), and each ledger's valuation in a :class:`~.margin.RiskSheet`
that the engine tells which instrument changed, so the check reads the account's funds in O(1)
and prices the order against its own instrument's orders only. Every change it makes is also
emitted on ``events`` (:mod:`.events`): an :class:`~.events.OrderChanged` once an order settles
into its state after a call (placed, filled, cancelled) and a :class:`~.events.TradeExecuted`
per fill.
"""

from __future__ import annotations

from collections.abc import Mapping

from bastion.simulators.paper.accounts import Account, fee_for
from bastion.simulators.paper.errors import RpcError, invalid_argument
from bastion.simulators.paper.events import Listeners, OrderChanged, TradeExecuted
from bastion.simulators.paper.instruments import Instrument
from bastion.simulators.paper.margin import InstrumentRisk, RiskSheet, Valuation
from bastion.simulators.paper.market import Market, Quote
from bastion.simulators.paper.orders import Order, RestingOrders, Trade
from bastion.simulators.paper.rules import OrderRequest, check_order

__all__ = ["Engine"]

_IMMEDIATE = ("immediate_or_cancel", "fill_or_kill")


class Engine:
    """Orders, fills and trades of every account of one venue."""

    def __init__(
        self, market: Market, accounts: Mapping[int, Account], events: Listeners | None = None
    ) -> None:
        self._market = market
        self._accounts = accounts
        self._events = events if events is not None else Listeners()
        self._orders: dict[str, Order] = {}
        self._open: dict[str, Order] = {}
        self._book: dict[tuple[int, str], dict[str, RestingOrders]] = {}
        self._sheets: dict[tuple[int, str], RiskSheet] = {}
        self._trades: dict[int, list[Trade]] = {}
        self._tape: dict[str, list[Trade]] = {}
        self._last_order_id = 0
        self._last_trade_id = 0

    # -- queries --------------------------------------------------------------------------
    def open_orders(
        self,
        *,
        account_id: int | None = None,
        currency: str | None = None,
        instrument: str | None = None,
        kind: str | None = None,
    ) -> list[Order]:
        """Resting orders in placement order, filtered."""
        return [
            o
            for o in self._open.values()
            if (account_id is None or o.account_id == account_id)
            and (currency is None or o.instrument.currency == currency)
            and (instrument is None or o.instrument.name == instrument)
            and (kind is None or o.instrument.kind == kind)
        ]

    def valuation(
        self, account: Account, currency: str
    ) -> tuple[Valuation, dict[str, InstrumentRisk]]:
        """``account``'s ledger in ``currency`` valued with its resting orders, and each risk.

        The risks are the sheet's own mapping, current until the next change: read, do not keep.
        """
        sheet = self._sheet(account, currency)
        return sheet.valuation(), sheet.risks

    def position_changed(self, account: Account, instrument: Instrument) -> None:
        """A position moved outside a fill (settlement): revalue it on the next read."""
        self._sheet(account, instrument.currency, fresh=False).touch(instrument.name)

    def _sheet(self, account: Account, currency: str, *, fresh: bool = True) -> RiskSheet:
        key = (account.account_id, currency)
        sheet = self._sheets.get(key)
        if sheet is None:
            book = self._book.setdefault(key, {})
            sheet = self._sheets[key] = RiskSheet(account.ledger(currency), book)
        if fresh:
            sheet.refresh(self._market.step, self._market.quote)
        return sheet

    def order(self, account: Account, order_id: str) -> Order:
        """One of ``account``'s orders, or 10004 (another account's orders do not exist)."""
        order = self._orders.get(order_id)
        if order is None or order.account_id != account.account_id:
            raise RpcError(10004, data={"reason": "order not found", "param": "order_id"})
        return order

    def orders(self, account_id: int) -> list[Order]:
        """Every order ``account_id`` ever placed (open or closed), in placement order."""
        return [o for o in self._orders.values() if o.account_id == account_id]

    def trades(self, account_id: int) -> list[Trade]:
        return self._trades.get(account_id, [])

    def tape(self, instrument_name: str) -> list[Trade]:
        """Every paper fill in an instrument, oldest first (the ticker's last price and stats)."""
        return self._tape.get(instrument_name, [])

    # -- placing --------------------------------------------------------------------------
    def place(self, account: Account, request: OrderRequest) -> tuple[Order, list[Trade]]:
        """Validate, margin-check and execute an order; return it with its immediate fills."""
        instrument = self._market.instrument(request.instrument_name)
        quote = self._market.quote(instrument)
        check_order(request, instrument, quote)
        amount = request.amount
        if request.reduce_only:
            amount = min(amount, self._reducible(account, instrument, request.direction))
            if amount <= 0:
                raise invalid_argument("reduce_only", "the order would not reduce a position")
        buy = request.direction == "buy"
        touch = quote.best_ask_price if buy else quote.best_bid_price
        price = request.price if request.order_type == "limit" else None
        takes = touch > 0 and (price is None or (price >= touch if buy else price <= touch))
        if takes and request.post_only and price is not None:
            if request.reject_post_only:
                raise RpcError(
                    11054, data={"reason": "post-only order would take", "param": "price"}
                )
            price = self._behind_touch(instrument, quote, buy)
            takes = False
        order = self._new_order(account, request, instrument, price=price, amount=amount)
        self._check_margin(account, order)
        self._last_order_id += 1
        order.order_id = f"{instrument.currency}-{self._last_order_id}"
        self._orders[order.order_id] = order
        trades: list[Trade] = []
        if takes:
            trades.append(self._execute(order, price=touch, amount=order.remaining, maker=False))
        elif price is None:
            order.close(reason="no_liquidity", now_ms=order.creation_ms)
        elif request.time_in_force in _IMMEDIATE:
            order.close(reason="immediate_or_cancel", now_ms=order.creation_ms)
        else:
            self._rest(order)
        self._changed(order)
        return order, trades

    def _rest(self, order: Order) -> None:
        self._open[order.order_id] = order
        name = order.instrument.name
        book = self._book.setdefault((order.account_id, order.instrument.currency), {})
        own = book.get(name)
        if own is None:
            own = book[name] = RestingOrders()
        own.add(order)
        self._touch(order)

    def _unrest(self, order: Order) -> None:
        if self._open.pop(order.order_id, None) is None:
            return
        name = order.instrument.name
        book = self._book[(order.account_id, order.instrument.currency)]
        own = book[name]
        own.remove(order.order_id)
        if not own:
            del book[name]
        self._touch(order)

    def _touch(self, order: Order) -> None:
        sheet = self._sheets.get((order.account_id, order.instrument.currency))
        if sheet is not None:
            sheet.touch(order.instrument.name)

    def _changed(self, order: Order) -> None:
        if self._events:
            self._events.emit(OrderChanged(order.account_id, order.instrument, order.to_deribit()))

    def _new_order(
        self,
        account: Account,
        request: OrderRequest,
        instrument: Instrument,
        *,
        price: float | None,
        amount: float,
    ) -> Order:
        """The order as it will be recorded; its id is given once it passes the margin check."""
        now = self._market.now_ms
        return Order(
            order_id="",
            account_id=account.account_id,
            instrument=instrument,
            direction=request.direction,
            order_type="limit" if request.order_type == "limit" else "market",
            price=price,
            amount=amount,
            time_in_force=request.time_in_force,
            label=request.label,
            creation_ms=now,
            last_update_ms=now,
            post_only=request.post_only,
            reduce_only=request.reduce_only,
        )

    @staticmethod
    def _behind_touch(instrument: Instrument, quote: Quote, buy: bool) -> float:
        """Where a non-rejecting post-only order is moved: one tick behind the touch."""
        if buy:
            price = instrument.floor_price(quote.best_ask_price - instrument.tick_size)
        else:
            price = instrument.floor_price(quote.best_bid_price + instrument.tick_size)
        if price <= 0:
            raise RpcError(11054, data={"reason": "no price behind the touch", "param": "price"})
        return price

    def _reducible(self, account: Account, instrument: Instrument, direction: str) -> float:
        size = account.ledger(instrument.currency).size_of(instrument)
        return max(-size, 0.0) if direction == "buy" else max(size, 0.0)

    def _check_margin(self, account: Account, order: Order) -> None:
        currency = order.instrument.currency
        sheet = self._sheet(account, currency)
        before, after = sheet.with_order(order, self._market.quote(order.instrument))
        if after.available_funds < 0 and after.available_funds < before.available_funds - 1e-12:
            needed = round(before.available_funds - after.available_funds, 8)
            free = round(before.available_funds, 8)
            reason = f"order needs {needed} {currency} of margin; {free} available"
            raise RpcError(10009, data={"reason": reason, "param": "amount"})

    # -- filling --------------------------------------------------------------------------
    def _execute(self, order: Order, *, price: float, amount: float, maker: bool) -> Trade:
        instrument = order.instrument
        quote = self._market.quote(instrument)
        now = self._market.now_ms
        account = self._accounts[order.account_id]
        fee = fee_for(instrument, amount=amount, price=price, maker=maker)
        signed = amount if order.direction == "buy" else -amount
        pnl = account.ledger(instrument.currency).fill(
            instrument, signed_amount=signed, price=price, fee=fee
        )
        order.record_fill(amount=amount, price=price, fee=fee, pnl=pnl, now_ms=now)
        if not order.is_open:
            self._unrest(order)
        elif order.order_id in self._open:  # a partial fill of a resting order
            self._book[(order.account_id, instrument.currency)][instrument.name].changed(
                order.order_id
            )
        self._touch(order)
        tape = self._tape.setdefault(instrument.name, [])
        self._last_trade_id += 1
        trade = Trade(
            trade_id=f"{instrument.currency}-T{self._last_trade_id}",
            trade_seq=len(tape) + 1,
            account_id=order.account_id,
            instrument=instrument,
            order_id=order.order_id,
            order_type=order.order_type,
            order_state=order.state,
            direction=order.direction,
            price=price,
            amount=amount,
            fee=fee,
            liquidity="M" if maker else "T",
            tick_direction=_tick_direction(tape, price),
            index_price=quote.index_price,
            mark_price=quote.mark_price,
            timestamp=now,
            label=order.label,
            post_only=order.post_only,
            reduce_only=order.reduce_only,
            profit_loss=round(pnl, 10),
            iv=quote.mark_iv,
        )
        tape.append(trade)
        self._trades.setdefault(order.account_id, []).append(trade)
        if self._events:
            self._events.emit(TradeExecuted(trade))
        return trade

    def match_resting(self) -> None:
        """Fill every resting order the current quotes cross, oldest first."""
        now = self._market.now_ms
        for order in list(self._open.values()):
            quote = self._market.quote(order.instrument)
            price = order.price
            if price is None:
                continue
            if order.direction == "buy":
                crossed = 0 < quote.best_ask_price <= price
            else:
                crossed = quote.best_bid_price > 0 and quote.best_bid_price >= price
            if not crossed:
                continue
            amount = order.remaining
            if order.reduce_only:
                account = self._accounts[order.account_id]
                amount = min(amount, self._reducible(account, order.instrument, order.direction))
            if amount > 0:
                self._execute(order, price=price, amount=amount, maker=True)
            if order.is_open:
                self.cancel_order(order, reason="reduce_only", now_ms=now)
            else:
                self._changed(order)

    # -- cancelling -----------------------------------------------------------------------
    def cancel_order(self, order: Order, *, reason: str, now_ms: int) -> Order:
        """Take an open order off the book (``reason`` becomes its ``cancel_reason``)."""
        if not order.is_open:
            raise RpcError(11044, data={"reason": f"order is {order.state}", "param": "order_id"})
        order.close(reason=reason, now_ms=now_ms)
        self._unrest(order)
        self._changed(order)
        return order


def _tick_direction(tape: list[Trade], price: float) -> int:
    """Deribit's tick direction: 0 plus, 1 zero-plus, 2 minus, 3 zero-minus."""
    if not tape:
        return 0
    last = tape[-1]
    if price != last.price:
        return 0 if price > last.price else 2
    return 1 if last.tick_direction in (0, 1) else 3
