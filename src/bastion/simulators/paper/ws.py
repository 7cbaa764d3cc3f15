"""The WebSocket face of the paper exchange: Deribit JSON-RPC text frames on ``/ws/api/v2``.

Each text frame is one JSON-RPC request (named params, an ``id``; no batches); each answer is
the same envelope the HTTP face sends (``jsonrpc, id, result|error, usIn, usOut, usDiff,
testnet``), produced by the same method table (:mod:`.methods`), so a call behaves identically
over either transport. What only a socket has (shared/deribit.md §1, §3):

- **Connection auth.** ``public/auth`` (``client_credentials``, ``client_signature`` as ccxt pro
  sends it, ``refresh_token``) authenticates the connection: later private calls on it need no
  token. An ``access_token`` param is accepted instead and wins over the connection's identity.
- **Cancel-on-disconnect.** ``private/enable_cancel_on_disconnect`` /
  ``private/disable_cancel_on_disconnect`` / ``private/get_cancel_on_disconnect`` take
  ``scope`` ``connection`` (default) or ``account``. When the socket closes for any reason
  (close frame, dropped TCP, missed heartbeat, server shutdown) and is authenticated:

  - with scope ``connection`` on: the still-resting orders *placed on this connection* are
    cancelled;
  - with scope ``account`` on for the socket's account: *every* resting order of the account is
    cancelled, however it was placed (HTTP included). The account setting outlives the socket
    that set it, as on Deribit, until disabled with ``scope=account``.

  Cancelled orders carry ``cancel_reason "cancel_on_disconnect"``. The cancellation runs
  synchronously in the handler's ``finally`` as soon as the server sees the close, so it is
  done before the next request to the venue is served. ``private/logout`` closes the socket
  without cancelling, as Deribit documents. Each close is recorded in :class:`WebSocketState`
  (``app.state.websocket``) so tests can wait on it.
- **Heartbeat.** ``public/set_heartbeat{interval>=10}`` makes the server send
  ``{"method":"heartbeat","params":{"type":"test_request"}}`` every ``interval`` seconds; a
  client that has not called ``public/test`` by the next beat is disconnected (close code
  1008), which triggers cancel-on-disconnect. ``public/disable_heartbeat`` stops it. Heartbeats
  run on wall time (they are transport liveness, not market time), scaled by
  ``WebSocketState.heartbeat_unit`` so tests need not wait tens of seconds.

Not served on the socket: subscriptions, and fault injection (faults apply to HTTP only).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketDisconnected

from bastion.simulators.paper.envelope import NO_ID, encode_envelope
from bastion.simulators.paper.errors import (
    AUTHORIZATION_REQUIRED,
    INTERNAL_SERVER_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    RpcError,
    invalid_argument,
    invalid_param,
)
from bastion.simulators.paper.methods import PRIVATE, PUBLIC, Call
from bastion.simulators.paper.params import Params

if TYPE_CHECKING:
    from bastion.simulators.paper.app import PaperExchangeApp

__all__ = [
    "CANCEL_REASON",
    "MIN_HEARTBEAT_SECONDS",
    "Disconnect",
    "WebSocketState",
    "serve_websocket",
    "websocket_state",
]

logger = logging.getLogger(__name__)

CANCEL_REASON = "cancel_on_disconnect"
MIN_HEARTBEAT_SECONDS = 10
HEARTBEAT_MISSED_CLOSE_CODE = 1008
_MAX_FRAME_BYTES = 32 * 1024  # the HTTP body limit, for the same reason
_SCOPES = ("connection", "account")
_NO_ID = NO_ID
# What sending on or closing a socket the peer has left raises (Starlette wraps OSError).
_GONE = (WebSocketDisconnect, WebSocketDisconnected, OSError)

Scope = Literal["connection", "account"]


@dataclass(frozen=True, slots=True)
class Disconnect:
    """One closed socket: whose it was, which cancel-on-disconnect applied, what it cancelled."""

    client_id: str | None
    scope: Scope | None
    cancelled: tuple[str, ...]
    timestamp_ms: int


@dataclass(slots=True)
class WebSocketState:
    """What the sockets of one app share: account-scope COD flags and a log of closes.

    ``disconnects`` is appended from the server's event loop and read from test threads, so
    :meth:`wait_for_close` waits on a condition variable rather than an asyncio event.
    """

    account_cod: set[str] = field(default_factory=set)
    disconnects: list[Disconnect] = field(default_factory=list)
    heartbeat_unit: float = 1.0
    _changed: threading.Condition = field(default_factory=threading.Condition, repr=False)

    def record(self, disconnect: Disconnect) -> None:
        with self._changed:
            self.disconnects.append(disconnect)
            self._changed.notify_all()

    def wait_for_close(self, client_id: str, timeout: float) -> Disconnect | None:
        """Block until a socket of ``client_id`` has closed; its record, or None on timeout."""

        def closed() -> Disconnect | None:
            return next((d for d in self.disconnects if d.client_id == client_id), None)

        with self._changed:
            return self._changed.wait_for(closed, timeout)


def websocket_state(app: PaperExchangeApp) -> WebSocketState:
    """The app's :class:`WebSocketState` (``app.state.websocket``), created on first use."""
    state = getattr(app.state, "websocket", None)
    if state is None:
        state = WebSocketState()
        app.state.websocket = state
    return cast("WebSocketState", state)


async def serve_websocket(websocket: WebSocket) -> None:
    """The ``/ws/api/v2`` endpoint: one :class:`_Connection` per socket."""
    await _Connection(cast("PaperExchangeApp", websocket.app), websocket).serve()


class _Connection:
    """One socket: its identity, its cancel-on-disconnect setting and its orders."""

    def __init__(self, app: PaperExchangeApp, websocket: WebSocket) -> None:
        self._app = app
        self._venue = app.venue
        self._ws = websocket
        self._state = websocket_state(app)
        self._client_id: str | None = None
        self._cod = False
        self._placed: set[str] = set()
        self._logged_out = False
        self._send_lock = asyncio.Lock()
        self._heartbeat: asyncio.Task[None] | None = None
        self._answered = True

    def _us(self) -> int:
        return round(self._venue.clock.time() * 1_000_000)

    async def serve(self) -> None:
        await self._ws.accept()
        try:
            while not self._logged_out:
                message = await self._ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text")
                if text is None:
                    text = (message.get("bytes") or b"").decode("utf-8", "replace")
                await self._send(self._handle(text))
            if self._logged_out:
                await self._close(1000)
        except _GONE:
            pass  # the peer vanished while we were answering: the finally does the rest
        finally:
            if self._heartbeat is not None:
                self._heartbeat.cancel()
            self._on_close()

    async def _send(self, payload: bytes) -> None:
        async with self._send_lock:
            await self._ws.send_text(payload.decode())

    async def _close(self, code: int) -> None:
        with contextlib.suppress(*_GONE):
            await self._ws.close(code)

    # -- requests -------------------------------------------------------------------------
    def _handle(self, text: str) -> bytes:
        us_in = self._us()
        rpc_id = _NO_ID
        method = "?"
        try:
            message = _message(text)
            rpc_id = message.get("id", _NO_ID)
            if rpc_id is _NO_ID:
                raise RpcError(INVALID_REQUEST, data={"reason": "a request needs an id"})
            named = message.get("method")
            if not isinstance(named, str):
                raise RpcError(INVALID_REQUEST, data={"reason": "method must be a string"})
            method = named
            raw = message.get("params")
            if raw is not None and not isinstance(raw, dict):
                raise invalid_param("params", "must be an object of named parameters")
            result = self._dispatch(method, Params(raw or {}))
        except RpcError as exc:
            return self._envelope(us_in, rpc_id, error=exc)
        except Exception as exc:
            logger.exception("paper exchange: unexpected error in %s over WebSocket", method)
            reason = {"reason": f"unexpected {type(exc).__name__}"}
            return self._envelope(us_in, rpc_id, error=RpcError(INTERNAL_SERVER_ERROR, data=reason))
        return self._envelope(us_in, rpc_id, result=result)

    def _dispatch(self, method: str, params: Params) -> Any:
        if method == "public/auth":
            result = PUBLIC[method](Call(self._venue, self._app.auth, params))
            self._client_id = self._identify(result["access_token"])
            return result
        if method == "public/test":
            self._answered = True
        elif method == "public/set_heartbeat":
            return self._set_heartbeat(params)
        elif method == "public/disable_heartbeat":
            self._stop_heartbeat()
            return "ok"
        handler = PUBLIC.get(method)
        if handler is not None:
            return handler(Call(self._venue, self._app.auth, params))
        if method in _CONNECTION_METHODS:
            return _CONNECTION_METHODS[method](self, self._caller(params), params)
        handler = PRIVATE.get(method)
        if handler is None:
            raise RpcError(METHOD_NOT_FOUND)
        result = handler(Call(self._venue, self._app.auth, params, self._caller(params)))
        if method in ("private/buy", "private/sell"):
            order = result["order"]
            if order.get("order_state") == "open":
                self._placed.add(str(order["order_id"]))
        return result

    def _identify(self, token: str) -> str:
        return self._app.auth.identify(f"Bearer {token}", method="GET", target="", body="")

    def _caller(self, params: Params) -> str:
        """The client id of a private call: its ``access_token``, else the connection's."""
        if "access_token" in params:
            return self._identify(params.text("access_token"))
        if self._client_id is None:
            raise RpcError(
                AUTHORIZATION_REQUIRED,
                data={"reason": "call public/auth on this connection or send access_token"},
            )
        return self._client_id

    def _envelope(
        self, us_in: int, rpc_id: Any, *, result: Any = None, error: RpcError | None = None
    ) -> bytes:
        content, _ = encode_envelope(
            us_in, self._us(), rpc_id, testnet=self._app.testnet, result=result, error=error
        )
        return content

    # -- cancel-on-disconnect -------------------------------------------------------------
    def _enable(self, client_id: str, params: Params) -> str:
        if _scope(params) == "account":
            self._state.account_cod.add(client_id)
        else:
            self._cod = True
        return "ok"

    def _disable(self, client_id: str, params: Params) -> str:
        if _scope(params) == "account":
            self._state.account_cod.discard(client_id)
        else:
            self._cod = False
        return "ok"

    def _get(self, client_id: str, params: Params) -> dict[str, Any]:
        scope = _scope(params)
        enabled = client_id in self._state.account_cod if scope == "account" else self._cod
        return {"scope": scope, "enabled": enabled}

    def _logout(self, client_id: str, params: Params) -> None:
        """``private/logout``: close gracefully; Deribit does not cancel on a logout."""
        self._logged_out = True

    def _on_close(self) -> None:
        """Cancel what cancel-on-disconnect covers, then record the close."""
        client_id = self._client_id
        scope: Scope | None = None
        cancelled: list[str] = []
        now_ms = self._venue.market.now_ms
        if client_id is not None and not self._logged_out:
            if client_id in self._state.account_cod:
                scope = "account"
            elif self._cod:
                scope = "connection"
        if client_id is not None and scope is not None:
            try:
                now_ms = self._venue.sync()
                account = self._venue.account(client_id)
                engine = self._venue.engine
                for order in engine.open_orders(account_id=account.account_id):
                    if scope == "account" or order.order_id in self._placed:
                        engine.cancel_order(order, reason=CANCEL_REASON, now_ms=now_ms)
                        cancelled.append(order.order_id)
            except Exception:
                logger.exception("paper exchange: cancel-on-disconnect failed for %s", client_id)
        self._state.record(Disconnect(client_id, scope, tuple(cancelled), now_ms))

    # -- heartbeat ------------------------------------------------------------------------
    def _set_heartbeat(self, params: Params) -> str:
        interval = params.number("interval")
        if interval < MIN_HEARTBEAT_SECONDS:
            raise invalid_argument("interval", f"must be at least {MIN_HEARTBEAT_SECONDS}")
        self._stop_heartbeat()
        self._answered = True
        seconds = interval * self._state.heartbeat_unit
        self._heartbeat = asyncio.get_running_loop().create_task(self._beat(seconds))
        return "ok"

    def _stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None

    async def _beat(self, seconds: float) -> None:
        request = orjson.dumps(
            {"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "test_request"}}
        )
        try:
            while True:
                await asyncio.sleep(seconds)
                if not self._answered:
                    await self._close(HEARTBEAT_MISSED_CLOSE_CODE)
                    return
                self._answered = False
                await self._send(request)
        except _GONE:
            return


_CONNECTION_METHODS: dict[str, Callable[[_Connection, str, Params], Any]] = {
    "private/enable_cancel_on_disconnect": _Connection._enable,
    "private/disable_cancel_on_disconnect": _Connection._disable,
    "private/get_cancel_on_disconnect": _Connection._get,
    "private/logout": _Connection._logout,
}


def _scope(params: Params) -> Scope:
    return cast("Scope", params.choice("scope", _SCOPES, "connection"))


def _message(text: str) -> dict[str, Any]:
    if len(text) > _MAX_FRAME_BYTES:
        raise RpcError(INVALID_REQUEST, "request entity too large")
    try:
        decoded: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise RpcError(PARSE_ERROR, data={"reason": "frame is not valid JSON"}) from None
    if not isinstance(decoded, dict):
        reason = "a frame must be one JSON-RPC request object (batches are not supported)"
        raise RpcError(INVALID_REQUEST, data={"reason": reason})
    return {str(key): value for key, value in decoded.items()}
