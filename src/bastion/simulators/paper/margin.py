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

No liquidation engine: an account can fall below maintenance margin and stay there;
``estimated_liquidation_price`` is therefore always null.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from bastion.simulators.paper.accounts import Account, Ledger, Position
from bastion.simulators.paper.instruments import Instrument
from bastion.simulators.paper.market import Quote
from bastion.simulators.paper.orders import Order
from bastion.simulators.paper.pricing import Greeks
from bastion.simulators.paper.specs import PERP_MAX_LEVERAGE

__all__ = ["InstrumentRisk", "Valuation", "position_dict", "summary_dict", "value_ledger"]

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


def orders_margin(instrument: Instrument, size: float, quote: Quote, orders: list[Order]) -> float:
    """Extra initial margin that ``orders`` (open, in ``instrument``) would need if filled."""
    buying = [o for o in orders if o.direction == "buy"]
    buys = sum(o.remaining for o in buying)
    sells = sum(o.remaining for o in orders if o.direction == "sell")
    held = position_im(instrument, size, quote)
    if_buys = position_im(instrument, size + buys, quote)
    if instrument.is_option:  # option buys pay their premium up front
        if_buys += sum(o.remaining * (o.price or quote.best_ask_price) for o in buying)
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


def instrument_risk(position: Position, quote: Quote, orders: list[Order]) -> InstrumentRisk:
    instrument, size = position.instrument, position.size
    im = position_im(instrument, size, quote)
    oom = orders_margin(instrument, size, quote, orders)
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
    """A ledger valued at current quotes (all values in coin)."""

    balance: float
    options: list[InstrumentRisk]
    futures: list[InstrumentRisk]
    options_rpl: float
    futures_rpl: float

    def total(self, name: str, risks: Iterable[InstrumentRisk] | None = None) -> float:
        chosen = [*self.options, *self.futures] if risks is None else risks
        return float(sum(getattr(r, name) for r in chosen))

    @property
    def options_value(self) -> float:
        return self.total("value", self.options)

    @property
    def long_options_value(self) -> float:
        return float(sum(max(r.value, 0.0) for r in self.options))

    @property
    def equity(self) -> float:
        return self.balance + self.options_value + self.total("floating_pl", self.futures)

    @property
    def margin_balance(self) -> float:
        return self.equity - self.long_options_value

    @property
    def initial_margin(self) -> float:
        return self.total("initial_margin") + self.total("open_orders_margin")

    @property
    def available_funds(self) -> float:
        return self.margin_balance - self.initial_margin


def value_ledger(
    ledger: Ledger, orders: list[Order], quote_of: Callable[[Instrument], Quote]
) -> tuple[Valuation, dict[str, InstrumentRisk]]:
    """Value ``ledger`` with its open ``orders``; also return each instrument's risk."""
    instruments = {p.instrument.name: p.instrument for p in ledger.open_positions()}
    for order in orders:
        instruments.setdefault(order.instrument.name, order.instrument)
    risks: dict[str, InstrumentRisk] = {}
    for name, instrument in instruments.items():
        position = ledger.positions.get(name) or Position(instrument)
        own = [o for o in orders if o.instrument.name == name]
        risks[name] = instrument_risk(position, quote_of(instrument), own)
    valuation = Valuation(
        balance=ledger.balance,
        options=[risks[n] for n, i in instruments.items() if i.is_option],
        futures=[risks[n] for n, i in instruments.items() if not i.is_option],
        options_rpl=ledger.realized(options=True),
        futures_rpl=ledger.realized(options=False),
    )
    return valuation, risks


def _r(value: float) -> float:
    return round(value, _DP)


def summary_dict(
    account: Account, ledger: Ledger, valuation: Valuation, *, extended: bool
) -> dict[str, Any]:
    """The ``private/get_account_summary`` result for one currency."""
    v = valuation
    options_upl = v.total("floating_pl", v.options)
    futures_upl = v.total("floating_pl", v.futures)
    delta_total = v.total("delta")
    maintenance = v.total("maintenance_margin")
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
        "options_delta": round(v.total("delta", v.options), 6),
        "options_gamma": round(v.total("gamma", v.options), 8),
        "options_vega": round(v.total("vega", v.options), 5),
        "options_theta": round(v.total("theta", v.options), 5),
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
