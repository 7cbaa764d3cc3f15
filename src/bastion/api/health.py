"""The console's System Health routes: run the checks now, read the cached status, list past runs.

Like the rest of the console API this module only translates: the checks, their cache and their
history belong to the injected :class:`HealthProvider` (the guard's ``HealthChecker`` satisfies
it), and whether the health guard has paused the agent comes from the ``paused`` callable. Every
answer shares one shape::

    {"last_run_at": ISO-8601 | None, "overall_status": "OK" | "WARN" | "FAIL" | None,
     "summary": str | None, "checks": [{"name", "status", "detail", "code", "latency_ms"}],
     "agent_paused_due_to_health": bool}

``history`` entries leave out ``agent_paused_due_to_health``, which describes the present only.
Without a provider every route answers 503 with a reason, so a console built for a runtime
without health checks says so instead of failing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, HTTPException, Query, status

from bastion.trace.redact import Redactor

__all__ = ["HISTORY_LIMIT_MAX", "CachedHealth", "HealthProvider", "Serialisable", "health_router"]

HISTORY_LIMIT_MAX = 500
"""The most runs ``GET /api/system_health/history`` returns at once."""

_HISTORY_LIMIT_DEFAULT = 50


class Serialisable(Protocol):
    """One health run or one check result: anything that serialises itself for the API."""

    def to_dict(self) -> dict[str, Any]: ...


class CachedHealth(Protocol):
    """The status the runtime acts on, as ``HealthChecker.get_cached_health_status`` keeps it."""

    @property
    def overall_status(self) -> str | None: ...

    @property
    def last_run_at(self) -> datetime | None: ...

    @property
    def details(self) -> Sequence[Serialisable]: ...

    @property
    def summary(self) -> str | None: ...


class HealthProvider(Protocol):
    """What the console needs from the health checker (``bastion.guard.health.HealthChecker``)."""

    async def run_and_cache_healthcheck(self, *, lightweight_only: bool = False) -> Serialisable:
        """Run the checks, cache the result as the current status, and store it in history."""
        ...

    def get_cached_health_status(self) -> CachedHealth:
        """The last result, without running anything."""
        ...

    def history(self, limit: int = 50) -> Sequence[Serialisable]:
        """Up to ``limit`` past runs, newest first."""
        ...


def _cached_to_dict(cached: CachedHealth) -> dict[str, Any]:
    return {
        "last_run_at": cached.last_run_at.isoformat() if cached.last_run_at else None,
        "overall_status": str(cached.overall_status) if cached.overall_status else None,
        "summary": cached.summary,
        "checks": [check.to_dict() for check in cached.details],
    }


def health_router(
    health: HealthProvider | None,
    paused: Callable[[], bool] | None = None,
    redactor: Redactor | None = None,
) -> APIRouter:
    """The ``/api`` routes of System Health; mount it behind the console token.

    ``POST /api/agent_healthcheck`` runs under a lock: a request that arrives while a run is in
    progress waits for it and answers with its result rather than starting a second run against
    the same exchange and LLM endpoints (an impatient double click costs one run, not two).
    """
    router = APIRouter(prefix="/api")
    scrub = redactor or Redactor(())
    lock = asyncio.Lock()
    runs_done = 0
    last_run: dict[str, Any] | None = None

    def provider() -> HealthProvider:
        if health is None:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "System Health is not configured for this console: no health checker was "
                "given to create_app(health=...)",
            )
        return health

    def answer(report: dict[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = scrub.redact(report)
        data["agent_paused_due_to_health"] = bool(paused()) if paused else False
        return data

    @router.post("/agent_healthcheck")
    async def run_healthcheck() -> dict[str, Any]:
        nonlocal runs_done, last_run
        checker = provider()
        seen = runs_done
        async with lock:
            if runs_done == seen or last_run is None:
                try:
                    report = await checker.run_and_cache_healthcheck()
                except Exception as exc:
                    raise HTTPException(
                        status.HTTP_503_SERVICE_UNAVAILABLE,
                        scrub.redact_text(f"the healthcheck could not run: {exc!r}"),
                    ) from exc
                last_run = report.to_dict()
                runs_done += 1
            return answer(last_run)

    @router.get("/agent_healthcheck")
    def last_healthcheck() -> dict[str, Any]:
        return answer(_cached_to_dict(provider().get_cached_health_status()))

    @router.get("/system_health/last")
    def system_health_last() -> dict[str, Any]:
        return answer(_cached_to_dict(provider().get_cached_health_status()))

    @router.get("/system_health/history")
    def system_health_history(
        limit: Annotated[int, Query(ge=1, le=HISTORY_LIMIT_MAX)] = _HISTORY_LIMIT_DEFAULT,
    ) -> dict[str, Any]:
        runs = [report.to_dict() for report in provider().history(limit)][:limit]
        return {"runs": scrub.redact(runs)}

    return router
