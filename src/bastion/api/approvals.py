"""The console's approvals routes: what waits for a person, and their answer.

The queue and its atomic decision belong to :class:`~bastion.guard.approvals.Approvals`; this
module translates. ``GET /api/approvals`` lists (pending by default, newest first) with the
pending count; ``POST /api/approvals/{id}`` decides and answers the decided entry, recorded as
the person the console token names (:func:`~bastion.api.token.console_user`; a body naming
anyone is refused): 404 for an unknown id, 409 when someone decided it first or it expired
(the detail says who and when), 503 when the runtime has no queue or its database cannot be
reached. Every answer, error details included, is redacted on the way out like every console
answer.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError

from bastion.api.token import console_user
from bastion.guard.approvals import Approvals
from bastion.store.approvals import ApprovalAlreadyDecided, ApprovalNotFound
from bastion.trace.redact import Redactor

__all__ = ["LIST_LIMIT_MAX", "DecisionRequest", "approvals_router"]

LIST_LIMIT_MAX = 500
"""The most entries ``GET /api/approvals`` returns at once."""

_T = TypeVar("_T")


class DecisionRequest(BaseModel):
    """A person's answer to one entry; a blank ``note`` is no note.

    It has no ``who``: who decided is whoever the console token names, and a body that tries
    to say otherwise is refused (422, extra fields are forbidden).
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    decision: Literal["approve", "reject"]
    note: str | None = Field(None, max_length=2000)


def approvals_router(approvals: Approvals | None, redactor: Redactor | None = None) -> APIRouter:
    """The ``/api/approvals`` routes; mount them behind the console token.

    Without a queue (``approvals=None``) every route answers 503 with a reason, so a console
    built for a runtime without approvals says so instead of failing.
    """
    router = APIRouter(prefix="/api/approvals")
    scrub = redactor or Redactor(())

    def queue() -> Approvals:
        if approvals is None:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "no approvals queue is configured for this console: create_app was given no "
                "approvals=",
            )
        return approvals

    async def stored(call: Awaitable[_T]) -> _T:
        try:
            return await call
        except SQLAlchemyError as exc:
            cause = str(getattr(exc, "orig", None) or type(exc).__name__).strip().splitlines()
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                scrub.redact_text(f"the approvals store could not be read or written: {cause[0]}"),
            ) from exc

    @router.get("")
    async def list_approvals(
        state: Annotated[
            Literal["pending", "all"], Query(alias="status", description="pending or all")
        ] = "pending",
        limit: Annotated[int, Query(ge=1, le=LIST_LIMIT_MAX)] = 50,
    ) -> dict[str, Any]:
        service = queue()
        listing = service.pending(limit) if state == "pending" else service.recent(limit)
        records = await stored(listing)
        pending = await stored(service.count_pending())
        return {"approvals": scrub.redact([r.to_dict() for r in records]), "pending": pending}

    @router.post("/{approval_id}")
    async def decide(approval_id: str, body: DecisionRequest, request: Request) -> dict[str, Any]:
        who = console_user(request)
        service = queue()
        approve = body.decision == "approve"
        note = body.note or None
        try:
            record = await stored(service.decide(approval_id, approve, who, note))
        except ApprovalNotFound as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, scrub.redact_text(exc.message)) from None
        except ApprovalAlreadyDecided as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, scrub.redact_text(exc.message)) from None
        result: dict[str, Any] = scrub.redact(record.to_dict())
        return result

    return router
