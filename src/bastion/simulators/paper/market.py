"""The paper market: index paths, the listed instruments and a quote for each of them.

The market is a pure function of (seed, time): nobody else trades, so quotes never react to
our orders and the book is a fixed shape drawn around the mark:

- **perpetual**: mark = index (no basis, funding 0); best bid is the tick at or below the mark
  and the ask one tick above; the price band is ±10 % of the mark.
- **option**: mark = Black–Scholes on the index with the smile of :mod:`.pricing`, in coin;
  bid and ask sit ``max(1 tick, 3 % of mark)`` either side, rounded outwards to the tick; a bid
  under one tick is no bid (price and amount 0, as Deribit shows an empty side). The band runs
  from one tick to the mark plus the larger of 0.01 coin and the mark.
- **book**: ten levels a tick apart on each side; level ``i`` shows ``(i + 1)`` times a base
  size. The sizes are cosmetic: orders fill in full at the touch (see :mod:`.venue`).

Time only moves forward: a clock that steps back (a wall clock corrected by NTP) is ignored
until it passes the latest time seen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bastion.simulators.paper.errors import INVALID_INSTRUMENT, RpcError
from bastion.simulators.paper.gbm import SECONDS_PER_YEAR, STEP_SECONDS, GbmParams, IndexPath
from bastion.simulators.paper.instruments import Catalog, Instrument
from bastion.simulators.paper.pricing import Greeks, bs_greeks, bs_price, implied_vol, smile_vol
from bastion.simulators.paper.specs import CURRENCIES, CurrencySpec

__all__ = ["Activity", "Market", "Quote", "greeks_dict", "to_ms"]

OPTION_HALF_SPREAD = 0.03
PERP_PRICE_BAND = 0.10
BOOK_LEVELS = 10


def to_ms(seconds: float) -> int:
    """Epoch milliseconds, rounded (not truncated) so 0.001 s never becomes 0.999 ms."""
    return round(seconds * 1000)


@dataclass(frozen=True, slots=True)
class Quote:
    """One instrument's prices at one grid step. ``best_bid_price`` 0 means no bid."""

    instrument: Instrument
    index_price: float
    mark_price: float
    best_bid_price: float
    best_ask_price: float
    level_amount: float
    min_price: float
    max_price: float
    mark_iv: float | None = None
    bid_iv: float | None = None
    ask_iv: float | None = None
    greeks: Greeks | None = None

    @property
    def best_bid_amount(self) -> float:
        return self.level_amount if self.best_bid_price > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Activity:
    """What paper traders did in an instrument: the ticker's stats and open interest."""

    last_price: float | None = None
    volume: float = 0.0
    volume_usd: float = 0.0
    high: float | None = None
    low: float | None = None
    open_interest: float = 0.0


class Market:
    """Index paths, listings and quotes; deterministic for a seed and a start time."""

    def __init__(
        self, *, seed: int, start: float, specs: Mapping[str, CurrencySpec] = CURRENCIES
    ) -> None:
        self.specs = specs
        self._paths = {
            code: IndexPath(
                name=spec.index_name,
                params=GbmParams(spot=spec.spot, vol=spec.vol),
                seed=seed,
                origin=start,
            )
            for code, spec in specs.items()
        }
        self._time = start
        self._step = self._paths_step(start)
        self._quotes: dict[str, Quote] = {}
        self.catalog = Catalog(specs, created_ms=to_ms(start))
        self.catalog.list_due(self.now_ms, self.index)
        self._next_expiry_ms = self._earliest_expiry()

    # -- time ---------------------------------------------------------------------------
    @property
    def time(self) -> float:
        return self._time

    @property
    def now_ms(self) -> int:
        return to_ms(self._time)

    @property
    def step(self) -> int:
        """The index grid step in force; also the order books' ``change_id`` base."""
        return self._step

    def _paths_step(self, t: float) -> int:
        return next(iter(self._paths.values())).step_at(t)

    def _earliest_expiry(self) -> int:
        return min(i.expiration_ms for i in self.catalog.active())

    def advance(self, t: float) -> list[Instrument]:
        """Move to epoch seconds ``t``; return the instruments that expired on the way."""
        if t <= self._time:
            return []
        self._time = t
        step = self._paths_step(t)
        if step != self._step:
            self._step = step
            self._quotes.clear()
        if self.now_ms < self._next_expiry_ms:
            return []
        expired = self.catalog.expire_due(self.now_ms)
        self.catalog.list_due(self.now_ms, self.index)
        self._next_expiry_ms = self._earliest_expiry()
        return expired

    # -- prices ---------------------------------------------------------------------------
    def index(self, currency: str) -> float:
        return self._paths[currency].price_at(self._time)

    def shock(self, currency: str, pct: float) -> float:
        """Move ``currency``'s index by ``pct`` percent from the next grid step on; returns the
        index it then has.

        From the next step, not this one: quotes, books and the accounts' risk are cached per
        grid step, so a change inside a step would leave some of them priced off the old index.
        """
        path = self._paths.get(currency)
        if path is None:
            raise KeyError(currency)
        t = self._time + STEP_SECONDS
        path.shock(t, 1 + pct / 100)
        return path.price_at(t)

    def index_at(self, currency: str, t: float) -> float:
        """The index at any time since the start: settlement reads the past."""
        return self._paths[currency].price_at(t)

    def index_path(self, currency: str) -> IndexPath:
        """The seeded path behind a currency's index (charts read it step by step)."""
        return self._paths[currency]

    def instrument(self, name: str) -> Instrument:
        """An active instrument, or Deribit's 10020 for anything else."""
        instrument = self.catalog.get(name)
        if instrument is None:
            reason = {"reason": "unknown or expired instrument", "param": "instrument_name"}
            raise RpcError(INVALID_INSTRUMENT, data=reason)
        return instrument

    def quote(self, instrument: Instrument) -> Quote:
        """The instrument's quote at the current grid step (cached for the step)."""
        quote = self._quotes.get(instrument.name)
        if quote is None:
            option = instrument.is_option
            quote = self._option_quote(instrument) if option else self._perp_quote(instrument)
            self._quotes[instrument.name] = quote
        return quote

    def _perp_quote(self, instrument: Instrument) -> Quote:
        mark = self.index(instrument.currency)
        bid = instrument.floor_price(mark)
        return Quote(
            instrument=instrument,
            index_price=mark,
            mark_price=mark,
            best_bid_price=bid,
            best_ask_price=instrument.floor_price(bid + instrument.tick_size),
            level_amount=instrument.contract_size * 1000,
            min_price=instrument.ceil_price(mark * (1 - PERP_PRICE_BAND)),
            max_price=instrument.floor_price(mark * (1 + PERP_PRICE_BAND)),
        )

    def years_to_expiry(self, instrument: Instrument, at_ms: int | None = None) -> float:
        """Years from ``at_ms`` (default now) to the expiry, never negative."""
        now = self.now_ms if at_ms is None else at_ms
        return max(0.0, (instrument.expiration_ms - now) / 1000 / SECONDS_PER_YEAR)

    def _smile(self, instrument: Instrument, spot: float) -> float:
        spec = self.specs[instrument.currency]
        strike = instrument.strike or spot
        return smile_vol(base_vol=spec.vol, smile_coef=spec.smile_coef, strike=strike, forward=spot)

    def option_mark(self, instrument: Instrument, spot: float, at_ms: int) -> float:
        """The model mark, in coin, of an option at index ``spot`` and time ``at_ms``.

        The same arithmetic as the live quote, so a chart drawn from past marks agrees with the
        marks the market quoted at the time.
        """
        strike = instrument.strike or spot
        years = self.years_to_expiry(instrument, at_ms)
        vol = self._smile(instrument, spot)
        usd = bs_price(spot=spot, strike=strike, years=years, vol=vol, is_call=instrument.is_call)
        return round(usd / spot, 8)

    def _option_quote(self, instrument: Instrument) -> Quote:
        spot = self.index(instrument.currency)
        strike = instrument.strike or spot
        years = self.years_to_expiry(instrument)
        is_call = instrument.is_call
        vol = self._smile(instrument, spot)
        mark = self.option_mark(instrument, spot, self.now_ms)
        tick = instrument.tick_size
        half = max(tick, OPTION_HALF_SPREAD * mark)
        bid = instrument.floor_price(mark - half)
        bid = bid if bid >= tick else 0.0
        ask = max(instrument.ceil_price(mark + half), tick)

        def iv_percent(price: float) -> float:
            found = implied_vol(
                price * spot, spot=spot, strike=strike, years=years, is_call=is_call
            )
            return 0.0 if found is None else round(found * 100, 2)

        return Quote(
            instrument=instrument,
            index_price=spot,
            mark_price=mark,
            best_bid_price=bid,
            best_ask_price=ask,
            level_amount=instrument.min_trade_amount * 10,
            min_price=tick,
            max_price=instrument.ceil_price(mark + max(0.01, mark)),
            mark_iv=round(vol * 100, 2),
            bid_iv=iv_percent(bid) if bid > 0 else 0.0,
            ask_iv=iv_percent(ask),
            greeks=bs_greeks(spot=spot, strike=strike, years=years, vol=vol, is_call=is_call),
        )

    # -- views ------------------------------------------------------------------------------
    def ticker(self, instrument: Instrument, activity: Activity) -> dict[str, Any]:
        """The ``public/ticker`` result: every field of Deribit's ticker that clients read."""
        quote = self.quote(instrument)
        data: dict[str, Any] = {
            "timestamp": self.now_ms,
            "state": "open",
            "stats": {
                "volume": round(activity.volume, 8),
                "volume_usd": round(activity.volume_usd, 2),
                "price_change": None,
                "low": activity.low,
                "high": activity.high,
            },
            "open_interest": round(activity.open_interest, 8),
            "min_price": quote.min_price,
            "max_price": quote.max_price,
            "mark_price": quote.mark_price,
            "last_price": activity.last_price,
            "instrument_name": instrument.name,
            "index_price": quote.index_price,
            "estimated_delivery_price": quote.index_price,
            "best_bid_price": quote.best_bid_price,
            "best_bid_amount": quote.best_bid_amount,
            "best_ask_price": quote.best_ask_price,
            "best_ask_amount": quote.level_amount,
        }
        if instrument.is_option and quote.greeks is not None:
            data |= {
                "underlying_price": quote.index_price,
                "underlying_index": "index_price",
                "interest_rate": 0.0,
                "bid_iv": quote.bid_iv,
                "ask_iv": quote.ask_iv,
                "mark_iv": quote.mark_iv,
                "greeks": greeks_dict(quote.greeks),
            }
        else:
            data |= {"funding_8h": 0.0, "current_funding": 0.0, "interest_value": 0.0}
        return data

    def order_book(self, instrument: Instrument, depth: int, activity: Activity) -> dict[str, Any]:
        """The ``public/get_order_book`` result: the ticker plus ``depth`` levels a side."""
        quote = self.quote(instrument)
        levels = max(1, min(depth, BOOK_LEVELS))
        tick = instrument.tick_size
        bids = [
            [instrument.floor_price(quote.best_bid_price - i * tick), quote.level_amount * (i + 1)]
            for i in range(levels)
            if quote.best_bid_price - i * tick >= tick - 1e-12
        ]
        asks = [
            [instrument.floor_price(quote.best_ask_price + i * tick), quote.level_amount * (i + 1)]
            for i in range(levels)
        ]
        book = self.ticker(instrument, activity)
        book |= {"bids": bids, "asks": asks, "change_id": self._step + 1}
        return book


def greeks_dict(greeks: Greeks) -> dict[str, float]:
    """Greeks rounded the way Deribit shows them (gamma kept finer: it is tiny for BTC)."""
    return {
        "delta": round(greeks.delta, 5),
        "gamma": round(greeks.gamma, 8),
        "vega": round(greeks.vega, 5),
        "theta": round(greeks.theta, 5),
        "rho": round(greeks.rho, 5),
    }
