"""The loopback-only control surface of the paper exchange's fault injection.

Routes (plain JSON, not JSON-RPC; no Deribit method reaches them):

- ``GET /_paper/faults`` → 200 ``{"faults": [...], "calls": {method: n}, "hanging": n}``;
- ``POST /_paper/faults`` with one :class:`~bastion.simulators.paper.faults.FaultSpec` as JSON →
  201 ``{"fault": {...}}``; an unreadable or invalid body → 400 or 422
  ``{"error": ..., "reason": ...}``, never a 500;
- ``DELETE /_paper/faults`` → 200 ``{"cleared": n}`` (hanging requests are released too);
- ``GET /_paper/calls`` → 200 ``{"calls": {...}, "total": n}``; ``DELETE /_paper/calls`` resets.

Only loopback clients (127.0.0.0/8, ::1, or an IPv4-mapped loopback) are served; anyone else,
and a client whose address is unknown (a Unix socket), gets 403. The guard and the error answers
are shared with the fake LLM server (:mod:`bastion.simulators.faults.control`).
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.simulators.faults.control import control_error, loopback_only, validation_reason
from bastion.simulators.paper.faults import FaultInjector, FaultSpec

__all__ = ["CONTROL_PREFIX", "FaultControl"]

CONTROL_PREFIX = "/_paper"
_MAX_BODY = 32 * 1024
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]
_REMOTE_REFUSED = "the fault control endpoint answers loopback clients only"


class FaultControl:
    """Serves the control routes for one :class:`FaultInjector`."""

    def __init__(self, faults: FaultInjector) -> None:
        self.faults = faults

    @property
    def routes(self) -> list[Route]:
        return [
            Route(CONTROL_PREFIX + path, loopback_only(handler, _REMOTE_REFUSED), methods=_METHODS)
            for path, handler in (("/faults", self._faults), ("/calls", self._calls))
        ]

    async def _faults(self, request: Request) -> Response:  # noqa: PLR0911 - one per answer
        if request.method == "GET":
            return _json(200, self.faults.snapshot())
        if request.method == "DELETE":
            return _json(200, {"cleared": self.faults.clear()})
        if request.method != "POST":
            return _not_allowed(request, "GET, POST, DELETE")
        body = await request.body()
        if len(body) > _MAX_BODY:
            return control_error(
                413, "body too large", f"a fault is at most {_MAX_BODY} bytes of JSON"
            )
        try:
            data: Any = orjson.loads(body)
        except orjson.JSONDecodeError:
            return control_error(400, "bad request", "the body must be one fault as a JSON object")
        try:
            spec = FaultSpec.model_validate(data)
        except ValidationError as exc:
            return control_error(422, "invalid fault", validation_reason(exc))
        return _json(201, {"fault": self.faults.arm(spec).to_dict()})

    async def _calls(self, request: Request) -> Response:
        if request.method == "GET":
            counts = self.faults.call_counts()
            return _json(200, {"calls": counts, "total": sum(counts.values())})
        if request.method == "DELETE":
            self.faults.reset_calls()
            return _json(200, {"calls": {}, "total": 0})
        return _not_allowed(request, "GET, DELETE")


def _not_allowed(request: Request, allow: str) -> Response:
    response = control_error(405, "method not allowed", f"{request.method} is not one of {allow}")
    response.headers["allow"] = allow
    return response


def _json(status: int, payload: Any) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")
