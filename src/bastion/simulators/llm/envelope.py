"""OpenAI's error envelope and the JSON answers the fake writes, shared by every route.

One place for ``{"error": {"message", "type", "param", "code"}}``, so a fault, a bad request, a
wrong key and a wrong URL all fail the way the real API does and the SDK parses them unchanged.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["http_error", "json_response", "openai_error"]


def openai_error(
    message: str,
    *,
    error_type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """OpenAI's error envelope around ``message``."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def json_response(status: int, payload: Any) -> Response:
    """``payload`` as JSON (orjson) with ``status``."""
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


async def http_error(request: Request, exc: Exception) -> Response:
    """Routing errors (404, 405) in OpenAI's envelope, as the real API answers them."""
    if not isinstance(exc, HTTPException):
        raise exc
    message = f"Invalid URL ({request.method} {request.url.path})"
    response = json_response(exc.status_code, openai_error(message))
    response.headers.update(exc.headers or {})
    return response
