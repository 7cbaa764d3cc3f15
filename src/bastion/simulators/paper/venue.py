"""PaperVenue: the whole simulator (market, accounts, matching) behind plain method calls.

Every public method first brings the market up to the injected clock (:meth:`PaperVenue.sync`):
the index moves to the clock's grid step, expired options settle at the index at their expiry
(positions closed at intrinsic value, open orders cancelled with ``cancel_reason
"settlement"``), new expiries are listed, and resting orders are matched against the new
quotes. Results are Deribit-shaped dicts, so the HTTP app only translates JSON-RPC.

Matching model (no other traders, unlimited size at the touch):

- a marketable order (a market order, or a limit buy at or above the best ask / sell at or
  below the best bid) fills in full, immediately, at the touch, as taker;
- a resting limit order fills in full, as maker at its own price, at the first grid step where
  the quote crosses it (buy: best ask <= price; sell: best bid >= price). Only the quote at
  each request's step is checked: if the clock jumps an hour, a cross and recross inside the
  hour is missed;
- ``post_only`` orders that would take are rejected with 11054 when ``reject_post_only`` is
  set, otherwise re-priced one tick behind the touch; ``reduce_only`` orders are cut to the
  position they reduce and refused (11029) when there is none;
- ``immediate_or_cancel`` and ``fill_or_kill`` are the same thing here (the touch has
  unlimited size): fill in full now or cancel; ``good_til_day`` behaves like
  ``good_til_cancelled``; trigger orders (stop, take, trailing) are not supported (11029).

History: every order the venue accepted is kept, so ``order_history`` serves Deribit's
``get_order_history_by_*`` from the venue's own record, and ``chart`` draws candles from the
market's marks and the paper trades (:mod:`.candles`). Every change is emitted on
:attr:`PaperVenue.events` (:mod:`.events`) for the WebSocket feed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import takewhile
from typing import Any

from bastion.clock import Clock
from bastion.errors import UsageError
from bastion.simulators.paper.accounts import Account, Ledger
from bastion.simulators.paper.candles import Charts
from bastion.simulators.paper.engine import Engine
from bastion.simulators.paper.errors import invalid_param
from bastion.simulators.paper.events import Listeners, MarketMoved
from bastion.simulators.paper.instruments import Instrument
from bastion.simulators.paper.margin import (
    InstrumentRisk,
    Valuation,
    account_identity,
    position_dict,
    summary_dict,
)
from bastion.simulators.paper.market import Activity, Market
from bastion.simulators.paper.orders import Order
from bastion.simulators.paper.rules import OrderRequest
from bastion.simulators.paper.specs import CURRENCIES, CurrencySpec

__all__ = ["DEFAULT_BALANCES", "PaperVenue", "Settlement"]

DEFAULT_BALANCES: Mapping[str, float] = {"BTC": 10.0, "ETH": 100.0}
_DAY_MS = 86_400_000
_MAX_TRADES = 1000
_MAX_ORDERS = 1000
_RECENT_ORDERS_MS = 2 * _DAY_MS  # Deribit's order history hides older orders without include_old


@dataclass(frozen=True, slots=True)
class Settlement:
    """An option expiry: the index it settled at and the payoff per unit, in coin."""

    instrument_name: str
    timestamp: int
    index_price: float
    payoff: float


class PaperVenue:
    """A deterministic Deribit-like venue for a seed and a clock."""

    def __init__(
        self,
        *,
        clock: Clock,
        seed: int = 1,
        initial_balances: Mapping[str, float] | None = None,
        specs: Mapping[str, CurrencySpec] = CURRENCIES,
    ) -> None:
        unknown = sorted(set(initial_balances or {}) - set(specs))
        if unknown:
            raise UsageError(
                f"initial_balances names unknown currencies {unknown}; use {sorted(specs)}"
            )
        self.clock = clock
        self.seed = seed
        self.specs = specs
        self.market = Market(seed=seed, start=clock.time(), specs=specs)
        self.settlements: list[Settlement] = []
        self._balances = {
            code: float((initial_balances or {}).get(code, DEFAULT_BALANCES.get(code, 0.0)))
            for code in specs
        }
        self._accounts: dict[str, Account] = {}
        self._by_id: dict[int, Account] = {}
        self.events = Listeners()
        self.engine = Engine(self.market, self._by_id, self.events)
        self.charts = Charts(self.market, seed=seed)
        self._matched_step = self.market.step

    # -- time -----------------------------------------------------------------------------
    def sync(self) -> int:
        """Bring the market to the clock: settle, list, match. Returns the time in ms."""
        expired = self.market.advance(self.clock.time())
        if expired:
            self._settle(expired)
        if self.market.step != self._matched_step:
            self._matched_step = self.market.step
            self.engine.match_resting()
            if self.events:
                self.events.emit(MarketMoved(self.market.step, self.market.now_ms))
        return self.market.now_ms

    def _settle(self, expired: list[Instrument]) -> None:
        now = self.market.now_ms
        for instrument in expired:
            for order in self.engine.open_orders(instrument=instrument.name):
                self.engine.cancel_order(order, reason="settlement", now_ms=now)
            if not instrument.is_option:
                continue
            index = self.market.index_at(instrument.currency, instrument.expiration_ms / 1000)
            strike = instrument.strike or index
            intrinsic = max(index - strike, 0.0) if instrument.is_call else max(strike - index, 0.0)
            payoff = round(intrinsic / index, 8)
            for account in self._accounts.values():
                account.ledger(instrument.currency).settle(instrument, payoff)
                self.engine.position_changed(account, instrument)
            self.settlements.append(
                Settlement(instrument.name, instrument.expiration_ms, index, payoff)
            )

    # -- public data ----------------------------------------------------------------------
    def currencies(self) -> list[dict[str, Any]]:
        self.sync()
        return [
            {
                "currency": spec.code,
                "currency_long": spec.long_name,
                "coin_type": spec.coin_type,
                "min_confirmations": 1,
                "min_withdrawal_fee": spec.withdrawal_fee,
                "withdrawal_fee": spec.withdrawal_fee,
                "withdrawal_priorities": [],
                "fee_precision": 4,
                "in_cross_collateral_pool": False,
            }
            for spec in self.specs.values()
        ]

    def instruments(
        self, *, currency: str = "any", kind: str | None = None, expired: bool = False
    ) -> list[dict[str, Any]]:
        """Listed (or, with ``expired``, expired) instruments of a currency and kind."""
        self.sync()
        catalog = self.market.catalog
        chosen = catalog.expired() if expired else catalog.active()
        result = []
        for instrument in chosen:
            if currency not in ("any", instrument.currency):
                continue
            if kind is not None and instrument.kind != kind:
                continue
            data = instrument.to_deribit()
            data["is_active"] = not expired
            result.append(data)
        return result

    def index_price(self, currency: str) -> dict[str, float]:
        self.sync()
        index = self.market.index(currency)
        return {"index_price": index, "estimated_delivery_price": index}

    def ticker(self, instrument_name: str) -> dict[str, Any]:
        self.sync()
        instrument = self.market.instrument(instrument_name)
        return self.market.ticker(instrument, self._activity(instrument))

    def order_book(self, instrument_name: str, depth: int = 10) -> dict[str, Any]:
        self.sync()
        instrument = self.market.instrument(instrument_name)
        return self.market.order_book(instrument, depth, self._activity(instrument))

    def chart(
        self, instrument_name: str, *, resolution: str, start_ms: int, end_ms: int
    ) -> dict[str, Any]:
        """``public/get_tradingview_chart_data``: candles up to now (see :mod:`.candles`)."""
        self.sync()
        instrument = self.market.instrument(instrument_name)
        tape = self.engine.tape(instrument.name)
        return self.charts.chart(
            instrument, tape, resolution=resolution, start_ms=start_ms, end_ms=end_ms
        )

    def _activity(self, instrument: Instrument) -> Activity:
        tape = self.engine.tape(instrument.name)
        since = self.market.now_ms - _DAY_MS
        recent = list(takewhile(lambda t: t.timestamp > since, reversed(tape)))
        prices = [t.price for t in recent]
        sizes = [a.ledger(instrument.currency).size_of(instrument) for a in self._accounts.values()]
        coin = instrument.is_option
        return Activity(
            last_price=tape[-1].price if tape else None,
            volume=sum((t.amount if coin else t.amount / t.price for t in recent), 0.0),
            volume_usd=sum((t.amount * t.index_price if coin else t.amount for t in recent), 0.0),
            high=max(prices) if prices else None,
            low=min(prices) if prices else None,
            open_interest=sum((max(s, 0.0) for s in sizes), 0.0),
        )

    # -- accounts -------------------------------------------------------------------------
    def account(self, client_id: str) -> Account:
        """The account of ``client_id``, opened and funded on first use."""
        account = self._accounts.get(client_id)
        if account is None:
            account_id = len(self._accounts) + 1
            ledgers = {code: Ledger(code, balance) for code, balance in self._balances.items()}
            account = Account(account_id, client_id, self.market.now_ms, ledgers)
            self._accounts[client_id] = account
            self._by_id[account_id] = account
        return account

    def _currency(self, currency: str) -> str:
        if currency not in self.specs:
            raise invalid_param("currency", "must be one of: " + ", ".join(self.specs))
        return currency

    def _valued(
        self, account: Account, currency: str
    ) -> tuple[Ledger, Valuation, dict[str, InstrumentRisk]]:
        valuation, risks = self.engine.valuation(account, currency)
        return account.ledger(currency), valuation, risks

    def account_summary(
        self, client_id: str, currency: str, *, extended: bool = False
    ) -> dict[str, Any]:
        self.sync()
        account = self.account(client_id)
        ledger, valuation, _ = self._valued(account, self._currency(currency))
        return summary_dict(account, ledger, valuation, extended=extended)

    def account_summaries(self, client_id: str, *, extended: bool = False) -> dict[str, Any]:
        self.sync()
        account = self.account(client_id)
        summaries = []
        for code in self.specs:
            ledger, valuation, _ = self._valued(account, code)
            summaries.append(summary_dict(account, ledger, valuation, extended=extended))
        return account_identity(account) | {"summaries": summaries}

    def positions(
        self, client_id: str, *, currency: str = "any", kind: str | None = None
    ) -> list[dict[str, Any]]:
        """Open (non-zero) positions, filtered by currency and kind."""
        self.sync()
        account = self.account(client_id)
        codes = list(self.specs) if currency == "any" else [self._currency(currency)]
        result = []
        for code in codes:
            ledger, _, risks = self._valued(account, code)
            for position in ledger.open_positions():
                if kind is None or position.instrument.kind == kind:
                    quote = self.market.quote(position.instrument)
                    result.append(position_dict(position, quote, risks[position.instrument.name]))
        return result

    # -- trading --------------------------------------------------------------------------
    def place(self, client_id: str, request: OrderRequest) -> dict[str, Any]:
        """``private/buy`` / ``private/sell``: ``{order, trades}``."""
        self.sync()
        order, trades = self.engine.place(self.account(client_id), request)
        return {"order": order.to_deribit(), "trades": [t.to_deribit() for t in trades]}

    def cancel(self, client_id: str, order_id: str) -> dict[str, Any]:
        """``private/cancel``: 10004 for an unknown id, 11044 for an order no longer open."""
        now = self.sync()
        order = self.engine.order(self.account(client_id), order_id)
        return self.engine.cancel_order(order, reason="user_request", now_ms=now).to_deribit()

    def _orders_of(
        self,
        client_id: str,
        currency: str | None,
        instrument_name: str | None,
        kind: str | None,
    ) -> list[Order]:
        account = self.account(client_id)
        if instrument_name is not None:
            self.market.instrument(instrument_name)
        return self.engine.open_orders(
            account_id=account.account_id,
            currency=None if currency is None else self._currency(currency),
            instrument=instrument_name,
            kind=kind,
        )

    def cancel_all(
        self,
        client_id: str,
        *,
        currency: str | None = None,
        instrument_name: str | None = None,
        kind: str | None = None,
    ) -> int:
        """Cancel the account's open orders that match; return how many."""
        now = self.sync()
        orders = self._orders_of(client_id, currency, instrument_name, kind)
        for order in orders:
            self.engine.cancel_order(order, reason="user_request", now_ms=now)
        return len(orders)

    def open_orders(
        self,
        client_id: str,
        *,
        currency: str | None = None,
        instrument_name: str | None = None,
        kind: str | None = None,
    ) -> list[dict[str, Any]]:
        """The account's resting orders that match, oldest first."""
        self.sync()
        return [o.to_deribit() for o in self._orders_of(client_id, currency, instrument_name, kind)]

    def order_history(
        self,
        client_id: str,
        *,
        currency: str | None = None,
        instrument_name: str | None = None,
        kind: str | None = None,
        count: int = 20,
        offset: int = 0,
        include_old: bool = False,
        include_unfilled: bool = False,
    ) -> list[dict[str, Any]]:
        """``private/get_order_history_by_*``: the account's closed orders, newest first.

        As on Deribit: an order that closed without any fill (cancelled or expired untouched)
        is listed only with ``include_unfilled``, and one last updated more than two days ago
        only with ``include_old``. "Newest" is the last update (the close), ties broken by the
        later placement. Open orders never appear: the paper venue fills in full, so an order
        is either resting untouched or closed.
        """
        now = self.sync()
        if not 1 <= count <= _MAX_ORDERS:
            raise invalid_param("count", f"must be between 1 and {_MAX_ORDERS}")
        if offset < 0:
            raise invalid_param("offset", "must not be negative")
        account = self.account(client_id)
        if currency is not None:
            self._currency(currency)
        if instrument_name is not None and not any(
            i.name == instrument_name for i in self.market.catalog.expired()
        ):
            self.market.instrument(instrument_name)  # 10020 unless listed (or recently expired)
        chosen = [
            (order.last_update_ms, position, order)
            for position, order in enumerate(self.engine.orders(account.account_id))
            if not order.is_open
            and (currency is None or order.instrument.currency == currency)
            and (instrument_name is None or order.instrument.name == instrument_name)
            and (kind is None or order.instrument.kind == kind)
            and (include_unfilled or order.filled_amount > 0)
            and (include_old or order.last_update_ms >= now - _RECENT_ORDERS_MS)
        ]
        chosen.sort(key=lambda entry: (entry[0], entry[1]), reverse=True)
        return [order.to_deribit() for _, _, order in chosen[offset : offset + count]]

    def order_state(self, client_id: str, order_id: str) -> dict[str, Any]:
        self.sync()
        return self.engine.order(self.account(client_id), order_id).to_deribit()

    def orders_by_label(self, client_id: str, *, currency: str, label: str) -> list[dict[str, Any]]:
        """``private/get_order_state_by_label``: the account's orders of ``currency`` carrying
        ``label``, open or closed, in placement order."""
        self.sync()
        code = self._currency(currency)
        account = self.account(client_id)
        return [
            order.to_deribit()
            for order in self.engine.orders(account.account_id)
            if order.label == label and order.instrument.currency == code
        ]

    def user_trades(
        self,
        client_id: str,
        *,
        currency: str | None = None,
        instrument_name: str | None = None,
        kind: str | None = None,
        count: int = 10,
        newest_first: bool = True,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> dict[str, Any]:
        """``{trades, has_more}``: the account's fills, filtered, ``count`` at most."""
        self.sync()
        if not 1 <= count <= _MAX_TRADES:
            raise invalid_param("count", f"must be between 1 and {_MAX_TRADES}")
        account = self.account(client_id)
        if currency is not None:
            self._currency(currency)
        chosen = [
            t
            for t in self.engine.trades(account.account_id)
            if (currency is None or t.instrument.currency == currency)
            and (instrument_name is None or t.instrument.name == instrument_name)
            and (kind is None or t.instrument.kind == kind)
            and (start_ms is None or t.timestamp >= start_ms)
            and (end_ms is None or t.timestamp <= end_ms)
        ]
        if newest_first:
            chosen.reverse()
        return {"trades": [t.to_deribit() for t in chosen[:count]], "has_more": len(chosen) > count}
