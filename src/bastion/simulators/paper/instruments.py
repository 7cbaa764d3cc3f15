"""What the paper exchange lists: one perpetual per currency and options on an expiry grid.

Listing rules (all expiries at 08:00 UTC, like Deribit):

- **daily**: the next three 08:00 instants;
- **weekly**: the next four Fridays;
- **monthly**: the last Friday of the next three months (the current month's if still ahead).

An expiry on several grids takes the longest period's ``settlement_period`` (month > week >
day). Strikes are listed once, when the expiry is first listed, on a fixed step around the
index of that moment (about ±30 %); they are never added later, so a big move can leave an
expiry without at-the-money strikes, as happens on a real exchange between listings.
Simplifications: one tick size per kind (Deribit steps the option tick up above 0.005), no
dated futures, no linear (USDC) instruments.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from bastion.simulators.paper.specs import (
    OPTION_COMMISSION,
    PERP_MAKER_COMMISSION,
    PERP_MAX_LEVERAGE,
    PERP_TAKER_COMMISSION,
    CurrencySpec,
)

__all__ = [
    "PERPETUAL_EXPIRY_MS",
    "Catalog",
    "Instrument",
    "expiry_schedule",
    "option_name",
]

PERPETUAL_EXPIRY_MS = 32_503_708_800_000
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_PERIOD_RANK = {"day": 0, "week": 1, "month": 2}
_EXPIRY_HOUR = 8
_FRIDAY = 4
_STRIKE_RANGE = 0.30
_EPS = 1e-9
_EXPIRED_KEPT_MS = 7 * 86_400_000


@dataclass(frozen=True, slots=True)
class Instrument:
    """One listed instrument with the rounding rules orders are checked against."""

    name: str
    currency: str
    kind: Literal["future", "option"]
    instrument_id: int
    tick_size: float
    min_trade_amount: float
    contract_size: float
    creation_ms: int
    expiration_ms: int
    settlement_period: str
    strike: float | None = None
    option_type: Literal["call", "put"] | None = None

    @property
    def is_option(self) -> bool:
        return self.kind == "option"

    @property
    def is_call(self) -> bool:
        return self.option_type == "call"

    @property
    def amount_step(self) -> float:
        """Amounts must be multiples of this: contract size for perps, the minimum for options."""
        return self.min_trade_amount if self.is_option else self.contract_size

    @property
    def maker_commission(self) -> float:
        return OPTION_COMMISSION if self.is_option else PERP_MAKER_COMMISSION

    @property
    def taker_commission(self) -> float:
        return OPTION_COMMISSION if self.is_option else PERP_TAKER_COMMISSION

    def _round(self, ticks: float) -> float:
        decimals = max(0, -math.floor(math.log10(self.tick_size) + _EPS)) + 1
        return round(ticks * self.tick_size, decimals)

    def floor_price(self, price: float) -> float:
        """The highest tick at or below ``price``."""
        return self._round(math.floor(price / self.tick_size + _EPS))

    def ceil_price(self, price: float) -> float:
        """The lowest tick at or above ``price``."""
        return self._round(math.ceil(price / self.tick_size - _EPS))

    def on_tick(self, price: float) -> bool:
        ticks = price / self.tick_size
        return abs(ticks - round(ticks)) <= 1e-6

    def on_amount_step(self, amount: float) -> bool:
        steps = amount / self.amount_step
        return abs(steps - round(steps)) <= 1e-6

    def to_deribit(self) -> dict[str, Any]:
        """The ``public/get_instruments`` entry, with every field ccxt reads."""
        option = self.is_option
        data: dict[str, Any] = {
            "instrument_name": self.name,
            "instrument_id": self.instrument_id,
            "kind": self.kind,
            "base_currency": self.currency,
            "counter_currency": "USD",
            "quote_currency": self.currency if option else "USD",
            "settlement_currency": self.currency,
            "price_index": f"{self.currency.lower()}_usd",
            "instrument_type": "reversed",
            "settlement_period": self.settlement_period,
            "creation_timestamp": self.creation_ms,
            "expiration_timestamp": self.expiration_ms,
            "is_active": True,
            "tick_size": self.tick_size,
            "tick_size_steps": [],
            "min_trade_amount": self.min_trade_amount,
            "contract_size": self.contract_size,
            "maker_commission": self.maker_commission,
            "taker_commission": self.taker_commission,
            "block_trade_commission": self.taker_commission,
            "block_trade_min_trade_amount": self.min_trade_amount * 25,
            "block_trade_tick_size": self.tick_size,
            "rfq": False,
        }
        if option:
            data["strike"] = self.strike
            data["option_type"] = self.option_type
        else:
            data["future_type"] = "reversed"
            data["max_leverage"] = PERP_MAX_LEVERAGE
            data["max_liquidation_commission"] = 0.0075
        return data


def _format_strike(strike: float) -> str:
    return str(int(strike)) if float(strike).is_integer() else f"{strike:g}".replace(".", "d")


def expiry_code(expiration_ms: int) -> str:
    """``27DEC26``: day without leading zero, upper-case month, two-digit year."""
    when = datetime.fromtimestamp(expiration_ms / 1000, tz=UTC)
    return f"{when.day}{_MONTHS[when.month - 1]}{when.year % 100:02d}"


def option_name(currency: str, expiration_ms: int, strike: float, option_type: str) -> str:
    """Deribit's option name, e.g. ``BTC-27DEC26-90000-C``."""
    letter = "C" if option_type == "call" else "P"
    return f"{currency}-{expiry_code(expiration_ms)}-{_format_strike(strike)}-{letter}"


def _at_expiry_hour(day: datetime) -> datetime:
    return day.replace(hour=_EXPIRY_HOUR, minute=0, second=0, microsecond=0)


def _last_friday(year: int, month: int) -> datetime:
    next_month = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    last_day = next_month - timedelta(days=1)
    back = (last_day.weekday() - _FRIDAY) % 7
    return _at_expiry_hour(last_day - timedelta(days=back))


def _daily(now: datetime) -> Iterator[datetime]:
    day = _at_expiry_hour(now)
    while True:
        if day > now:
            yield day
        day += timedelta(days=1)


def _weekly(now: datetime) -> Iterator[datetime]:
    friday = _at_expiry_hour(now) + timedelta(days=(_FRIDAY - now.weekday()) % 7)
    while True:
        if friday > now:
            yield friday
        friday += timedelta(days=7)


def _monthly(now: datetime) -> Iterator[datetime]:
    year, month = now.year, now.month
    while True:
        expiry = _last_friday(year, month)
        if expiry > now:
            yield expiry
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def _take(source: Iterator[datetime], count: int) -> list[datetime]:
    return [next(source) for _ in range(count)]


def expiry_schedule(now_ms: int) -> dict[int, str]:
    """Expiries that should be listed at ``now_ms``, mapped to their ``settlement_period``."""
    now = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
    schedule: dict[int, str] = {}
    grids = (("day", _daily(now), 3), ("week", _weekly(now), 4), ("month", _monthly(now), 3))
    for period, source, count in grids:
        for expiry in _take(source, count):
            ms = int(expiry.timestamp() * 1000)
            current = schedule.get(ms)
            if current is None or _PERIOD_RANK[period] > _PERIOD_RANK[current]:
                schedule[ms] = period
    return dict(sorted(schedule.items()))


def strike_grid(index: float, step: float) -> list[float]:
    """Strikes on ``step`` from about 70 % to 130 % of ``index``."""
    low = math.ceil(index * (1 - _STRIKE_RANGE) / step)
    high = math.floor(index * (1 + _STRIKE_RANGE) / step)
    return [float(k * step) for k in range(max(low, 1), high + 1)]


class Catalog:
    """The instruments listed now and those that have expired, in listing order."""

    def __init__(self, specs: Mapping[str, CurrencySpec], *, created_ms: int) -> None:
        self.specs = specs
        self._active: dict[str, Instrument] = {}
        self._expired: dict[str, Instrument] = {}
        self._listed: dict[str, set[int]] = {code: set() for code in specs}
        self._next_id = 1
        for spec in specs.values():
            self._add(
                Instrument(
                    name=f"{spec.code}-PERPETUAL",
                    currency=spec.code,
                    kind="future",
                    instrument_id=0,
                    tick_size=spec.perp_tick,
                    min_trade_amount=spec.perp_contract_size,
                    contract_size=spec.perp_contract_size,
                    creation_ms=created_ms,
                    expiration_ms=PERPETUAL_EXPIRY_MS,
                    settlement_period="perpetual",
                )
            )

    def _add(self, instrument: Instrument) -> Instrument:
        listed = replace(instrument, instrument_id=self._next_id)
        self._next_id += 1
        self._active[listed.name] = listed
        return listed

    def get(self, name: str) -> Instrument | None:
        """An active instrument by name."""
        return self._active.get(name)

    def active(self) -> list[Instrument]:
        return list(self._active.values())

    def expired(self) -> list[Instrument]:
        return list(self._expired.values())

    def list_due(self, now_ms: int, index_of: Callable[[str], float]) -> list[Instrument]:
        """List every scheduled expiry not listed yet, with strikes around today's index."""
        added: list[Instrument] = []
        for expiry_ms, period in expiry_schedule(now_ms).items():
            for code, spec in self.specs.items():
                if expiry_ms in self._listed[code]:
                    continue
                self._listed[code].add(expiry_ms)
                for strike in strike_grid(index_of(code), spec.strike_step):
                    for kind in ("call", "put"):
                        option = _option(
                            spec,
                            expiry_ms=expiry_ms,
                            strike=strike,
                            option_type=kind,
                            period=period,
                            now_ms=now_ms,
                        )
                        added.append(self._add(option))
        return added

    def expire_due(self, now_ms: int) -> list[Instrument]:
        """Move instruments whose expiry has passed to the expired list; return them.

        The expired list keeps a week, like the recently expired instruments Deribit serves.
        """
        due = [i for i in self._active.values() if i.expiration_ms <= now_ms]
        for instrument in due:
            del self._active[instrument.name]
            self._expired[instrument.name] = instrument
        horizon = now_ms - _EXPIRED_KEPT_MS
        self._expired = {n: i for n, i in self._expired.items() if i.expiration_ms > horizon}
        return due


def _option(
    spec: CurrencySpec,
    *,
    expiry_ms: int,
    strike: float,
    option_type: str,
    period: str,
    now_ms: int,
) -> Instrument:
    return Instrument(
        name=option_name(spec.code, expiry_ms, strike, option_type),
        currency=spec.code,
        kind="option",
        instrument_id=0,
        tick_size=spec.option_tick,
        min_trade_amount=spec.option_min_amount,
        contract_size=1.0,
        creation_ms=now_ms,
        expiration_ms=expiry_ms,
        settlement_period=period,
        strike=strike,
        option_type="call" if option_type == "call" else "put",
    )
