"""Position arithmetic, fees and margin rules: the money maths, without HTTP or a clock."""

from __future__ import annotations

import pytest

from bastion.simulators.paper.accounts import Ledger, Position, fee_for
from bastion.simulators.paper.instruments import Catalog, Instrument
from bastion.simulators.paper.margin import position_im, value_ledger
from bastion.simulators.paper.market import Quote
from bastion.simulators.paper.specs import CURRENCIES

_CATALOG = Catalog(CURRENCIES, created_ms=1_767_225_600_000)
_CATALOG.list_due(1_767_225_600_000, lambda code: CURRENCIES[code].spot)


def instrument(name: str) -> Instrument:
    found = _CATALOG.get(name)
    assert found is not None
    return found


PERP = instrument("BTC-PERPETUAL")
CALL = instrument("BTC-2JAN26-100000-C")
PUT = instrument("BTC-2JAN26-80000-P")


def quote(inst: Instrument, *, mark: float, index: float = 90_000.0) -> Quote:
    return Quote(inst, index, mark, mark * 0.97, mark * 1.03, 1.0, inst.tick_size, 1e9)


def test_perp_entries_use_the_harmonic_mean() -> None:
    """Adding 100 USD at 90k and 100 USD at 100k averages to 200/(100/90k+100/100k)."""
    position = Position(PERP)
    position.apply(100, 90_000)
    position.apply(100, 100_000)
    assert position.average_price == pytest.approx(200 / (100 / 90_000 + 100 / 100_000))
    assert position.apply(-200, position.average_price) == pytest.approx(0, abs=1e-15)
    assert position.size == 0
    assert position.average_price == 0


def test_perp_pnl_is_inverse() -> None:
    """A 9,000 USD long from 90k closed at 99k earns 9000*(1/90k - 1/99k) BTC; shorts mirror it."""
    long = Position(PERP)
    long.apply(9_000, 90_000)
    assert long.floating_pl(99_000) == pytest.approx(9_000 * (1 / 90_000 - 1 / 99_000))
    assert long.apply(-9_000, 99_000) == pytest.approx(9_000 * (1 / 90_000 - 1 / 99_000))
    short = Position(PERP)
    short.apply(-9_000, 90_000)
    assert short.floating_pl(99_000) == pytest.approx(-9_000 * (1 / 90_000 - 1 / 99_000))


def test_option_position_flips_through_zero() -> None:
    """Selling 1.5 against a 1.0 long realises the 1.0 and opens a 0.5 short at the sale price."""
    position = Position(CALL)
    position.apply(1.0, 0.02)
    assert position.apply(-1.5, 0.03) == pytest.approx(0.01)
    assert position.size == -0.5
    assert position.average_price == 0.03


def test_ledger_pays_premium_and_fees() -> None:
    """Buying an option moves premium and fee out of the balance; a perp fill moves only the fee."""
    ledger = Ledger("BTC", 10.0)
    fee = fee_for(CALL, amount=1.0, price=0.02, maker=False)
    ledger.fill(CALL, signed_amount=1.0, price=0.02, fee=fee)
    assert ledger.balance == pytest.approx(10.0 - 0.02 - fee)
    perp_fee = fee_for(PERP, amount=9_000, price=90_000, maker=False)
    ledger.fill(PERP, signed_amount=9_000, price=90_000, fee=perp_fee)
    assert ledger.balance == pytest.approx(10.0 - 0.02 - fee - perp_fee)
    assert perp_fee == pytest.approx(0.0005 * 9_000 / 90_000)


def test_option_fee_is_capped_at_an_eighth_of_the_premium() -> None:
    """0.03 % of the amount, but never more than 12.5 % of the option's price."""
    assert fee_for(CALL, amount=1.0, price=0.05, maker=False) == pytest.approx(0.0003)
    assert fee_for(CALL, amount=1.0, price=0.0008, maker=True) == pytest.approx(0.0001)


def test_short_option_margin_rule() -> None:
    """IM per unit = max(0.15 - OTM/index, 0.10) + mark; long options need none."""
    otm_call = quote(CALL, mark=0.01)  # 100k call, index 90k: 10k OTM
    assert position_im(CALL, -2.0, otm_call) == pytest.approx(
        2 * (max(0.15 - 10_000 / 90_000, 0.1) + 0.01)
    )
    deep_otm = quote(PUT, mark=0.001, index=120_000)  # 40k OTM: floor applies
    assert position_im(PUT, -1.0, deep_otm) == pytest.approx(0.1 + 0.001)
    assert position_im(CALL, 3.0, otm_call) == 0


def test_perp_margin_is_one_percent_of_notional() -> None:
    """A 90,000 USD perp position at 90k needs 0.01 BTC of initial margin."""
    assert position_im(PERP, -90_000, quote(PERP, mark=90_000)) == pytest.approx(0.01)


def test_valuation_identities() -> None:
    """equity = balance + options value + perp PnL; available = equity - long options - IM."""
    ledger = Ledger("BTC", 10.0)
    ledger.fill(CALL, signed_amount=1.0, price=0.02, fee=0.0)
    ledger.fill(PUT, signed_amount=-1.0, price=0.01, fee=0.0)
    ledger.fill(PERP, signed_amount=9_000, price=90_000, fee=0.0)
    marks = {
        CALL.name: quote(CALL, mark=0.025),
        PUT.name: quote(PUT, mark=0.008),
        PERP.name: quote(PERP, mark=100_000),
    }
    valuation, risks = value_ledger(ledger, [], lambda inst: marks[inst.name])
    perp_pl = 9_000 * (1 / 90_000 - 1 / 100_000)
    assert valuation.equity == pytest.approx(10.0 - 0.02 + 0.01 + 0.025 - 0.008 + perp_pl)
    assert valuation.margin_balance == pytest.approx(valuation.equity - 0.025)
    im = risks[PUT.name].initial_margin + risks[PERP.name].initial_margin
    assert valuation.initial_margin == pytest.approx(im)
    assert valuation.available_funds == pytest.approx(valuation.margin_balance - im)
