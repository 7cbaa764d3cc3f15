"""Time as an injected dependency.

Every component that needs "now" or needs to wait takes a :class:`Clock`. Production uses
:class:`WallClock`; tests, replays and the deterministic paper exchange use :class:`SimClock`,
whose time moves only when someone advances it (or sleeps on it). That is what makes a paper
session byte-identical for a seed and what lets a test cross UTC midnight in a microsecond.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SimClock", "WallClock", "utc_from_ms"]


@runtime_checkable
class Clock(Protocol):
    """The one source of time for Bastion."""

    def time(self) -> float:
        """Seconds since the Unix epoch."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards; for durations only."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...

    def now(self) -> datetime:
        """The current time as an aware UTC datetime."""
        ...


def utc_from_ms(ms: int) -> datetime:
    """A timezone-aware UTC datetime from epoch milliseconds (Deribit's unit)."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


class WallClock:
    """Real time: ``time.time`` for timestamps, ``time.monotonic`` for durations."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), tz=UTC)


class SimClock:
    """Simulated time that moves only when told to.

    ``sleep`` advances the clock by the requested amount and yields once to the event loop, so a
    loop running on a SimClock runs as fast as the CPU allows while every timestamp it records is
    exactly reproducible.
    """

    def __init__(self, start: float = 1_767_225_600.0) -> None:
        """Start at ``start`` epoch seconds (default 2026-01-01T00:00:00Z)."""
        self._now = float(start)
        self._mono = 0.0

    def time(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        """Move time forward; a negative step is a programming error."""
        if seconds < 0:
            raise ValueError(f"SimClock cannot go backwards (advance({seconds}))")
        self._now += seconds
        self._mono += seconds

    async def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._now, tz=UTC)
