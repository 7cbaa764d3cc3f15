"""The console's equity route: the run's equity and P&L over time, for the Overview chart.

``GET /api/equity`` answers the :class:`~bastion.runtime.equity_sink.EquitySink`'s series::

    {"currency": "BTC" | None, "start_equity": float | None, "samples": int, "stride": int,
     "points": [{"time_ms": int, "step": int | None, "equity": float, "pnl": float}]}

``points`` are oldest first; ``pnl`` is equity less the first point's, in ``currency``;
``stride`` says how many samples one point stands for once a long run was thinned. Without a
series (a console built for no run) it answers 503 with a reason, like the other panels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import APIRouter, HTTPException, status

__all__ = ["EquityProvider", "equity_router"]

EquityProvider = Callable[[], Mapping[str, Any]]
""":meth:`bastion.runtime.equity_sink.EquitySink.series` of the live run."""


def equity_router(equity: EquityProvider | None) -> APIRouter:
    """The ``/api/equity`` route; mount it behind the console token."""
    router = APIRouter(prefix="/api")

    @router.get("/equity")
    def get_equity() -> dict[str, Any]:
        if equity is None:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "no equity series is kept for this console: create_app was given no equity=",
            )
        return dict(equity())

    return router
