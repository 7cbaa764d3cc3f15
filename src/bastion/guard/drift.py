"""Position drift: what the exchange says we hold against what our own fills say we should.

The loop seeds the expected book from the first observation, then moves it only by fills of
orders it sent itself. Any other change (a trade by hand on the same account, a liquidation, a
lost fill, a bug in our reconciliation) shows up as drift, and trading on a book we do not
understand is how small errors become large ones, so drift past the dust halts the agent.

A single observation can disagree for an innocent reason: the positions and the open orders are
two requests, and an order can fill between them. Drift must therefore persist for
``observations`` consecutive observations before it counts. Expired instruments leave both
books (the exchange settles them), so they are dropped from the expected side at expiry.

Pure: no I/O; the loop feeds it and acts on its verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bastion.market import Direction, Instrument, Position

__all__ = ["Drift", "PositionBook"]


@dataclass(frozen=True, slots=True)
class Drift:
    """One instrument whose reported size differs from the expected one beyond the dust."""

    instrument_name: str
    expected: float
    reported: float
    difference_coin: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "instrument": self.instrument_name,
            "expected": self.expected,
            "reported": self.reported,
            "difference_coin": self.difference_coin,
        }


@dataclass(slots=True)
class PositionBook:
    """Expected signed sizes per instrument, in the exchange's units for that instrument."""

    dust_coin: float
    observations: int = 2
    expected: dict[str, float] = field(default_factory=dict)
    _expiries: dict[str, int] = field(default_factory=dict)
    _seeded: bool = False
    gap_coin: float | None = None
    """The largest gap, in coin, at the last check, dust or not (None before the first):
    what ``bastion_position_drift_coin`` shows, before a persistent drift halts."""
    _streak: int = 0

    def seed(self, positions: tuple[Position, ...]) -> None:
        """Start from what the account holds when the run begins."""
        self.expected = {p.instrument_name: p.size for p in positions if p.size}
        self._seeded = True

    @property
    def seeded(self) -> bool:
        return self._seeded

    def reset(self) -> None:
        """Forget the expected book; the next observation seeds it again.

        Called when trading resumes after a halt: the person who resumed has accepted the
        positions as they stand, drift included.
        """
        self.expected = {}
        self._seeded = False
        self._streak = 0
        self.gap_coin = None

    def apply_fill(self, instrument_name: str, direction: Direction, amount: float) -> None:
        """Move the expected book by a fill of one of our own orders."""
        signed = amount if direction == "buy" else -amount
        size = self.expected.get(instrument_name, 0.0) + signed
        if abs(size) < 1e-12:
            self.expected.pop(instrument_name, None)
        else:
            self.expected[instrument_name] = size

    def check(
        self,
        positions: tuple[Position, ...],
        instruments: Mapping[str, Instrument],
        *,
        now_ms: int,
        index_price: float,
    ) -> list[Drift]:
        """Drift that has persisted for ``observations`` checks in a row (else an empty list)."""
        for name, instrument in instruments.items():
            self._expiries.setdefault(name, instrument.expiration_ms)
        for name in [n for n in self.expected if self._expiries.get(n, now_ms + 1) <= now_ms]:
            del self.expected[name]  # settled by the exchange at expiry
        gaps = _gaps(self.expected, positions, instruments, index_price)
        self.gap_coin = max((gap for *_, gap in gaps), default=0.0)
        drift = [Drift(*gap) for gap in gaps if gap[3] > self.dust_coin]
        self._streak = self._streak + 1 if drift else 0
        return drift if self._streak >= self.observations else []


def _gaps(
    expected: Mapping[str, float],
    positions: tuple[Position, ...],
    instruments: Mapping[str, Instrument],
    index_price: float,
) -> list[tuple[str, float, float, float]]:
    """(instrument, expected, reported, gap in coin) of every instrument either book holds."""
    reported = {p.instrument_name: p.size for p in positions}
    found: list[tuple[str, float, float, float]] = []
    for name in sorted(set(expected) | set(reported)):
        want, have = expected.get(name, 0.0), reported.get(name, 0.0)
        instrument = instruments.get(name)
        usd_quoted = instrument is not None and instrument.amount_unit == "usd"
        gap = abs(have - want) / index_price if usd_quoted else abs(have - want)
        found.append((name, want, have, round(gap, 10)))
    return found
