"""The paper market's parameters per currency: index dynamics, smile, listing and fees.

These are the constants the module docstrings of :mod:`.gbm`, :mod:`.pricing` and
:mod:`.instruments` refer to, gathered so a reader sees the whole market at a glance. Values
are round numbers near Deribit's, not calibrated to anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "CURRENCIES",
    "OPTION_COMMISSION",
    "PERP_MAKER_COMMISSION",
    "PERP_MAX_LEVERAGE",
    "PERP_TAKER_COMMISSION",
    "CurrencySpec",
]


@dataclass(frozen=True, slots=True)
class CurrencySpec:
    """Everything the market needs to know about one currency (index, listing, fees)."""

    code: str
    long_name: str
    coin_type: str
    spot: float
    vol: float
    smile_coef: float
    strike_step: float
    perp_contract_size: float
    perp_tick: float
    option_min_amount: float
    option_tick: float = 0.0001
    withdrawal_fee: float = 0.0001

    @property
    def index_name(self) -> str:
        return f"{self.code.lower()}_usd"


CURRENCIES: Mapping[str, CurrencySpec] = {
    "BTC": CurrencySpec(
        code="BTC",
        long_name="Bitcoin",
        coin_type="BITCOIN",
        spot=90_000.0,
        vol=0.50,
        smile_coef=0.8,
        strike_step=1000.0,
        perp_contract_size=10.0,
        perp_tick=0.5,
        option_min_amount=0.1,
        withdrawal_fee=0.0001,
    ),
    "ETH": CurrencySpec(
        code="ETH",
        long_name="Ethereum",
        coin_type="ETHER",
        spot=3_000.0,
        vol=0.65,
        smile_coef=0.8,
        strike_step=50.0,
        perp_contract_size=1.0,
        perp_tick=0.05,
        option_min_amount=1.0,
        withdrawal_fee=0.0016,
    ),
}

# Fees as fractions: options charge 0.03 % of the underlying (capped at 12.5 % of the option's
# price, see accounts.py) to maker and taker alike; the perpetual charges takers 0.05 % of
# notional and makers nothing. Deribit's published schedule, rounded.
OPTION_COMMISSION = 0.0003
PERP_TAKER_COMMISSION = 0.0005
PERP_MAKER_COMMISSION = 0.0
PERP_MAX_LEVERAGE = 100
