"""What the simulators' control routes share: loopback clients only, and plain JSON errors.

Each simulator serves routes that re-arm it while it runs (``/_paper/`` and ``/_fake/``). Being
able to make a venue or a model fail is a weapon, so both serve loopback clients only, by the
same check, and both fail in plain JSON (``{"error": ..., "reason": ...}``), never a 500: a
test or an operator sees why a fault was refused. The routes themselves stay with their
simulator.

A client is on loopback when its address is an IP in 127.0.0.0/8, ``::1`` or an IPv4-mapped
loopback; a name (even ``localhost``) and an unknown address (a Unix socket) are not. A proxy on
the same host that passes the remote address on (uvicorn's ``proxy_headers``) keeps remote
callers out.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Awaitable, Callable

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["Handler", "control_error", "is_loopback", "loopback_only", "validation_reason"]

Handler = Callable[[Request], Awaitable[Response]]


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


def control_error(status: int, error: str, reason: str) -> Response:
    """A control route's failure: ``status`` and ``{"error": error, "reason": reason}``."""
    body = orjson.dumps({"error": error, "reason": reason})
    return Response(body, status_code=status, media_type="application/json")


def validation_reason(exc: ValidationError) -> str:
    """``exc`` in one line for a person: ``field: message`` per error, joined by ``; ``."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)
