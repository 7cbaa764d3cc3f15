"""Reference agent: a rule-based seller of short-dated out-of-the-money options.

It writes options whose |delta| is nearest a target, a few days out, and buys each one back when
its |delta| grows past a trigger (the market moved against it) or expiry gets close (gamma risk).
No LLM is needed, so it runs anywhere and its decisions are exactly reproducible: the point is
to exercise the runtime (observation, risk review, orders, halts, traces) end to end.

Prices: sales are offered at the mark (rounded up to the tick, never below the best bid), so
they rest and fill when the market comes to them; buy-backs pay the best ask so they fill at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from bastion.agent import Context, Decision, Observation, OrderIntent
from bastion.market import Instrument, Ticker

__all__ = ["OptionsSeller", "SellerParams"]

_MS_PER_DAY = 86_400_000
_STRIKES_PER_SIDE = 5
_MAX_EXPIRIES = 3


@dataclass(frozen=True, slots=True)
class SellerParams:
    """The seller's knobs; ``bastion run`` fills them from the ``seller_*`` settings."""

    currency: str = "BTC"
    target_delta: float = 0.15
    min_days: float = 0.5
    max_days: float = 10.0
    order_amount: float = 0.1
    max_shorts: int = 2
    buyback_delta: float = 0.35
    buyback_days: float = 0.25


def _days_left(instrument: Instrument, now_ms: int) -> float:
    return (instrument.expiration_ms - now_ms) / _MS_PER_DAY


def _round_up(price: float, tick: float) -> float:
    return round(math.ceil(price / tick - 1e-9) * tick, 10)


class OptionsSeller:
    """Sells OTM options near a target delta; buys them back on a delta or time trigger."""

    name = "options_seller"
    version = "1.0.0"
    tools: Sequence[str] = ()

    def __init__(self, params: SellerParams | None = None) -> None:
        self.params = params or SellerParams()

    # -- what to watch ------------------------------------------------------------------
    def watchlist(
        self, instruments: Sequence[Instrument], index_price: float, now_ms: int
    ) -> list[str]:
        """The nearest OTM strikes on the first few eligible expiries, calls and puts."""
        p = self.params
        eligible = [
            i
            for i in instruments
            if i.kind == "option"
            and i.currency == p.currency
            and i.strike is not None
            and p.min_days <= _days_left(i, now_ms) <= p.max_days
        ]
        expiries = sorted({i.expiration_ms for i in eligible})[:_MAX_EXPIRIES]
        names: list[str] = []
        for expiry in expiries:
            for option_type in ("call", "put"):
                names.extend(self._otm_strikes(eligible, expiry, option_type, index_price))
        return names

    @staticmethod
    def _otm_strikes(
        eligible: Sequence[Instrument], expiry: int, option_type: str, index_price: float
    ) -> list[str]:
        side = [
            i
            for i in eligible
            if i.expiration_ms == expiry
            and i.option_type == option_type
            and i.strike is not None
            and (i.strike > index_price if option_type == "call" else i.strike < index_price)
        ]
        side.sort(key=lambda i: abs((i.strike or 0.0) - index_price))
        return [i.name for i in side[:_STRIKES_PER_SIDE]]

    # -- what to do ---------------------------------------------------------------------
    async def decide(self, obs: Observation, ctx: Context) -> Decision:
        intents = self._buybacks(obs)
        if intents:
            return Decision(tuple(intents), rationale="buy back shorts past their triggers")
        sale = self._sale(obs)
        if sale is None:
            return Decision((), rationale="hold: at max shorts or no option near target delta")
        return Decision((sale,), rationale=sale.reason)

    def _buybacks(self, obs: Observation) -> list[OrderIntent]:
        p = self.params
        intents: list[OrderIntent] = []
        bidding = {o.instrument_name for o in obs.open_orders if o.direction == "buy"}
        for position in obs.positions:
            if position.kind != "option" or position.size >= 0:
                continue
            if position.instrument_name in bidding:  # a buy-back already rests: do not pile up
                continue
            instrument = obs.instruments.get(position.instrument_name)
            ticker = obs.tickers.get(position.instrument_name)
            if instrument is None or ticker is None:
                continue
            days = _days_left(instrument, obs.time_ms)
            delta = abs(ticker.delta or 0.0)
            if delta < p.buyback_delta and days > p.buyback_days:
                continue
            price = ticker.best_ask_price or ticker.mark_price
            trigger = (
                f"|delta| {delta:.2f} >= {p.buyback_delta}"
                if delta >= p.buyback_delta
                else f"{days:.2f} days to expiry <= {p.buyback_days}"
            )
            intents.append(
                OrderIntent(
                    instrument_name=position.instrument_name,
                    direction="buy",
                    amount=abs(position.size),
                    price=_round_up(price, instrument.tick_size),
                    reduce_only=True,
                    reason=f"buy back {position.instrument_name}: {trigger}",
                )
            )
        return intents

    def _sale(self, obs: Observation) -> OrderIntent | None:
        p = self.params
        shorts = {x.instrument_name for x in obs.positions if x.kind == "option" and x.size < 0}
        resting = {o.instrument_name for o in obs.open_orders if o.direction == "sell"}
        if len(shorts | resting) >= p.max_shorts:
            return None
        best = self._nearest_target(obs, exclude=shorts | resting)
        if best is None:
            return None
        instrument, ticker = best
        price = _round_up(
            max(ticker.mark_price, ticker.best_bid_price or 0.0), instrument.tick_size
        )
        return OrderIntent(
            instrument_name=instrument.name,
            direction="sell",
            amount=p.order_amount,
            price=price,
            reason=(
                f"sell {instrument.name}: |delta| {abs(ticker.delta or 0):.3f} nearest target "
                f"{p.target_delta}, {_days_left(instrument, obs.time_ms):.1f} days to expiry"
            ),
        )

    def _nearest_target(
        self, obs: Observation, *, exclude: set[str]
    ) -> tuple[Instrument, Ticker] | None:
        p = self.params
        best: tuple[float, str, Instrument, Ticker] | None = None
        for name, ticker in obs.tickers.items():
            instrument = obs.instruments.get(name)
            if instrument is None or instrument.kind != "option" or name in exclude:
                continue
            days = _days_left(instrument, obs.time_ms)
            if ticker.delta is None or ticker.mark_price <= 0 or days <= p.buyback_days:
                continue
            if abs(ticker.delta) >= p.buyback_delta:
                continue
            key = (abs(abs(ticker.delta) - p.target_delta), name)
            if best is None or key < best[:2]:
                best = (key[0], key[1], instrument, ticker)
        return None if best is None else (best[2], best[3])
