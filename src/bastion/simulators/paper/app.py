"""The HTTP face of the paper exchange: Deribit's JSON-RPC over GET and POST, as an ASGI app.

Accepted forms (shared/deribit.md §1):

- ``GET /api/v2/{public|private}/{method}?k=v...`` (what ccxt sends; an ``id`` in the query is
  echoed, otherwise the response has no ``id``);
- ``POST /api/v2/{public|private}/{method}`` with a JSON-RPC body (``method`` in the body, if
  any, must agree with the path);
- ``POST /api/v2`` with the method in the body. A POST with an empty body reads its params from
  the query string, like a GET.

The request is then decoded, checked and dispatched by :mod:`.rpc`, the same code the
WebSocket face (:mod:`.ws`, served at ``/ws/api/v2``) uses, so both transports accept and
refuse exactly the same requests. Methods only a socket can serve (subscriptions, heartbeats,
cancel-on-disconnect) answer 10030 ``must_be_websocket_request`` here.

Every answer is the Deribit envelope (``jsonrpc, id?, result|error, usIn, usOut, usDiff,
testnet``) serialised by orjson in a fixed key order, with times from the injected clock, so a
session on a ``SimClock`` is byte-identical run to run. Errors are HTTP 400, except 401 for
auth codes and 429 for rate limits; nothing escapes as a 500: an unexpected exception is logged
and answered with Deribit's 11094 ``internal_server_error``.

The exceptions are deliberate: faults armed on ``app.faults`` (:mod:`.faults`) are applied to
every call of a known method after it is counted and before it is authenticated, and can answer
any status, hang or drop the connection. Their loopback-only control routes live under
``/_paper/`` (:mod:`.control`) and are not JSON-RPC methods.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute

from bastion.clock import Clock
from bastion.simulators.faults.responses import DroppedResponse, HangingResponse
from bastion.simulators.paper import rpc
from bastion.simulators.paper.auth import Authenticator
from bastion.simulators.paper.control import FaultControl, ShockControl
from bastion.simulators.paper.envelope import NO_ID, encode_envelope
from bastion.simulators.paper.errors import (
    BAD_REQUEST,
    METHOD_NOT_FOUND,
    RpcError,
    http_status_for,
)
from bastion.simulators.paper.fault_responses import SERVER, garble, with_retry_after
from bastion.simulators.paper.faults import Fault, FaultInjector, InjectedCrash
from bastion.simulators.paper.feed import Feed
from bastion.simulators.paper.venue import PaperVenue
from bastion.simulators.paper.ws import WebSocketServer, WebSocketState

__all__ = ["MAX_BODY_BYTES", "PaperExchangeApp"]

MAX_BODY_BYTES = rpc.MAX_MESSAGE_BYTES
_MAX_QUERY_FIELDS = 100
_HTTP_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_NO_ID = NO_ID


class PaperExchangeApp(Starlette):
    """A Starlette app serving one :class:`PaperVenue` (also at ``app.state.venue``).

    ``app.feed`` pushes the venue's changes to WebSocket subscribers (:mod:`.feed`; tests may
    shorten ``app.feed.tick_seconds``) and ``app.websocket`` serves the sockets (:mod:`.ws`).
    """

    def __init__(
        self,
        *,
        venue: PaperVenue,
        auth: Authenticator,
        clock: Clock,
        testnet: bool = True,
        faults: FaultInjector | None = None,
    ) -> None:
        self.faults = faults if faults is not None else FaultInjector()
        self.feed = Feed(venue)
        self.websocket = WebSocketServer(
            venue=venue,
            auth=auth,
            feed=self.feed,
            state=WebSocketState(),
            testnet=testnet,
        )
        super().__init__(
            routes=[
                Route("/api/v2/{scope}/{method}", self._endpoint, methods=_HTTP_METHODS),
                Route("/api/v2", self._endpoint, methods=_HTTP_METHODS),
                Route("/api/v2/", self._endpoint, methods=_HTTP_METHODS),
                WebSocketRoute("/ws/api/v2", self.websocket.serve),
                *FaultControl(self.faults).routes,
                *ShockControl(venue.market).routes,
                Route("/{path:path}", self._endpoint, methods=_HTTP_METHODS),
            ]
        )
        self.venue = venue
        self.auth = auth
        self.testnet = testnet
        self._clock = clock
        self.state.venue = venue
        self.state.faults = self.faults
        self.state.websocket = self.websocket.state

    def _us(self) -> int:
        return round(self._clock.time() * 1_000_000)

    async def _endpoint(self, request: Request) -> Response:
        us_in = self._us()
        rpc_id = _NO_ID
        method = "?"
        fault: Fault | None = None
        try:
            body = await request.body()
            message = _message(request, body)
            rpc_id = message.get("id", _NO_ID)
            call = rpc.read(message, require_id=False, method=_path_method(request, message))
            method = call.method
            fault = self.faults.take(method)  # every call of a real method is counted
            answer = None if fault is None else await self._fault(fault, method, us_in, rpc_id)
            if answer is not None:
                return answer
            result = rpc.dispatch(
                call, venue=self.venue, auth=self.auth, caller=lambda: self._caller(request, body)
            )
        except RpcError as exc:
            response = self._respond(us_in, rpc_id, error=exc)
        except Exception as exc:
            error = rpc.internal_error(exc, method, transport="HTTP")
            response = self._respond(us_in, rpc_id, error=error)
        else:
            response = self._respond(us_in, rpc_id, result=result)
        return response if fault is None else garble(fault, response)

    async def _fault(self, fault: Fault, method: str, us_in: int, rpc_id: Any) -> Response | None:
        """The answer a fault gives before the venue sees the call, or None to go on."""
        spec = fault.spec
        match spec.kind:
            case "crash":
                raise InjectedCrash(f"injected crash in {method}")
            case "error":
                raise RpcError(spec.deribit_code, spec.message)
            case "delay":
                await asyncio.sleep(spec.seconds or 0.0)
                return None
            case "hang":
                detail = f"hang injected in {method}"
                return HangingResponse(self.faults.hangs, SERVER, detail, key=fault.id)
            case "drop":
                return DroppedResponse(SERVER, f"drop injected in {method}")
            case "status" if spec.body is not None:
                answer = Response(
                    spec.body.encode(), spec.status or 500, media_type=spec.content_type
                )
            case "status":
                error = RpcError(spec.deribit_code, spec.message)
                answer = self._respond(us_in, rpc_id, error=error)
                answer.status_code = spec.status or 500
            case _:  # malformed, truncated: the venue handles the call, the answer is garbled
                return None
        return with_retry_after(fault, answer)

    def _caller(self, request: Request, body: bytes) -> str:
        """The client a private call comes from, by its Authorization header."""
        return self.auth.identify(
            request.headers.get("authorization"),
            method=request.method,
            target=_raw_target(request),
            body=body.decode("utf-8", "replace"),
        )

    def _respond(
        self, us_in: int, rpc_id: Any, *, result: Any = None, error: RpcError | None = None
    ) -> Response:
        content, error = encode_envelope(
            us_in, self._us(), rpc_id, testnet=self.testnet, result=result, error=error
        )
        status = 200 if error is None else http_status_for(error.code)
        return Response(content, status_code=status, media_type="application/json")


_MAX_INT_ID_DIGITS = 18  # below 2**63: orjson and every JSON client handle it as an integer


def _raw_target(request: Request) -> str:
    """Path and query exactly as the client sent them: what a deri-hmac-sha256 signs."""
    scope = request.scope
    path: bytes = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope.get("query_string", b"")
    return (path + b"?" + query if query else path).decode("latin-1")


def _message(request: Request, body: bytes) -> dict[str, Any]:
    """The JSON-RPC message: the POST body, or one built from the query string."""
    if request.method == "POST" and body.strip():
        return rpc.decode(body, what="body")
    if request.method not in ("GET", "HEAD", "POST"):
        reason = f"HTTP method {request.method} is not supported; use GET or POST"
        raise RpcError(BAD_REQUEST, data={"reason": reason})
    params: dict[str, Any] = dict(_query(request.scope.get("query_string", b"")))
    message: dict[str, Any] = {}
    if "id" in params:
        text = params.pop("id")
        # A JSON-RPC id is echoed back: keep it an int only where every client can read one.
        message["id"] = int(text) if text.isdecimal() and len(text) <= _MAX_INT_ID_DIGITS else text
    params.pop("jsonrpc", None)
    message["params"] = params
    return message


def _query(raw: bytes) -> list[tuple[str, str]]:
    try:
        return parse_qsl(
            raw.decode("ascii"),
            keep_blank_values=True,
            errors="strict",
            max_num_fields=_MAX_QUERY_FIELDS,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise RpcError(BAD_REQUEST, data={"reason": f"unreadable query string: {exc}"}) from None


def _path_method(request: Request, message: dict[str, Any]) -> str | None:
    """The method the URL names (``/api/v2/{scope}/{method}``), None for ``/api/v2``.

    Anything else (the catch-all route), and ``/api/v2`` with no method in the body, serves
    no method at all.
    """
    scope, name = request.path_params.get("scope"), request.path_params.get("method")
    if scope is not None and name is not None:
        return f"{scope}/{name}"
    if "path" in request.path_params or message.get("method") is None:
        raise RpcError(METHOD_NOT_FOUND)
    return None
