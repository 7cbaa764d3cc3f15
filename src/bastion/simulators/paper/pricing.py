"""Black–Scholes prices, greeks and implied volatility, plus the paper market's smile.

Everything here is in USD and pure. Deribit's BTC and ETH options are inverse: quoted and
settled in coin, so the market divides these USD values by the index (``price_in_coin =
bs_usd / index``). The paper market has no futures curve and no rates, so the forward is the
index and ``rate`` is 0 there; the ``rate`` argument exists for textbook checks.

Greek units follow Deribit's ticker: delta per 1 USD of underlying, gamma per USD², vega in USD
per 1 volatility point (1 %), theta in USD per calendar day, rho in USD per 1 % of rate.

The smile is deliberately simple (one parameter, symmetric in log-moneyness, no term
structure): ``iv = base_vol + smile_coef * ln(K / F) ** 2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "Greeks",
    "bs_greeks",
    "bs_price",
    "implied_vol",
    "norm_cdf",
    "norm_pdf",
    "smile_vol",
]

_SQRT2 = math.sqrt(2.0)
_MIN_VOL = 1e-4
_MAX_VOL = 10.0


def norm_cdf(x: float) -> float:
    """Standard normal cumulative distribution."""
    return 0.5 * (1.0 + math.erf(x / _SQRT2))


def norm_pdf(x: float) -> float:
    """Standard normal density."""
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


@dataclass(frozen=True, slots=True)
class Greeks:
    """Sensitivities of one option (units in the module docstring)."""

    delta: float
    gamma: float
    vega: float
    theta: float
    rho: float


def _intrinsic(spot: float, strike: float, is_call: bool) -> float:
    return max(spot - strike, 0.0) if is_call else max(strike - spot, 0.0)


def _d1_d2(
    spot: float, strike: float, years: float, vol: float, rate: float
) -> tuple[float, float]:
    vol_sqrt_t = vol * math.sqrt(years)
    d1 = (math.log(spot / strike) + (rate + vol * vol / 2.0) * years) / vol_sqrt_t
    return d1, d1 - vol_sqrt_t


def bs_price(
    *, spot: float, strike: float, years: float, vol: float, is_call: bool, rate: float = 0.0
) -> float:
    """Black–Scholes price in USD; intrinsic value at or after expiry or at zero volatility."""
    if years <= 0.0 or vol <= 0.0:
        return _intrinsic(spot, strike * math.exp(-rate * max(years, 0.0)), is_call)
    d1, d2 = _d1_d2(spot, strike, years, vol, rate)
    discounted = strike * math.exp(-rate * years)
    if is_call:
        return spot * norm_cdf(d1) - discounted * norm_cdf(d2)
    return discounted * norm_cdf(-d2) - spot * norm_cdf(-d1)


def bs_greeks(
    *, spot: float, strike: float, years: float, vol: float, is_call: bool, rate: float = 0.0
) -> Greeks:
    """Black–Scholes greeks; at expiry delta is 0 or ±1 and the rest are 0."""
    if years <= 0.0 or vol <= 0.0:
        itm = spot > strike if is_call else spot < strike
        delta = (1.0 if is_call else -1.0) if itm else 0.0
        return Greeks(delta=delta, gamma=0.0, vega=0.0, theta=0.0, rho=0.0)
    d1, d2 = _d1_d2(spot, strike, years, vol, rate)
    sqrt_t = math.sqrt(years)
    discounted = strike * math.exp(-rate * years)
    pdf = norm_pdf(d1)
    decay = -spot * pdf * vol / (2.0 * sqrt_t)
    if is_call:
        delta = norm_cdf(d1)
        theta = decay - rate * discounted * norm_cdf(d2)
        rho = discounted * years * norm_cdf(d2)
    else:
        delta = norm_cdf(d1) - 1.0
        theta = decay + rate * discounted * norm_cdf(-d2)
        rho = -discounted * years * norm_cdf(-d2)
    return Greeks(
        delta=delta,
        gamma=pdf / (spot * vol * sqrt_t),
        vega=spot * pdf * sqrt_t / 100.0,
        theta=theta / 365.0,
        rho=rho / 100.0,
    )


def implied_vol(
    price: float, *, spot: float, strike: float, years: float, is_call: bool, rate: float = 0.0
) -> float | None:
    """The volatility that reprices ``price`` (USD), by bisection; None if out of bounds."""
    if years <= 0.0:
        return None
    low, high = _MIN_VOL, _MAX_VOL
    # A deep in-the-money option has no time value left to invert: its price equals the
    # lowest-vol price up to rounding, so allow a rounding-sized tolerance at both ends.
    tolerance = 1e-9 * spot
    if not (
        bs_price(spot=spot, strike=strike, years=years, vol=low, is_call=is_call, rate=rate)
        - tolerance
        <= price
        <= bs_price(spot=spot, strike=strike, years=years, vol=high, is_call=is_call, rate=rate)
        + tolerance
    ):
        return None
    for _ in range(80):
        mid = (low + high) / 2.0
        value = bs_price(spot=spot, strike=strike, years=years, vol=mid, is_call=is_call, rate=rate)
        if value < price:
            low = mid
        else:
            high = mid
    return (low + high) / 2.0


def smile_vol(*, base_vol: float, smile_coef: float, strike: float, forward: float) -> float:
    """The paper market's implied volatility: ``base_vol + smile_coef * ln(K/F)**2``."""
    return base_vol + smile_coef * math.log(strike / forward) ** 2
