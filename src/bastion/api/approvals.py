"""The console's approvals routes: what waits for a person, and their answer.

The queue and its atomic decision belong to :class:`~bastion.guard.approvals.Approvals`; this
module translates. ``GET /api/approvals`` lists (pending by default) and ``POST
/api/approvals/{id}`` decides: 404 for an unknown id, 409 when someone decided it first (the
body says who and when). Entries are redacted on the way out like every console answer.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from bastion.guard.approvals import Approvals
from bastion.store.approvals import ApprovalAlreadyDecided, ApprovalNotFound
from bastion.trace.redact import Redactor

__all__ = ["DecisionRequest", "approvals_router"]

_LIST_LIMIT_MAX = 500


class DecisionRequest(BaseModel):
    """A person's answer to one entry."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    who: str = Field("console", min_length=1, max_length=100)
    note: str | None = Field(None, max_length=2000)


def approvals_router(approvals: Approvals | None, redactor: Redactor | None) -> APIRouter:
    router = APIRouter(prefix="/api/approvals")
    scrub = redactor or Redactor(())

    def queue() -> Approvals:
        if approvals is None:
            raise HTTPException(503, detail="no approvals queue is configured for this runtime")
        return approvals

    @router.get("")
    async def list_approvals(
        state: Annotated[
            Literal["pending", "all"], Query(alias="status", description="pending or all")
        ] = "pending",
        limit: Annotated[int, Query(ge=1, le=_LIST_LIMIT_MAX)] = 50,
    ) -> dict[str, Any]:
        service = queue()
        records = await (service.pending(limit) if state == "pending" else service.recent(limit))
        return {
            "approvals": [scrub.redact(r.to_dict()) for r in records],
            "pending": await service.count_pending(),
        }

    @router.post("/{approval_id}")
    async def decide(approval_id: str, body: DecisionRequest) -> dict[str, Any]:
        service = queue()
        try:
            record = await service.decide(
                approval_id, body.decision == "approve", body.who, body.note
            )
        except ApprovalNotFound as exc:
            raise HTTPException(404, detail=exc.message) from None
        except ApprovalAlreadyDecided as exc:
            raise HTTPException(409, detail=exc.message) from None
        result: dict[str, Any] = scrub.redact(record.to_dict())
        return result

    return router
