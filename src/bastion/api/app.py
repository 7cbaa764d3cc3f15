"""The console's FastAPI app: status, kill switch, metrics and the page itself.

It only translates between people and the runtime: every answer comes from the injected
``status`` provider, the :class:`Halt` and the :class:`Metrics`; it holds no logic of its own.
``/healthz`` (liveness) and ``/metrics`` (Prometheus) are open for probes and scrapers on
loopback; every ``/api`` route requires the console token. Every request first passes the
Host allow-list and the body cap, and every answer carries the CSP
(:mod:`bastion.api.security`).
"""

from __future__ import annotations

import getpass
from collections.abc import Callable, Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from bastion.api.approvals import approvals_router
from bastion.api.equity import EquityProvider, equity_router
from bastion.api.health import HealthProvider, health_router
from bastion.api.operator import operator_router
from bastion.api.orders import orders_router
from bastion.api.security import BodyLimit, HostGuard, SecurityHeaders
from bastion.api.slo import SloProvider, slo_router
from bastion.api.token import TokenGuard
from bastion.guard.approvals import Approvals
from bastion.guard.budget import BudgetUsage
from bastion.guard.halt import Halt
from bastion.ops.operator.service import Operator
from bastion.telemetry.metrics import CONTENT_TYPE, Metrics
from bastion.trace.redact import Redactor

__all__ = ["api_router", "create_app"]

StatusProvider = Callable[[], Mapping[str, Any]]
"""The status report: :meth:`bastion.ops.status.StatusService.report` of the live runtime."""
BudgetProvider = Callable[[], BudgetUsage]


class HaltRequest(BaseModel):
    """Body of ``POST /api/kill`` and ``POST /api/resume``."""

    reason: str = Field("operator via console", min_length=1, max_length=500)


def _console_page(refresh_seconds: float) -> str:
    html = resources.files("bastion.api").joinpath("static/index.html").read_text("utf-8")
    return html.replace("{{REFRESH_MS}}", str(int(refresh_seconds * 1000)))


def api_router(
    status: StatusProvider,
    halt: Halt,
    budget: BudgetProvider | None = None,
) -> APIRouter:
    """``status`` is the status report (the one the CLI prints too); ``halt`` the halt path."""
    router = APIRouter(prefix="/api")

    @router.get("/status")
    def get_status() -> dict[str, Any]:
        return dict(status())

    @router.get("/budget")
    def get_budget() -> dict[str, Any]:
        if budget is None:
            raise HTTPException(503, detail="no budget is configured for this runtime")
        return budget().to_dict()

    @router.post("/kill")
    async def kill(body: HaltRequest | None = None) -> dict[str, Any]:
        body = body or HaltRequest()
        state = await halt.trip(body.reason, who=f"{getpass.getuser()} (console)")
        return {"halted": True, "halt": state.to_dict()}

    @router.post("/resume")
    def resume(body: HaltRequest | None = None) -> dict[str, Any]:
        body = body or HaltRequest()
        cleared = halt.resume(who=f"{getpass.getuser()} (console)", why=body.reason)
        return {"halted": False, "cleared": cleared.to_dict() if cleared else None}

    return router


def create_app(
    *,
    status: StatusProvider,
    halt: Halt,
    metrics: Metrics,
    token: str,
    refresh_seconds: float = 2.0,
    redactor: Redactor | None = None,
    health: HealthProvider | None = None,
    health_paused: Callable[[], bool] | None = None,
    budget: BudgetProvider | None = None,
    approvals: Approvals | None = None,
    slo: SloProvider | None = None,
    allowed_hosts: Iterable[str] = (),
    named_tokens: Mapping[str, str] | None = None,
    equity: EquityProvider | None = None,
    traces_dir: Path | None = None,
    operator: Operator | None = None,
    operator_webhook_secret: str | None = None,
) -> FastAPI:
    """Build the console app for one runtime.

    ``named_tokens`` (name -> token) open the API like ``token`` and make a request act as
    that name: an approval decided with one is recorded as its name (:mod:`bastion.api.token`).

    ``equity`` is the run's equity series (``GET /api/equity``, the Overview chart) and
    ``traces_dir`` where the runs' traces are (``GET /api/orders/{label}/why``).

    ``allowed_hosts`` are the names, beyond loopback and the bound address, that the console
    answers to (``console_allowed_hosts``, a proxy's name); any other ``Host`` gets 400, so a
    DNS-rebinding page cannot read it. See :mod:`bastion.api.security`.

    ``operator`` serves the alert intake and the operator routes (:mod:`bastion.api.operator`);
    the intake also accepts ``operator_webhook_secret`` as its Bearer token.
    """
    app = FastAPI(title="Bastion console", docs_url=None, redoc_url=None, openapi_url=None)
    # Each added middleware wraps the ones before it: the headers go on every answer, refusals
    # included; a foreign Host is refused before a byte of its body is read.
    app.add_middleware(BodyLimit)
    app.add_middleware(HostGuard, allowed=allowed_hosts)
    app.add_middleware(SecurityHeaders)
    guard = TokenGuard(token, named_tokens)
    page = _console_page(refresh_seconds)
    icon = resources.files("bastion.api").joinpath("static/favicon.svg").read_bytes()

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()
        ]
        return JSONResponse({"detail": "invalid request: " + "; ".join(problems)}, 422)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/", response_class=HTMLResponse)
    def console() -> str:
        return page

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(icon, media_type="image/svg+xml")

    static_dir = resources.files("bastion.api").joinpath("static")
    app.mount("/static", StaticFiles(directory=str(static_dir)), name="static")
    app.include_router(api_router(status, halt, budget), dependencies=[Depends(guard)])
    app.include_router(
        health_router(health, health_paused, redactor), dependencies=[Depends(guard)]
    )
    app.include_router(approvals_router(approvals, redactor), dependencies=[Depends(guard)])
    app.include_router(slo_router(slo), dependencies=[Depends(guard)])
    app.include_router(equity_router(equity), dependencies=[Depends(guard)])
    app.include_router(orders_router(traces_dir, redactor), dependencies=[Depends(guard)])
    app.include_router(
        operator_router(operator, guard, webhook_secret=operator_webhook_secret, redactor=redactor)
    )
    return app
