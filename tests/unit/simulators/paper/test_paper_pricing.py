"""Black–Scholes prices, greeks, implied volatility and the smile."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.simulators.paper.pricing import bs_greeks, bs_price, implied_vol, norm_cdf, smile_vol

HULL = {"spot": 42.0, "strike": 40.0, "years": 0.5, "vol": 0.2, "rate": 0.1}


def test_textbook_call_and_put() -> None:
    """Hull's example (S=42, K=40, r=10 %, sigma=20 %, T=0.5) prices the call 4.76, the put 0.81."""
    assert bs_price(is_call=True, **HULL) == pytest.approx(4.7594, abs=1e-4)
    assert bs_price(is_call=False, **HULL) == pytest.approx(0.8086, abs=1e-4)


@given(
    spot=st.floats(1_000, 200_000),
    moneyness=st.floats(0.5, 1.5),
    years=st.floats(1e-4, 2.0),
    vol=st.floats(0.05, 2.0),
    rate=st.floats(0.0, 0.1),
)
def test_put_call_parity(
    spot: float, moneyness: float, years: float, vol: float, rate: float
) -> None:
    """C - P = S - K e^(-rT) for any inputs."""
    strike = spot * moneyness
    terms = {"spot": spot, "strike": strike, "years": years, "vol": vol, "rate": rate}
    parity = spot - strike * math.exp(-rate * years)
    gap = bs_price(is_call=True, **terms) - bs_price(is_call=False, **terms)
    assert gap == pytest.approx(parity, rel=1e-9, abs=1e-6 * spot)


@pytest.mark.parametrize("is_call", [True, False])
def test_greeks_match_finite_differences(is_call: bool) -> None:
    """Each greek matches a bumped-price difference in Deribit's units (vega per 1 %, theta/day)."""
    greeks = bs_greeks(is_call=is_call, **HULL)

    def price(**bump: float) -> float:
        return bs_price(is_call=is_call, **(HULL | bump))

    h = 0.01
    s = HULL["spot"]
    assert greeks.delta == pytest.approx(
        (price(spot=s + h) - price(spot=s - h)) / (2 * h), rel=1e-5
    )
    gamma = (price(spot=s + h) - 2 * price() + price(spot=s - h)) / h**2
    assert greeks.gamma == pytest.approx(gamma, rel=1e-4)
    vega = (price(vol=0.2 + 1e-4) - price(vol=0.2 - 1e-4)) / 2e-4 / 100
    assert greeks.vega == pytest.approx(vega, rel=1e-5)
    theta = -(price(years=0.5 + 1e-5) - price(years=0.5 - 1e-5)) / 2e-5 / 365
    assert greeks.theta == pytest.approx(theta, rel=1e-4)
    rho = (price(rate=0.1 + 1e-5) - price(rate=0.1 - 1e-5)) / 2e-5 / 100
    assert greeks.rho == pytest.approx(rho, rel=1e-4)


def test_expiry_is_intrinsic() -> None:
    """At expiry the price is intrinsic value and delta is 0 or ±1."""
    assert bs_price(spot=100, strike=90, years=0, vol=0.5, is_call=True) == 10
    assert bs_price(spot=100, strike=90, years=0, vol=0.5, is_call=False) == 0
    assert bs_greeks(spot=100, strike=110, years=0, vol=0.5, is_call=False).delta == -1
    assert bs_greeks(spot=100, strike=110, years=0, vol=0.5, is_call=True).delta == 0


@given(vol=st.floats(0.05, 3.0), moneyness=st.floats(0.7, 1.3), is_call=st.booleans())
def test_implied_vol_reprices(vol: float, moneyness: float, is_call: bool) -> None:
    """The implied volatility of a price reprices it to within a millionth of the spot."""
    spot, strike = 90_000.0, 90_000.0 * moneyness
    price = bs_price(spot=spot, strike=strike, years=0.1, vol=vol, is_call=is_call)
    found = implied_vol(price, spot=spot, strike=strike, years=0.1, is_call=is_call)
    assert found is not None
    again = bs_price(spot=spot, strike=strike, years=0.1, vol=found, is_call=is_call)
    assert again == pytest.approx(price, abs=1e-6 * spot)


def test_implied_vol_of_an_option_with_no_time_value_left() -> None:
    """A deep in-the-money call priced at intrinsic still inverts (found by hypothesis)."""
    spot, strike = 90_000.0, 90_000.0 * 0.75
    price = bs_price(spot=spot, strike=strike, years=0.1, vol=0.11623729538535611, is_call=True)
    found = implied_vol(price, spot=spot, strike=strike, years=0.1, is_call=True)
    assert found is not None
    again = bs_price(spot=spot, strike=strike, years=0.1, vol=found, is_call=True)
    assert again == pytest.approx(price, abs=1e-6 * spot)


def test_implied_vol_recovers_an_at_the_money_vol() -> None:
    """Where vega is large the inversion recovers the volatility itself."""
    price = bs_price(spot=90_000, strike=90_000, years=0.1, vol=0.55, is_call=True)
    found = implied_vol(price, spot=90_000, strike=90_000, years=0.1, is_call=True)
    assert found == pytest.approx(0.55, abs=1e-9)


def test_implied_vol_out_of_bounds_is_none() -> None:
    """A price below intrinsic value has no implied volatility."""
    assert implied_vol(1.0, spot=100, strike=50, years=0.1, is_call=True) is None


def test_smile_is_symmetric_in_log_moneyness() -> None:
    """The smile adds smile_coef * ln(K/F)^2: equal for K and F^2/K, base at the money."""
    assert smile_vol(base_vol=0.5, smile_coef=0.8, strike=100, forward=100) == 0.5
    up = smile_vol(base_vol=0.5, smile_coef=0.8, strike=125, forward=100)
    down = smile_vol(base_vol=0.5, smile_coef=0.8, strike=80, forward=100)
    assert up == pytest.approx(down)
    assert up == pytest.approx(0.5 + 0.8 * math.log(1.25) ** 2)


def test_norm_cdf_known_values() -> None:
    """N(0) = 0.5 and N(1.96) = 0.975."""
    assert norm_cdf(0.0) == 0.5
    assert norm_cdf(1.959964) == pytest.approx(0.975, abs=1e-6)
