"""Accounts, one ledger per currency, and positions: the book-keeping of fills in coin.

Conventions (Deribit's):

- a position's ``size`` is signed (negative when short): coin for options, USD for perpetuals;
- **options** are paid for in cash: a buy takes ``amount * price`` from the balance and a sale
  adds it, so the position's value ``size * mark`` appears in equity, not in the balance;
  ``average_price`` is the amount-weighted entry price in coin;
- **perpetuals** are inverse: no cash changes hands on entry, the PnL of a USD size between
  entry ``p0`` and price ``p`` is ``size * (1/p0 - 1/p)`` coin, realised into the balance when
  the position shrinks; ``average_price`` is the harmonic mean that keeps that formula exact;
- fees are taken from the balance at each fill (rates in :mod:`.specs`); options fees are
  ``min(0.03 % of the amount, 12.5 % of the premium)``, perpetual fees are on the coin notional.

The ledger's "session" is the account's whole life: the paper exchange has no 8-hourly
session settlement and no funding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bastion.simulators.paper.instruments import Instrument

__all__ = ["Account", "Ledger", "Position", "fee_for"]

OPTION_FEE_CAP = 0.125
_DECIMALS = 10
_SIZE_DECIMALS = 8


def fee_for(instrument: Instrument, *, amount: float, price: float, maker: bool) -> float:
    """The fee of one fill, in coin."""
    rate = instrument.maker_commission if maker else instrument.taker_commission
    if instrument.is_option:
        return round(min(rate * amount, OPTION_FEE_CAP * price * amount), _DECIMALS)
    return round(rate * amount / price, _DECIMALS)


def _sign(x: float) -> float:
    return 1.0 if x > 0 else -1.0 if x < 0 else 0.0


@dataclass(slots=True)
class Position:
    """One instrument's signed position and the PnL it has realised."""

    instrument: Instrument
    size: float = 0.0
    average_price: float = 0.0
    realized_pl: float = 0.0

    def floating_pl(self, mark: float) -> float:
        """Unrealised PnL in coin at ``mark``."""
        if self.size == 0:
            return 0.0
        if self.instrument.is_option:
            return self.size * (mark - self.average_price)
        return self.size * (1.0 / self.average_price - 1.0 / mark)

    def _closing_pl(self, closed: float, price: float) -> float:
        """PnL of closing ``closed`` (unsigned) of the position at ``price``."""
        if self.instrument.is_option:
            return closed * (price - self.average_price) * _sign(self.size)
        return closed * (1.0 / self.average_price - 1.0 / price) * _sign(self.size)

    def _blend(self, added: float, price: float) -> float:
        held = abs(self.size)
        if held == 0:
            return price
        if self.instrument.is_option:
            return (held * self.average_price + added * price) / (held + added)
        return (held + added) / (held / self.average_price + added / price)

    def apply(self, signed_amount: float, price: float) -> float:
        """Add a fill (positive buys, negative sells) and return the PnL it realised."""
        if self.size == 0 or _sign(self.size) == _sign(signed_amount):
            self.average_price = self._blend(abs(signed_amount), price)
            self.size = round(self.size + signed_amount, _SIZE_DECIMALS)
            return 0.0
        closed = min(abs(signed_amount), abs(self.size))
        pnl = self._closing_pl(closed, price)
        self.size = round(self.size + signed_amount, _SIZE_DECIMALS)
        if self.size == 0:
            self.average_price = 0.0
        elif abs(signed_amount) > closed:
            self.average_price = price
        self.realized_pl += pnl
        return pnl


@dataclass(slots=True)
class Ledger:
    """One currency's balance and positions."""

    currency: str
    balance: float
    positions: dict[str, Position] = field(default_factory=dict)
    fees_paid: float = 0.0
    settled_pl: float = 0.0

    def position(self, instrument: Instrument) -> Position:
        """The position in ``instrument``, created flat on first use."""
        position = self.positions.get(instrument.name)
        if position is None:
            position = self.positions[instrument.name] = Position(instrument)
        return position

    def size_of(self, instrument: Instrument) -> float:
        position = self.positions.get(instrument.name)
        return 0.0 if position is None else position.size

    def open_positions(self) -> list[Position]:
        return [p for p in self.positions.values() if p.size != 0]

    def realized(self, *, options: bool) -> float:
        """PnL realised by closing trades (and, for options, by settlement)."""
        closed = sum(
            p.realized_pl for p in self.positions.values() if p.instrument.is_option == options
        )
        return closed + self.settled_pl if options else closed

    def fill(
        self, instrument: Instrument, *, signed_amount: float, price: float, fee: float
    ) -> float:
        """Book a fill: move the position, pay premium (options) or PnL (perps) and the fee."""
        pnl = self.position(instrument).apply(signed_amount, price)
        if instrument.is_option:
            self.balance -= signed_amount * price
        else:
            self.balance += pnl
        self.balance = round(self.balance - fee, _DECIMALS)
        self.fees_paid = round(self.fees_paid + fee, _DECIMALS)
        return pnl

    def settle(self, instrument: Instrument, payoff: float) -> float:
        """Close an expired option at ``payoff`` coin per unit; return the PnL realised."""
        position = self.positions.pop(instrument.name, None)
        if position is None or position.size == 0:
            return 0.0
        pnl = position.size * (payoff - position.average_price)
        self.balance = round(self.balance + position.size * payoff, _DECIMALS)
        self.settled_pl += pnl
        return pnl


@dataclass(slots=True)
class Account:
    """A paper account: one client id, one ledger per currency."""

    account_id: int
    client_id: str
    creation_ms: int
    ledgers: dict[str, Ledger]

    def ledger(self, currency: str) -> Ledger:
        return self.ledgers[currency]
