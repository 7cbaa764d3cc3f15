"""Candles of the paper market: ``public/get_tradingview_chart_data`` (ccxt ``fetch_ohlcv``).

A candle is drawn from the instrument's **mark** on the index grid (the perpetual's mark is the
index; an option's is its model price, :meth:`.Market.option_mark`) and from the **paper
trades** in it: open and close are the first and last mark sampled in the candle, high and low
the extremes of the marks and the trade prices, ``volume`` the traded amount in coin and
``cost`` its USD notional (the ticker's ``stats.volume`` and ``volume_usd`` conventions). Ticks
are aligned to the resolution in epoch time (a day starts at 00:00 UTC), the current candle is
partial (it ends at the clock's now), and nothing lies in the future. Everything is a function
of the seed, the venue's start and the injected clock, so a chart is byte-identical run to run.

**The past before the venue started.** A perpetual comes with one: the index path continued
backwards from the start by the same seeded GBM run in reverse time (:class:`IndexHistory`), so
it joins the live path at the start without a jump. That is what a user expects of a market
that has traded for years (ccxt's ``fetch_ohlcv`` asks for 1000 candles by default; a strategy
warming an indicator up at start-up needs them), and it stays deterministic. An option's chart
starts when the paper catalog listed it (its ``creation_timestamp``): before that it did not
exist, and a model price from before its listing would be a quote nobody could have traded.

**Cost, and how exact the candles are.** A request draws at most :data:`MAX_CANDLES` candles
(the newest ones of the window; ccxt notes that Deribit answers at most 5000 bars). Reading the
path at every one-second step is exact but costs about two microseconds a step (a 48 h window
is some 0.4 s), so:

- a window of up to :data:`FINE_SPAN_SECONDS` (48 h) is sampled at every index step for a
  perpetual, whose candles then show exactly the marks the market quoted, and every minute
  plus the candle's last second for an option (each option mark is a Black–Scholes
  evaluation);
- a longer window at a resolution under an hour is cut to its newest 48 h (sampling it coarser
  would flatten every candle);
- a longer window at an hour or more is drawn through the path's hourly points
  (:data:`~.gbm.BLOCK_STEPS`), which cost next to nothing to read: each candle runs from the first
  hourly point at or after its start to the first at or after its end (so it opens where the
  previous one closed, exactly at the boundary when the venue started on the hour); only trades
  show what happened between the points.

So one candle can look finer in a short request than in a long one; a response is always drawn
one way throughout.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bastion.simulators.paper.gbm import BLOCK_STEPS, STEP_SECONDS, GbmParams, IndexPath
from bastion.simulators.paper.instruments import Instrument
from bastion.simulators.paper.market import Market
from bastion.simulators.paper.orders import Trade

__all__ = [
    "FINE_SPAN_SECONDS",
    "MAX_CANDLES",
    "RESOLUTIONS",
    "Candle",
    "Charts",
    "IndexHistory",
]

RESOLUTIONS: Mapping[str, int] = {
    "1": 60, "3": 180, "5": 300, "10": 600, "15": 900, "30": 1800, "60": 3600,
    "120": 7200, "180": 10_800, "360": 21_600, "720": 43_200, "1D": 86_400,
}  # fmt: skip
"""Deribit's chart resolutions, in seconds."""

MAX_CANDLES = 5000
FINE_SPAN_SECONDS = 48 * 3600
OPTION_SAMPLE_SECONDS = 60
_HOUR_POINT_SECONDS = BLOCK_STEPS * STEP_SECONDS


@dataclass(frozen=True, slots=True)
class Candle:
    """One bar: its start (ms), prices, coin volume and USD cost."""

    tick: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    cost: float


class IndexHistory:
    """An index path readable at any grid step: after the venue's start and before it.

    Steps count from the path's origin and may be negative. The past is an independent seeded
    path run backwards: for ``S(t) = S0 exp(a t + σ W(t))`` with ``a = μ - σ²/2``, the price
    ``n`` steps before the origin is ``S0 exp(-a n dt + σ W'(n))`` for a fresh Brownian motion
    ``W'``, which is an :class:`~.gbm.IndexPath` with drift ``σ² - μ``. Both halves give ``S0`` at
    step 0, so the chart has no seam at the start.
    """

    def __init__(self, path: IndexPath, *, seed: int) -> None:
        self._path = path
        params = path.params
        self._past = IndexPath(
            name=f"{path.name}:past",
            params=GbmParams(spot=params.spot, vol=params.vol, drift=params.vol**2 - params.drift),
            seed=seed,
            origin=path.origin,
        )

    @property
    def origin(self) -> float:
        return self._path.origin

    def step_of(self, t: float) -> int:
        """The grid step in force at epoch seconds ``t`` (negative before the origin)."""
        return math.floor((t - self._path.origin) / STEP_SECONDS)

    def price_at_step(self, step: int) -> float:
        if step >= 0:
            return self._path.price_at_step(step)
        return self._past.price_at_step(-step)

    def price_at(self, t: float) -> float:
        return self.price_at_step(self.step_of(t))


class Charts:
    """Draws candles for any instrument of one market (see the module docstring for how)."""

    def __init__(self, market: Market, *, seed: int) -> None:
        self._market = market
        self._seed = seed
        self._indices: dict[str, IndexHistory] = {}

    def index(self, currency: str) -> IndexHistory:
        history = self._indices.get(currency)
        if history is None:
            path = self._market.index_path(currency)
            history = self._indices[currency] = IndexHistory(path, seed=self._seed)
        return history

    def candles(
        self,
        instrument: Instrument,
        tape: Sequence[Trade],
        *,
        resolution_seconds: int,
        start_ms: int,
        end_ms: int,
    ) -> list[Candle]:
        """The candles whose span meets ``[start_ms, end_ms]``, up to now, oldest first."""
        span_ms = resolution_seconds * 1000
        now_ms = self._market.now_ms
        last = min(end_ms, now_ms) // span_ms * span_ms
        first = start_ms // span_ms * span_ms
        if instrument.is_option:
            first = max(first, instrument.creation_ms // span_ms * span_ms)
        first = max(first, last - (MAX_CANDLES - 1) * span_ms)
        if first > last:
            return []
        count = (last - first) // span_ms + 1
        fine = count * resolution_seconds <= FINE_SPAN_SECONDS
        if not fine and resolution_seconds < _HOUR_POINT_SECONDS:
            first = last - (FINE_SPAN_SECONDS // resolution_seconds - 1) * span_ms
            fine = True
        draw = self._fine_marks if fine else self._hourly_marks
        timestamps = [t.timestamp for t in tape]
        result = []
        for tick in range(first, last + 1, span_ms):
            marks = draw(instrument, tick / 1000, (tick + span_ms) / 1000)
            lo, hi = bisect_left(timestamps, tick), bisect_left(timestamps, tick + span_ms)
            candle = _candle(tick, marks, tape[lo:hi], instrument)
            if candle is not None:
                result.append(candle)
        return result

    def chart(
        self,
        instrument: Instrument,
        tape: Sequence[Trade],
        *,
        resolution: str,
        start_ms: int,
        end_ms: int,
    ) -> dict[str, Any]:
        """The ``public/get_tradingview_chart_data`` result: parallel arrays and a status."""
        candles = self.candles(
            instrument,
            tape,
            resolution_seconds=RESOLUTIONS[resolution],
            start_ms=start_ms,
            end_ms=end_ms,
        )
        return {
            "status": "ok" if candles else "no_data",
            "ticks": [c.tick for c in candles],
            "open": [c.open for c in candles],
            "high": [c.high for c in candles],
            "low": [c.low for c in candles],
            "close": [c.close for c in candles],
            "volume": [c.volume for c in candles],
            "cost": [c.cost for c in candles],
        }

    # -- sampling -----------------------------------------------------------------------
    def _bounds(self, instrument: Instrument, start: float, end: float) -> tuple[float, float]:
        """The part of ``[start, end)`` the instrument existed in, cut at now (inclusive)."""
        if instrument.is_option:
            start = max(start, instrument.creation_ms / 1000)
        return start, min(end, self._market.time)

    def _mark(self, instrument: Instrument) -> Callable[[float], float]:
        index = self.index(instrument.currency)
        if not instrument.is_option:
            return index.price_at
        market = self._market
        return lambda t: market.option_mark(instrument, index.price_at(t), round(t * 1000))

    def _fine_marks(self, instrument: Instrument, start: float, end: float) -> list[float]:
        """Every index step in the candle (perpetual), or every minute and its last second."""
        lo, hi = self._bounds(instrument, start, end)
        if lo > hi:
            return []
        index = self.index(instrument.currency)
        if not instrument.is_option:
            first = index.step_of(lo)
            last = index.step_of(hi) if hi < end else index.step_of(end) - 1
            return [index.price_at_step(step) for step in range(first, last + 1)]
        times = [lo + k * OPTION_SAMPLE_SECONDS for k in range(_samples(lo, hi))]
        closing = hi if hi < end else end - STEP_SECONDS
        if closing > times[-1]:
            times.append(closing)
        mark = self._mark(instrument)
        return [mark(t) for t in times]

    def _hourly_marks(self, instrument: Instrument, start: float, end: float) -> list[float]:
        """The hourly points from the first at or after ``start`` to the first at or after
        ``end`` (or now, for the current candle)."""
        lo, _ = self._bounds(instrument, start, end)
        now = self._market.time
        if lo > now:
            return []
        origin = self.index(instrument.currency).origin
        k = math.ceil((lo - origin) / _HOUR_POINT_SECONDS)
        times = []
        while (t := origin + k * _HOUR_POINT_SECONDS) <= now:
            times.append(t)
            if t >= end:
                break
            k += 1
        if not times or times[-1] < end:
            times.append(now)  # the closing point is still ahead: close at now
        mark = self._mark(instrument)
        return [mark(t) for t in times]


def _samples(lo: float, hi: float) -> int:
    """How many option samples, a minute apart from ``lo``, fall in ``[lo, hi]``."""
    return math.floor((hi - lo) / OPTION_SAMPLE_SECONDS) + 1


def _candle(
    tick: int, marks: list[float], trades: Sequence[Trade], instrument: Instrument
) -> Candle | None:
    if not marks:
        return None
    prices = [*marks, *(t.price for t in trades)]
    coin = instrument.is_option
    volume = sum((t.amount if coin else t.amount / t.price for t in trades), 0.0)
    cost = sum((t.amount * t.index_price if coin else t.amount for t in trades), 0.0)
    return Candle(
        tick=tick,
        open=marks[0],
        high=max(prices),
        low=min(prices),
        close=marks[-1],
        volume=round(volume, 8),
        cost=round(cost, 2),
    )
