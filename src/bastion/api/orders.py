"""The console's per-order "why" route: an order's label back to its decision, answer and verdict.

``GET /api/orders/{label}/why`` answers :meth:`bastion.ops.order_why.OrderWhy.to_dict` for the
order labelled ``label`` (any run whose trace is under the traces directory): 422 with the
expected shape for a label that is not ``<run_id>-<step>-<k>``, 404 with the reason when the
run has no trace or its trace no such order, 503 when the trace cannot be read (or the console
was built without a traces directory). The trace is already redacted; the answer is redacted
once more on the way out, like every console answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, status

from bastion.errors import BastionError, ErrorCode
from bastion.ops.order_why import explain_order
from bastion.trace.redact import Redactor

__all__ = ["orders_router"]

_STATUS = {ErrorCode.BAD_REQUEST: 422, ErrorCode.NOT_FOUND: 404}


def orders_router(traces_dir: Path | None, redactor: Redactor | None = None) -> APIRouter:
    """The ``/api/orders`` routes; mount them behind the console token."""
    router = APIRouter(prefix="/api/orders")
    scrub = redactor or Redactor(())

    @router.get("/{label:path}/why")  # a label with a "/" still gets its 422
    def order_why(label: str) -> dict[str, Any]:
        # A plain def: reading a trace is blocking file I/O, run in FastAPI's thread pool.
        if traces_dir is None:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "this console reads no traces: create_app was given no traces_dir=",
            )
        try:
            why = explain_order(traces_dir, label)
        except BastionError as exc:
            code = _STATUS.get(exc.code, status.HTTP_503_SERVICE_UNAVAILABLE)
            raise HTTPException(code, scrub.redact_text(exc.message)) from None
        except OSError as exc:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                scrub.redact_text(f"the trace could not be read: {exc.strerror or exc}"),
            ) from None
        result: dict[str, Any] = scrub.redact(why.to_dict())
        return result

    return router
