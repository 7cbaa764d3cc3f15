"""``GET /api/slo``: the SLOs, their error budgets and burn rates, and the alerts firing now.

Like the rest of the console API it only translates: the figures come from the injected
provider, the run's :meth:`bastion.telemetry.monitor.AlertMonitor.report` (the shape is the
console contract: ``period_days``, ``evaluated_at``, ``slos`` and ``firing``). The provider may
read the store, so it runs in a worker thread. Without one (a console built for a runtime that
evaluates no SLOs) the route answers 503 with a reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import APIRouter, HTTPException, status

__all__ = ["SloProvider", "slo_router"]

SloProvider = Callable[[], Mapping[str, Any]]
"""The SLO report: :meth:`bastion.telemetry.monitor.AlertMonitor.report` of the live run."""


def slo_router(provider: SloProvider | None) -> APIRouter:
    """The SLO route; mount it under the console token like every ``/api`` route."""
    router = APIRouter(prefix="/api")

    @router.get("/slo")
    async def get_slo() -> dict[str, Any]:
        if provider is None:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                detail="no SLOs are evaluated by this runtime; `bastion slo` reads the store",
            )
        return dict(await asyncio.to_thread(provider))

    return router
