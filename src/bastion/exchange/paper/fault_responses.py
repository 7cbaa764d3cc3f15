"""What goes on the wire when a fault fires: garbled bodies, hangs and dropped connections.

A dropped connection has no standard ASGI message, and a server answers an app exception
raised before the response started with a 500, which is not a drop. So :func:`drop` first sends
a start message no server can write (no status) and then raises :class:`DroppedConnection`:

- under uvicorn (h11 and httptools) the response counts as started, writing it fails, and the
  server closes the socket without a byte: httpx raises ``httpx.RemoteProtocolError``
  ("Server disconnected without sending a response"); uvicorn logs the exception;
- under ``httpx.ASGITransport`` the exception reaches the caller as is, and it *is* an
  ``httpx.RemoteProtocolError`` (a subclass), so both transports fail the same way on the client
  side. With ``raise_app_exceptions=False`` httpx turns it into a plain 500 instead.

This is why the paper exchange imports httpx: only for that exception class.
"""

from __future__ import annotations

import contextlib
from typing import NoReturn

import httpx
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from bastion.exchange.paper.faults import FaultInjector

__all__ = [
    "MALFORMED_BODY",
    "DroppedConnection",
    "DroppedResponse",
    "HangingResponse",
    "drop",
    "malformed",
    "truncated",
]

MALFORMED_BODY = b"<paper exchange: injected malformed body, not JSON>"


class DroppedConnection(httpx.RemoteProtocolError):
    """The paper exchange dropped a connection on purpose (a ``drop`` fault)."""


async def drop(send: Send, detail: str) -> NoReturn:
    """Close the connection without a response (see the module docstring for how)."""
    with contextlib.suppress(Exception):
        await send({"type": "http.response.start", "status": None, "headers": []})
    raise DroppedConnection(f"paper exchange dropped the connection: {detail}")


class DroppedResponse(Response):
    """An answer that is no answer: the connection is closed."""

    def __init__(self, detail: str) -> None:
        super().__init__()
        self.detail = detail

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await drop(send, self.detail)


class HangingResponse(Response):
    """Never answers: waits for the client to leave, or drops when the faults are cleared."""

    def __init__(self, faults: FaultInjector, detail: str) -> None:
        super().__init__()
        self.faults = faults
        self.detail = detail

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if await self.faults.hang(receive):
            return  # the client is gone: there is no one to answer
        await drop(send, f"{self.detail} (released)")


def malformed() -> Response:
    """HTTP 200 and a JSON content type, but a body that is not JSON."""
    return Response(MALFORMED_BODY, status_code=200, media_type="application/json")


def truncated(response: Response) -> Response:
    """``response`` with its body cut in the middle; Content-Length is the length sent."""
    body = bytes(response.body)
    cut = Response(body[: len(body) // 2], status_code=response.status_code)
    cut.headers["content-type"] = response.headers.get("content-type", "application/json")
    return cut
