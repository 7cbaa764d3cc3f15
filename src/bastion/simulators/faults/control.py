"""What the simulators' control routes share: loopback clients only, and plain JSON answers.

Each simulator serves routes that re-arm it while it runs (``/_paper/`` and ``/_fake/``). Being
able to make a venue or a model fail is a weapon, so both serve loopback clients only, by the
same check, and both fail in plain JSON (``{"error": ..., "reason": ...}``), never a 500: a
test or an operator sees why a request was refused. An unreadable body is a 400, one over the
size limit a 413, an HTTP method a route does not serve a 405 with ``Allow``. The fault routes
are shared too (:mod:`.routes`); the rest (the script, the request log) stay with their
simulator but are built with :func:`control_route`, so they answer alike.

A client is on loopback when its address is an IP in 127.0.0.0/8, ``::1`` or an IPv4-mapped
loopback; a name (even ``localhost``) and an unknown address (a Unix socket) are not. A proxy on
the same host that passes the remote address on (uvicorn's ``proxy_headers``) keeps remote
callers out.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

__all__ = [
    "MAX_CONTROL_BODY",
    "Handler",
    "control_error",
    "control_json",
    "control_route",
    "is_loopback",
    "loopback_only",
    "read_json",
    "validation_reason",
]

Handler = Callable[[Request], Awaitable[Response]]

MAX_CONTROL_BODY = 32 * 1024
"""The largest control request body, in bytes: a few faults or replies, never a flood."""

_ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` is a loopback IP address (a name, even ``localhost``, is not)."""
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def loopback_only(handler: Handler, reason: str) -> Handler:
    """``handler``, answering anyone but a loopback client a 403 that gives ``reason``."""

    @functools.wraps(handler)
    async def guarded(request: Request) -> Response:
        host = request.client.host if request.client is not None else None
        if not is_loopback(host):
            return control_error(403, "forbidden", reason)
        return await handler(request)

    return guarded


def control_route(path: str, handlers: Mapping[str, Handler], refused: str) -> Route:
    """One route at ``path`` serving ``handlers`` by HTTP method, to loopback clients only.

    Every other method gets a JSON 405 whose ``Allow`` lists ``handlers`` (the framework's own
    405 would not be this JSON shape); a remote client gets a 403 that gives ``refused``.
    """
    allow = ", ".join(handlers)

    async def dispatch(request: Request) -> Response:
        handler = handlers.get(request.method)
        if handler is None:
            reason = f"{request.method} is not one of {allow}"
            response = control_error(405, "method not allowed", reason)
            response.headers["allow"] = allow
            return response
        return await handler(request)

    return Route(path, loopback_only(dispatch, refused), methods=_ANY_METHOD)


def control_json(status: int, payload: Any) -> Response:
    """A control route's answer: ``payload`` as JSON."""
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


def control_error(status: int, error: str, reason: str) -> Response:
    """A control route's failure: ``status`` and ``{"error": error, "reason": reason}``."""
    return control_json(status, {"error": error, "reason": reason})


async def read_json(request: Request, what: str, *, limit: int = MAX_CONTROL_BODY) -> Any:
    """The JSON body, or the 413 or 400 answer (a :class:`Response`) that says why not.

    The body is read in chunks and abandoned past ``limit`` bytes, so a huge upload is refused
    without being held in memory. ``what`` names the expected body in the 400.
    """
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            reason = f"this control request is at most {limit} bytes of JSON"
            return control_error(413, "body too large", reason)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return control_error(400, "bad request", f"the body is not JSON: send {what}")


def validation_reason(exc: ValidationError) -> str:
    """``exc`` in one line for a person: ``field: message`` per error, joined by ``; ``."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)
