"""The operator agent's routes: Alertmanager's intake, the alerts, and start/stop/trigger/status.

``POST /api/alerts/alertmanager`` takes Alertmanager's version-4 webhook payload
(:mod:`bastion.ops.operator.payload`), authorised by the console token like every ``/api``
route **or** by the separate webhook secret (``operator_webhook_secret``) as its Bearer token,
so Alertmanager's credentials file need not hold the console token. Both are compared in
constant time. A malformed payload gets 422 naming the field (the app's validation handler);
a request without either credential 401, before its body is looked at.

``GET /api/alerts?status=firing|resolved|all`` lists the alerts with their analysis and actions
(the shape is in the module docstring of :mod:`bastion.ops.operator.service`); ``POST
/api/operator/start`` and ``/stop`` start and pause the agent, ``POST /api/operator/trigger``
analyses a stored alert (``alert_id``) or a given one (``alert``, one alert of the webhook's
shape) now, and ``GET /api/operator/status`` says how it stands. Approving or rejecting a
proposed action is the approvals route's job (``POST /api/approvals/{approval_id}``). Without
an operator every route answers 503 with the reason. Answers are redacted on the way out.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from bastion.api.token import TokenGuard
from bastion.errors import UsageError
from bastion.ops.operator.payload import AlertmanagerAlert, AlertmanagerWebhook
from bastion.ops.operator.service import Operator
from bastion.trace.redact import Redactor

__all__ = ["LIST_LIMIT_MAX", "TriggerRequest", "operator_router"]

LIST_LIMIT_MAX = 500
"""The most alerts ``GET /api/alerts`` returns at once."""


class TriggerRequest(BaseModel):
    """Analyse a stored alert now (``alert_id``), or a given one (``alert``)."""

    model_config = ConfigDict(extra="forbid")

    alert_id: str | None = Field(None, min_length=1, max_length=32)
    alert: AlertmanagerAlert | None = None


class _IntakeAuth:
    """The console token (any of them), or the webhook secret as a Bearer token."""

    def __init__(self, guard: TokenGuard, webhook_secret: str | None) -> None:
        self._guard = guard
        self._secret = webhook_secret.encode() if webhook_secret else None

    def __call__(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        offered = header[7:].strip().encode() if header.lower().startswith("bearer ") else b""
        if self._secret is not None and offered and secrets.compare_digest(offered, self._secret):
            return
        self._guard(request)


def operator_router(
    operator: Operator | None,
    guard: TokenGuard,
    *,
    webhook_secret: str | None = None,
    redactor: Redactor | None = None,
) -> APIRouter:
    """The intake (token or webhook secret) and the operator routes (token); see above."""
    router = APIRouter(prefix="/api")
    scrub = redactor or Redactor(())
    intake_auth = _IntakeAuth(guard, webhook_secret)

    def agent() -> Operator:
        if operator is None:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "no operator agent runs in this process: set BASTION_OPERATOR_ENABLED=true "
                "for `bastion run`, or start `bastion operator serve`",
            )
        return operator

    @router.post("/alerts/alertmanager", dependencies=[Depends(intake_auth)])
    async def alertmanager(body: AlertmanagerWebhook) -> dict[str, Any]:
        stored = await agent().receive(body)
        return {"received": len(stored), "alert_ids": [a.id for a in stored]}

    guarded = APIRouter(dependencies=[Depends(guard)])

    @guarded.get("/alerts")
    async def list_alerts(
        state: Annotated[
            Literal["firing", "resolved", "all"],
            Query(alias="status", description="firing, resolved or all"),
        ] = "firing",
        limit: Annotated[int, Query(ge=1, le=LIST_LIMIT_MAX)] = 100,
    ) -> dict[str, Any]:
        entries = await agent().describe(None if state == "all" else state, limit)
        return {"alerts": scrub.redact(entries)}

    @guarded.post("/operator/start")
    async def start() -> dict[str, Any]:
        service = agent()
        service.start()
        return dict(await service.status())

    @guarded.post("/operator/stop")
    async def stop() -> dict[str, Any]:
        service = agent()
        await service.stop()
        return dict(await service.status())

    @guarded.post("/operator/trigger")
    async def trigger(body: TriggerRequest) -> dict[str, Any]:
        service = agent()
        try:
            entry = await service.trigger(alert_id=body.alert_id, alert=body.alert)
        except UsageError as exc:
            code = status.HTTP_404_NOT_FOUND if body.alert_id else 422
            raise HTTPException(code, scrub.redact_text(str(exc))) from None
        return {"alert": scrub.redact(entry)}

    @guarded.get("/operator/status")
    async def operator_status() -> dict[str, Any]:
        return dict(await agent().status())

    router.include_router(guarded)
    return router
