"""Margin and valuation of a ledger, and the Deribit shapes that report them.

Simple, documented rules (Deribit's standard-margin formulas, simplified):

- **short option** IM per unit ``max(0.15 - OTM / index, 0.10) + mark``, where OTM is how far
  out of the money the strike is in USD; **long options** need no margin (they are paid for);
- **perpetual** IM is 1 % of the coin notional ``|size| / mark`` (so leverage up to 100x);
- MM is 75 % of IM for both;
- **open orders** reserve, per instrument, the larger of "all resting buys fill" and "all
  resting sells fill" minus the margin already held; buys of options also reserve their
  premium. An order that only reduces a position therefore reserves nothing;
- ``equity = balance + options value + perpetual unrealised PnL``; the value of long options
  is not collateral, so ``margin_balance = equity - long options value`` and
  ``available_funds = margin_balance - initial_margin``.

Account totals are correctly rounded sums of the per-instrument figures, kept up to date one
instrument at a time by :class:`RiskSheet`, so an order's margin check costs O(orders of its
instrument), not O(every resting order x every instrument).

No liquidation engine: an account can fall below maintenance margin and stay there;
``estimated_liquidation_price`` is therefore always null.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bastion.simulators.paper.accounts import Account, Ledger, Position
from bastion.simulators.paper.instruments import Instrument
from bastion.simulators.paper.market import Quote
from bastion.simulators.paper.orders import Order, RestingOrders
from bastion.simulators.paper.pricing import Greeks
from bastion.simulators.paper.specs import PERP_MAX_LEVERAGE

__all__ = [
    "InstrumentRisk",
    "RiskSheet",
    "Valuation",
    "position_dict",
    "summary_dict",
    "value_ledger",
]

SHORT_OPTION_BASE = 0.15
SHORT_OPTION_FLOOR = 0.10
PERP_INITIAL_MARGIN = 1.0 / PERP_MAX_LEVERAGE
MAINTENANCE_RATIO = 0.75
_DP = 10


def position_im(instrument: Instrument, size: float, quote: Quote) -> float:
    """Initial margin of a position of signed ``size`` at ``quote``, in coin."""
    if instrument.is_option:
        if size >= 0:
            return 0.0
        index, strike = quote.index_price, instrument.strike or quote.index_price
        otm = max(strike - index, 0.0) if instrument.is_call else max(index - strike, 0.0)
        per_unit = max(SHORT_OPTION_BASE - otm / index, SHORT_OPTION_FLOOR) + quote.mark_price
        return per_unit * -size
    return PERP_INITIAL_MARGIN * abs(size) / quote.mark_price


def orders_margin(
    instrument: Instrument, size: float, quote: Quote, sums: tuple[float, float, float]
) -> float:
    """Extra initial margin that resting orders would need if filled, from their ``sums``.

    ``sums`` are the remaining buys, remaining sells and the buys' premium
    (:attr:`~.orders.RestingOrders.sums`); option buys pay their premium up front.
    """
    buys, sells, premium = sums
    held = position_im(instrument, size, quote)
    if_buys = position_im(instrument, size + buys, quote)
    if instrument.is_option:
        if_buys += premium
    if_sells = position_im(instrument, size - sells, quote)
    return max(if_buys, if_sells, held) - held


@dataclass(frozen=True, slots=True)
class InstrumentRisk:
    """Margin, value and greeks of one instrument's position and open orders."""

    initial_margin: float
    maintenance_margin: float
    open_orders_margin: float
    value: float
    floating_pl: float
    delta: float
    gamma: float = 0.0
    vega: float = 0.0
    theta: float = 0.0


def instrument_risk(
    position: Position, quote: Quote, sums: tuple[float, float, float]
) -> InstrumentRisk:
    """One instrument's risk with resting orders of ``sums`` (see :func:`orders_margin`)."""
    instrument, size = position.instrument, position.size
    im = position_im(instrument, size, quote)
    oom = orders_margin(instrument, size, quote, sums)
    floating = position.floating_pl(quote.mark_price)
    mm = im * MAINTENANCE_RATIO
    if not instrument.is_option:
        return InstrumentRisk(im, mm, oom, 0.0, floating, size / quote.mark_price)
    g = quote.greeks or Greeks(delta=0.0, gamma=0.0, vega=0.0, theta=0.0, rho=0.0)
    return InstrumentRisk(
        im, mm, oom, size * quote.mark_price, floating,
        size * g.delta, size * g.gamma, size * g.vega, size * g.theta,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Valuation:
    """A ledger valued at current quotes (all values in coin).

    Every total is the correctly rounded sum of its per-instrument terms (see :class:`RiskSheet`),
    so it does not depend on the order instruments are listed in and can be kept up to date one
    instrument at a time.
    """

    balance: float
    initial_margin_positions: float
    maintenance_margin: float
    open_orders_margin: float
    delta: float
    options_value: float
    long_options_value: float
    options_floating_pl: float
    futures_floating_pl: float
    options_delta: float
    options_gamma: float
    options_vega: float
    options_theta: float
    options_rpl: float = 0.0
    futures_rpl: float = 0.0

    @property
    def equity(self) -> float:
        return self.balance + self.options_value + self.futures_floating_pl

    @property
    def margin_balance(self) -> float:
        return self.equity - self.long_options_value

    @property
    def initial_margin(self) -> float:
        return self.initial_margin_positions + self.open_orders_margin

    @property
    def available_funds(self) -> float:
        return self.margin_balance - self.initial_margin


_TOTALS = len(Valuation.__slots__) - 3  # every field but balance and the two realised PnLs
_OOM = 2  # the index of open_orders_margin in a risk's terms
_ZERO_TERMS = (0.0,) * _TOTALS
_NO_ORDERS: tuple[float, float, float] = (0, 0, 0)  # sums of no orders, as sum([]) gives them
_SUBNORMAL_BITS = 1074  # 2**-1074 is the smallest positive float: every float is k / 2**1074
_ONE = 1 << _SUBNORMAL_BITS


def _exact(x: float) -> int:
    """``x`` as an integer count of 2**-1074, exactly."""
    numerator, denominator = x.as_integer_ratio()
    return numerator << (_SUBNORMAL_BITS + 1 - denominator.bit_length())


def _terms(risk: InstrumentRisk, option: bool) -> tuple[float, ...]:
    """A risk's contribution to each total of :class:`Valuation`, in field order."""
    r = risk
    if option:
        return (
            r.initial_margin, r.maintenance_margin, r.open_orders_margin, r.delta,
            r.value, max(r.value, 0.0), r.floating_pl, 0.0,
            r.delta, r.gamma, r.vega, r.theta,
        )  # fmt: skip
    return (
        r.initial_margin, r.maintenance_margin, r.open_orders_margin, r.delta,
        0.0, 0.0, 0.0, r.floating_pl, 0.0, 0.0, 0.0, 0.0,
    )  # fmt: skip


class RiskSheet:
    """One ledger's per-instrument risks and their exact totals, revalued one instrument at a time.

    Why: the margin check of every order needs the account's available funds; rescanning every
    instrument and every resting order made a place cost O(orders x instruments). The sheet keeps
    each instrument's :class:`InstrumentRisk` and the running totals as exact integers (multiples
    of 2**-1074, so adding and removing a term never drifts, and a total read back is the
    correctly rounded sum, the same as :func:`math.fsum` of the terms). The engine marks an
    instrument with :meth:`touch` when its orders or position change; reading revalues only the
    marked ones, in O(orders of that instrument). A new market grid step changes every quote,
    so the first read in a step revalues everything.
    """

    __slots__ = ("_dirty", "_ledger", "_orders", "_sums", "_terms", "risks", "step")

    def __init__(self, ledger: Ledger, orders: Mapping[str, RestingOrders]) -> None:
        """``orders``: the ledger's resting orders by instrument name, each in placement order."""
        self._ledger = ledger
        self._orders = orders
        self.risks: dict[str, InstrumentRisk] = {}
        self._terms: dict[str, tuple[float, ...]] = {}
        self._sums = [0] * _TOTALS
        self._dirty: set[str] = set()
        self.step: int | None = None

    def touch(self, instrument_name: str) -> None:
        """The orders or position of ``instrument_name`` changed: revalue it on the next read."""
        self._dirty.add(instrument_name)

    def refresh(self, step: int, quote_of: Callable[[Instrument], Quote]) -> None:
        """Bring every risk up to date for the market's grid ``step``."""
        if step != self.step:
            self.step = step
            self._dirty.clear()
            self.risks.clear()
            self._terms.clear()
            self._sums = [0] * _TOTALS
            names = {p.instrument.name: None for p in self._ledger.open_positions()}
            names.update(dict.fromkeys(self._orders))
            for name in names:
                self._revalue(name, quote_of)
            return
        while self._dirty:
            self._revalue(self._dirty.pop(), quote_of)

    def _revalue(self, name: str, quote_of: Callable[[Instrument], Quote]) -> None:
        position = self._ledger.positions.get(name)
        own = self._orders.get(name)
        if (position is None or position.size == 0) and not own:
            self.risks.pop(name, None)
            self._set(name, _ZERO_TERMS)
            self._terms.pop(name, None)
            return
        if position is None:
            assert own is not None
            position = Position(next(iter(own.orders.values())).instrument)
        risk = instrument_risk(
            position, quote_of(position.instrument), own.sums if own else _NO_ORDERS
        )
        self.risks[name] = risk
        self._set(name, _terms(risk, position.instrument.is_option))

    def _set(self, name: str, terms: tuple[float, ...]) -> None:
        old = self._terms.get(name, _ZERO_TERMS)
        sums = self._sums
        for i, (was, now) in enumerate(zip(old, terms, strict=True)):
            if was != now:
                sums[i] += _exact(now) - _exact(was)
        self._terms[name] = terms

    def valuation(self, *, realized: bool = True) -> Valuation:
        """The totals as they stand (call :meth:`refresh` first); ``realized`` adds the PnLs."""
        ledger = self._ledger
        rpl = (ledger.realized(options=True), ledger.realized(options=False)) if realized else ()
        return Valuation(ledger.balance, *(s / _ONE for s in self._sums), *rpl)

    def with_order(self, order: Order, quote: Quote) -> tuple[Valuation, Valuation]:
        """The valuation now and as it would be with ``order`` resting too (PnLs left out).

        Only the order's instrument's open-orders margin can change, so only it is recomputed.
        """
        instrument = order.instrument
        own = self._orders.get(instrument.name) or RestingOrders()
        size = self._ledger.size_of(instrument)
        oom = orders_margin(instrument, size, quote, own.sums_with(order, quote.best_ask_price))
        was = self._terms.get(instrument.name, _ZERO_TERMS)[_OOM]
        totals = [s / _ONE for s in self._sums]
        before = Valuation(self._ledger.balance, *totals)
        totals[_OOM] = (self._sums[_OOM] + _exact(oom) - _exact(was)) / _ONE
        return before, Valuation(self._ledger.balance, *totals)


def value_ledger(
    ledger: Ledger, orders: list[Order], quote_of: Callable[[Instrument], Quote]
) -> tuple[Valuation, dict[str, InstrumentRisk]]:
    """Value ``ledger`` with its open ``orders`` from scratch; also each instrument's risk."""
    by_instrument: dict[str, RestingOrders] = {}
    for order in orders:
        by_instrument.setdefault(order.instrument.name, RestingOrders()).add(order)
    sheet = RiskSheet(ledger, by_instrument)
    sheet.refresh(0, quote_of)
    return sheet.valuation(), sheet.risks


def _r(value: float) -> float:
    return round(value, _DP)


def summary_dict(
    account: Account, ledger: Ledger, valuation: Valuation, *, extended: bool
) -> dict[str, Any]:
    """The ``private/get_account_summary`` result for one currency."""
    v = valuation
    options_upl = v.options_floating_pl
    futures_upl = v.futures_floating_pl
    delta_total = v.delta
    maintenance = v.maintenance_margin
    index_name = f"{ledger.currency.lower()}_usd"
    data: dict[str, Any] = {
        "currency": ledger.currency,
        "balance": _r(v.balance),
        "equity": _r(v.equity),
        "margin_balance": _r(v.margin_balance),
        "available_funds": _r(v.available_funds),
        "available_withdrawal_funds": _r(max(0.0, min(v.balance, v.available_funds))),
        "initial_margin": _r(v.initial_margin),
        "maintenance_margin": _r(maintenance),
        "projected_initial_margin": _r(v.initial_margin),
        "projected_maintenance_margin": _r(maintenance),
        "total_pl": _r(options_upl + futures_upl + v.options_rpl + v.futures_rpl),
        "session_upl": _r(options_upl + futures_upl),
        "session_rpl": _r(v.options_rpl + v.futures_rpl),
        "delta_total": round(delta_total, 6),
        "projected_delta_total": round(delta_total, 6),
        "delta_total_map": {index_name: round(delta_total, 6)},
        "options_value": _r(v.options_value),
        "options_pl": _r(options_upl + v.options_rpl),
        "options_session_upl": _r(options_upl),
        "options_session_rpl": _r(v.options_rpl),
        "options_delta": round(v.options_delta, 6),
        "options_gamma": round(v.options_gamma, 8),
        "options_vega": round(v.options_vega, 5),
        "options_theta": round(v.options_theta, 5),
        "futures_pl": _r(futures_upl + v.futures_rpl),
        "futures_session_upl": _r(futures_upl),
        "futures_session_rpl": _r(v.futures_rpl),
        "fee_balance": 0.0,
        "spot_reserve": 0.0,
        "estimated_liquidation_ratio": 0.0,
        "margin_model": "segregated_sm",
        "cross_collateral_enabled": False,
        "portfolio_margining_enabled": False,
    }
    if extended:
        data |= account_identity(account)
    return data


def account_identity(account: Account) -> dict[str, Any]:
    """The identity fields of an extended summary and of ``get_account_summaries``."""
    return {
        "id": account.account_id,
        "username": account.client_id,
        "system_name": account.client_id,
        "email": f"{account.client_id}@paper.invalid",
        "type": "main",
        "creation_timestamp": account.creation_ms,
        "login_enabled": False,
        "security_keys_enabled": False,
        "mmp_enabled": False,
        "interuser_transfers_enabled": False,
        "referrer_id": None,
    }


def position_dict(position: Position, quote: Quote, risk: InstrumentRisk) -> dict[str, Any]:
    """One ``private/get_positions`` entry."""
    instrument, size = position.instrument, position.size
    option = instrument.is_option
    direction = "buy" if size > 0 else "sell" if size < 0 else "zero"
    data: dict[str, Any] = {
        "instrument_name": instrument.name,
        "kind": instrument.kind,
        "direction": direction,
        "size": size,
        "size_currency": size if option else round(size / quote.mark_price, 8),
        "average_price": round(position.average_price, 8),
        "mark_price": quote.mark_price,
        "index_price": quote.index_price,
        "settlement_price": quote.mark_price,
        "delta": round(risk.delta, 6),
        "initial_margin": _r(risk.initial_margin),
        "maintenance_margin": _r(risk.maintenance_margin),
        "open_orders_margin": _r(risk.open_orders_margin),
        "floating_profit_loss": _r(risk.floating_pl),
        "realized_profit_loss": _r(position.realized_pl),
        "total_profit_loss": _r(risk.floating_pl + position.realized_pl),
        "estimated_liquidation_price": None,
    }
    if option:
        data |= {
            "gamma": round(risk.gamma, 8),
            "vega": round(risk.vega, 5),
            "theta": round(risk.theta, 5),
            "average_price_usd": round(position.average_price * quote.index_price, 2),
            "floating_profit_loss_usd": round(risk.floating_pl * quote.index_price, 2),
        }
    else:
        data |= {"leverage": PERP_MAX_LEVERAGE, "interest_value": 0.0, "realized_funding": 0.0}
    return data
