"""What goes on the wire when a fake LLM fault fires: error statuses, garbled bodies, hangs, drops.

A dropped connection has no ASGI message, so :func:`drop` sends a start message no server can
write (no status) first and raises :class:`DroppedConnection` second: uvicorn then closes the
socket without a byte, and under an in-process transport the exception itself reaches the
client, as an httpx protocol error. This is why the fake LLM server imports httpx: only for
that exception class (as :mod:`bastion.exchange.paper.fault_responses` does).
"""

from __future__ import annotations

import contextlib
from typing import NoReturn

import httpx
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from bastion.llm.fake.envelope import json_response
from bastion.llm.fake.faults import LLMFault
from bastion.llm.fake.hangs import Hangs

__all__ = [
    "MALFORMED_BODY",
    "DroppedConnection",
    "DroppedResponse",
    "HangingResponse",
    "drop",
    "garble",
    "status_response",
]

MALFORMED_BODY = b"<fake LLM server: injected malformed body, not JSON>"


class DroppedConnection(httpx.RemoteProtocolError):
    """The fake server closed a connection on purpose (a ``drop`` fault or a released hang)."""


def status_response(fault: LLMFault, model: str) -> Response:
    """A ``status`` fault's answer: its status, OpenAI error body and headers."""
    response = json_response(fault.status or 500, fault.error_body(model))
    if fault.retry_after is not None:
        response.headers["retry-after"] = str(fault.retry_after)
    response.headers.update(fault.headers or {})
    return response


async def drop(send: Send, detail: str) -> NoReturn:
    """Close the connection without a response (see the module docstring for how)."""
    with contextlib.suppress(Exception):
        await send({"type": "http.response.start", "status": None, "headers": []})
    raise DroppedConnection(f"fake LLM server dropped the connection: {detail}")


class DroppedResponse(Response):
    """An answer that is no answer: the connection is closed."""

    def __init__(self, detail: str) -> None:
        super().__init__()
        self.detail = detail

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await drop(send, self.detail)


class HangingResponse(Response):
    """Never answers: waits for the client to leave, or drops when the hang is released."""

    def __init__(self, hangs: Hangs, detail: str) -> None:
        super().__init__()
        self.hangs = hangs
        self.detail = detail

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if await self.hangs.wait(receive):
            return  # the client is gone: there is no one to answer
        await drop(send, f"{self.detail} (released)")


def garble(fault: LLMFault | None, response: Response) -> Response:
    """Apply a fault that acts on the finished answer (``malformed``, ``truncated``)."""
    if fault is None or fault.kind not in ("malformed", "truncated"):
        return response
    if fault.kind == "malformed":
        return Response(MALFORMED_BODY, status_code=200, media_type="application/json")
    body = bytes(response.body)
    return Response(body[: len(body) // 2], status_code=200, media_type="application/json")
