"""The equity sink: the run's equity over time, folded from its events, for the console's chart.

Why a journal sink and not the trace: the console polls every couple of seconds, and a day's
trace is tens of thousands of lines whose observations carry every ticker; parsing it per poll
would cost more than the step it describes. Each ``bastion run`` process has its own run id and
trace, and this sink hears every event of that run from its first, so the series it keeps is the
whole run's (a restarted process is a new run with a new series, as its trace is).

Points come from ``observation`` (the exchange's ``time_ms`` and the account's equity) and from
a halted step's ``step_completed`` ``book`` (its ``at``), the two events that carry equity.
P&L is equity less the first point's equity, in the account's currency: what the run made or
lost since it started (deposits and withdrawals would count as P&L; the paper and test accounts
have none).

Memory is bounded: at most ``max_points`` points are kept. When the series fills, every second
point is dropped and only every second sample is kept from then on (the stride doubles), so a
run of any length keeps an evenly spaced series over its whole span. The first point (the
baseline) and the latest sample are always reported, so the chart starts at the run's start and
ends now.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bastion.events import Event, EventKind

__all__ = ["MAX_POINTS", "EquityPoint", "EquitySink"]

MAX_POINTS = 2000
"""Points kept by default: a chart a thousand pixels wide shows no more than that."""


@dataclass(frozen=True, slots=True)
class EquityPoint:
    """Equity at one instant (milliseconds since the epoch, UTC) and the step that saw it."""

    time_ms: int
    equity: float
    step: int | None = None


class EquitySink:
    """Keeps the run's equity series; subscribe it to the run's journal."""

    def __init__(self, *, max_points: int = MAX_POINTS) -> None:
        if max_points < 4:
            raise ValueError(f"max_points must be at least 4, got {max_points}")
        self._max = max_points
        self._points: list[EquityPoint] = []
        self._latest: EquityPoint | None = None
        self._currency: str | None = None
        self._stride = 1
        self._samples = 0
        self._lock = threading.Lock()  # the console reads from its own thread

    def __call__(self, event: Event) -> None:
        point = _point(event)
        if point is None:
            return
        with self._lock:
            currency = event.payload.get("currency") or (event.payload.get("book") or {}).get(
                "currency"
            )
            self._currency = str(currency) if currency else self._currency
            self._add(point)

    def _add(self, point: EquityPoint) -> None:
        self._latest = point
        if self._samples % self._stride == 0:
            self._points.append(point)
            if len(self._points) > self._max:
                self._points = self._points[::2]
                self._stride *= 2
        self._samples += 1

    def series(self) -> dict[str, Any]:
        """The JSON shape of ``GET /api/equity``: the points, oldest first, with P&L."""
        with self._lock:
            points = list(self._points)
            latest = self._latest
            stride, samples, currency = self._stride, self._samples, self._currency
        if latest is not None and (not points or points[-1] is not latest):
            points.append(latest)
        start = points[0].equity if points else None
        return {
            "currency": currency,
            "start_equity": start,
            "samples": samples,
            "stride": stride,
            "points": [
                {
                    "time_ms": p.time_ms,
                    "step": p.step,
                    "equity": p.equity,
                    "pnl": round(p.equity - start, 12) if start is not None else None,
                }
                for p in points
            ],
        }


def _point(event: Event) -> EquityPoint | None:
    payload = event.payload
    if event.kind is EventKind.OBSERVATION:
        equity, time_ms = payload.get("equity"), payload.get("time_ms")
    elif event.kind is EventKind.STEP_COMPLETED and isinstance(payload.get("book"), Mapping):
        equity, time_ms = payload["book"].get("equity"), _ms(payload.get("at"))
    else:
        return None
    if not isinstance(equity, int | float) or not isinstance(time_ms, int | float):
        return None
    step = payload.get("step")
    return EquityPoint(int(time_ms), float(equity), step if isinstance(step, int) else None)


def _ms(at: object) -> int | None:
    if not isinstance(at, str):
        return None
    try:
        return int(datetime.fromisoformat(at).timestamp() * 1000)
    except ValueError:
        return None
