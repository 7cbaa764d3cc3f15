"""What goes on the wire when a fault fires: dropped connections, hangs and garbled bodies.

Both simulators answer these faults with the same bytes, so a client's handling of them is
proven once for either; each passes its own name (``server``) for the messages.

A dropped connection has no standard ASGI message, and a server answers an app exception
raised before the response started with a 500, which is not a drop. So a
:class:`DroppedResponse` first sends a start message no server can write (no status) and then
raises :class:`DroppedConnection`:

- under uvicorn (h11 and httptools) the response counts as started, writing it fails, and the
  server closes the socket without a byte: httpx raises ``httpx.RemoteProtocolError``
  ("Server disconnected without sending a response"); uvicorn logs the exception;
- under ``httpx.ASGITransport`` the exception reaches the caller as is, and it *is* an
  ``httpx.RemoteProtocolError`` (a subclass), so both transports fail the same way on the client
  side. With ``raise_app_exceptions=False`` httpx turns it into a plain 500 instead.

This is why the simulators depend on httpx: only for that exception class, here.
"""

from __future__ import annotations

import contextlib
from typing import NoReturn

import httpx
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from bastion.simulators.faults.hangs import Hangs

__all__ = [
    "DroppedConnection",
    "DroppedResponse",
    "HangingResponse",
    "malformed",
    "malformed_body",
    "truncated",
]


class DroppedConnection(httpx.RemoteProtocolError):
    """A simulator closed a connection on purpose (a ``drop`` fault or a released hang)."""


async def _drop(send: Send, server: str, detail: str) -> NoReturn:
    """Close the connection without a response (see the module docstring for how)."""
    with contextlib.suppress(Exception):
        await send({"type": "http.response.start", "status": None, "headers": []})
    raise DroppedConnection(f"{server} dropped the connection: {detail}")


class DroppedResponse(Response):
    """An answer that is no answer: ``server`` closes the connection."""

    def __init__(self, server: str, detail: str) -> None:
        super().__init__()
        self.server = server
        self.detail = detail

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _drop(send, self.server, self.detail)


class HangingResponse(Response):
    """Never answers: waits for the client to leave, or drops when ``hangs`` is released.

    ``key`` is the id of the fault that hangs, so disarming that fault alone releases it.
    """

    def __init__(self, hangs: Hangs, server: str, detail: str, *, key: int | None = None) -> None:
        super().__init__()
        self.hangs = hangs
        self.server = server
        self.detail = detail
        self.key = key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if await self.hangs.wait(receive, self.key):
            return  # the client is gone: there is no one to answer
        await _drop(send, self.server, f"{self.detail} (released)")


def malformed_body(server: str) -> bytes:
    """The body of a ``malformed`` answer from ``server``: plainly not JSON, and naming it."""
    return f"<{server}: injected malformed body, not JSON>".encode()


def malformed(server: str) -> Response:
    """HTTP 200 and a JSON content type, but a body that is not JSON."""
    return Response(malformed_body(server), status_code=200, media_type="application/json")


def truncated(response: Response) -> Response:
    """``response`` with its body cut in the middle; Content-Length is the length sent."""
    body = bytes(response.body)
    cut = Response(body[: len(body) // 2], status_code=response.status_code)
    cut.headers["content-type"] = response.headers.get("content-type", "application/json")
    return cut
