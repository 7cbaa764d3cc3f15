"""The WebSocket face of the paper exchange: Deribit JSON-RPC text frames on ``/ws/api/v2``.

Each text frame is one JSON-RPC request (named params, an ``id``; no batches); each answer is
the same envelope the HTTP face sends (``jsonrpc, id, result|error, usIn, usOut, usDiff,
testnet``), decoded, checked and dispatched by the same code (:mod:`.rpc`, :mod:`.methods`), so
a call behaves identically over either transport. What only a socket has (shared/deribit.md
§1, §3):

- **Subscriptions.** ``public/subscribe``, ``private/subscribe``, ``public/unsubscribe``,
  ``private/unsubscribe``, ``public/unsubscribe_all`` and ``private/unsubscribe_all``, for the
  channels of :mod:`.channels`, by the rules of :mod:`.subscriptions`; notifications
  (``{"method": "subscription", "params": {channel, data}}``) are pushed by the app's
  :mod:`.feed`. A client that stops reading while more than :data:`MAX_QUEUED_NOTIFICATIONS`
  pile up is disconnected (close code 1008), as an exchange drops a slow consumer rather than
  buffer for it forever.

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

Not served on the socket: fault injection (faults apply to HTTP only).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, cast

import orjson
from starlette.datastructures import State
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketDisconnected

from bastion.simulators.paper import rpc
from bastion.simulators.paper.auth import Authenticator
from bastion.simulators.paper.envelope import NO_ID, encode_envelope
from bastion.simulators.paper.errors import (
    AUTHORIZATION_REQUIRED,
    RpcError,
    invalid_argument,
)
from bastion.simulators.paper.feed import Feed
from bastion.simulators.paper.params import Params
from bastion.simulators.paper.subscriptions import Subscriptions
from bastion.simulators.paper.venue import PaperVenue

__all__ = [
    "CANCEL_REASON",
    "MAX_QUEUED_NOTIFICATIONS",
    "MIN_HEARTBEAT_SECONDS",
    "Disconnect",
    "WebSocketServer",
    "WebSocketState",
    "websocket_state",
]

logger = logging.getLogger(__name__)

CANCEL_REASON = "cancel_on_disconnect"
MIN_HEARTBEAT_SECONDS = 10
HEARTBEAT_MISSED_CLOSE_CODE = 1008
SLOW_CONSUMER_CLOSE_CODE = 1008
MAX_QUEUED_NOTIFICATIONS = 10_000
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


class _HasState(Protocol):
    @property
    def state(self) -> State: ...


def websocket_state(app: _HasState) -> WebSocketState:
    """The app's :class:`WebSocketState` (``app.state.websocket``), created on first use."""
    state = getattr(app.state, "websocket", None)
    if state is None:
        state = WebSocketState()
        app.state.websocket = state
    return cast("WebSocketState", state)


class WebSocketServer:
    """The ``/ws/api/v2`` endpoint of one venue: :meth:`serve` runs one socket.

    It takes what it serves explicitly (the app builds it) rather than reaching into the app,
    so this module needs nothing from :mod:`.app`.
    """

    def __init__(
        self,
        *,
        venue: PaperVenue,
        auth: Authenticator,
        feed: Feed,
        state: WebSocketState,
        testnet: bool = True,
    ) -> None:
        self.venue = venue
        self.auth = auth
        self.feed = feed
        self.state = state
        self.testnet = testnet

    async def serve(self, websocket: WebSocket) -> None:
        await _Connection(self, websocket).serve()


class _Connection:
    """One socket: its identity, subscriptions, cancel-on-disconnect setting and orders."""

    def __init__(self, server: WebSocketServer, websocket: WebSocket) -> None:
        self._server = server
        self._venue = server.venue
        self._auth = server.auth
        self._feed = server.feed
        self._ws = websocket
        self._state = server.state
        self._client_id: str | None = None
        self._cod = False
        self._placed: set[str] = set()
        self._logged_out = False
        self._send_lock = asyncio.Lock()
        self._heartbeat: asyncio.Task[None] | None = None
        self._answered = True
        self._subscriptions = Subscriptions(self._venue)
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue(MAX_QUEUED_NOTIFICATIONS)
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None

    @property
    def subscriptions(self) -> Subscriptions:
        return self._subscriptions

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
            self._feed.detach(self)
            for task in (self._heartbeat, self._writer):
                if task is not None:
                    task.cancel()
            self._on_close()

    async def _send(self, payload: bytes) -> None:
        async with self._send_lock:
            await self._ws.send_text(payload.decode())

    async def _close(self, code: int) -> None:
        with contextlib.suppress(*_GONE):
            await self._ws.close(code)

    # -- notifications --------------------------------------------------------------------
    def deliver(self, frames: list[bytes]) -> None:
        """Queue notifications for the writer; a reader this far behind is disconnected."""
        for frame in frames:
            try:
                self._outbox.put_nowait(frame)
            except asyncio.QueueFull:
                if self._closer is None:
                    logger.warning("paper exchange: dropping a socket that stopped reading")
                    self._closer = asyncio.get_running_loop().create_task(
                        self._close(SLOW_CONSUMER_CLOSE_CODE)
                    )
                return

    async def _write(self) -> None:
        try:
            while True:
                await self._send(await self._outbox.get())
        except _GONE:
            return

    def _follow(self) -> None:
        """Start receiving notifications (on the first subscribe)."""
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write())
        self._feed.attach(self)
        self._feed.flush_soon()

    # -- requests -------------------------------------------------------------------------
    def _handle(self, text: str) -> bytes:
        us_in = self._us()
        rpc_id = _NO_ID
        method = "?"
        try:
            message = rpc.decode(text, what="frame")
            rpc_id = message.get("id", _NO_ID)
            request = rpc.read(message, require_id=True)
            method = request.method
            result = self._dispatch(request)
        except RpcError as exc:
            return self._envelope(us_in, rpc_id, error=exc)
        except Exception as exc:
            error = rpc.internal_error(exc, method, transport="WebSocket")
            return self._envelope(us_in, rpc_id, error=error)
        return self._envelope(us_in, rpc_id, result=result)

    def _dispatch(self, request: rpc.RpcRequest) -> Any:
        method, params = request.method, request.params
        if method == "public/test":
            self._answered = True
        own = _CONNECTION_METHODS.get(method)
        if own is not None:
            caller = self._caller(params) if rpc.is_private(method) else None
            return own(self, caller, params)
        result = rpc.dispatch(
            request, venue=self._venue, auth=self._auth, caller=lambda: self._caller(params)
        )
        if method == "public/auth":
            self._client_id = self._identify(result["access_token"])
        elif method in ("private/buy", "private/sell"):
            order = result["order"]
            if order.get("order_state") == "open":
                self._placed.add(str(order["order_id"]))
        return result

    def _identify(self, token: str) -> str:
        return self._auth.identify(f"Bearer {token}", method="GET", target="", body="")

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
            us_in, self._us(), rpc_id, testnet=self._server.testnet, result=result, error=error
        )
        return content

    # -- subscriptions --------------------------------------------------------------------
    def _subscribe(self, caller: str | None, params: Params) -> list[str]:
        """``public/subscribe`` (``caller`` None) or ``private/subscribe``."""
        names = params.strings("channels")
        session = caller
        if session is None:
            session = self._caller(params) if "access_token" in params else self._client_id
        subscribed = self._subscriptions.subscribe(
            names, client_id=session, private=caller is not None
        )
        if subscribed:
            self._follow()
        return subscribed

    def _unsubscribe(self, caller: str | None, params: Params) -> list[str]:
        return self._subscriptions.unsubscribe(params.strings("channels"))

    def _unsubscribe_all(self, caller: str | None, params: Params) -> str:
        self._subscriptions.clear()
        return "ok"

    # -- cancel-on-disconnect -------------------------------------------------------------
    def _enable(self, client_id: str | None, params: Params) -> str:
        if _scope(params) == "account":
            self._state.account_cod.add(_known(client_id))
        else:
            self._cod = True
        return "ok"

    def _disable(self, client_id: str | None, params: Params) -> str:
        if _scope(params) == "account":
            self._state.account_cod.discard(_known(client_id))
        else:
            self._cod = False
        return "ok"

    def _get(self, client_id: str | None, params: Params) -> dict[str, Any]:
        scope = _scope(params)
        enabled = _known(client_id) in self._state.account_cod if scope == "account" else self._cod
        return {"scope": scope, "enabled": enabled}

    def _logout(self, client_id: str | None, params: Params) -> None:
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
    def _set_heartbeat(self, caller: str | None, params: Params) -> str:
        interval = params.number("interval")
        if interval < MIN_HEARTBEAT_SECONDS:
            raise invalid_argument("interval", f"must be at least {MIN_HEARTBEAT_SECONDS}")
        self._stop_heartbeat()
        self._answered = True
        seconds = interval * self._state.heartbeat_unit
        self._heartbeat = asyncio.get_running_loop().create_task(self._beat(seconds))
        return "ok"

    def _disable_heartbeat(self, caller: str | None, params: Params) -> str:
        self._stop_heartbeat()
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


_ConnectionMethod = Callable[[_Connection, str | None, Params], Any]

# The WEBSOCKET_ONLY methods of .methods, served by the connection itself. A private one gets
# the caller's client id (10000 before it runs when there is none); a public one gets None.
_CONNECTION_METHODS: dict[str, _ConnectionMethod] = {
    "public/subscribe": _Connection._subscribe,
    "private/subscribe": _Connection._subscribe,
    "public/unsubscribe": _Connection._unsubscribe,
    "private/unsubscribe": _Connection._unsubscribe,
    "public/unsubscribe_all": _Connection._unsubscribe_all,
    "private/unsubscribe_all": _Connection._unsubscribe_all,
    "public/set_heartbeat": _Connection._set_heartbeat,
    "public/disable_heartbeat": _Connection._disable_heartbeat,
    "private/enable_cancel_on_disconnect": _Connection._enable,
    "private/disable_cancel_on_disconnect": _Connection._disable,
    "private/get_cancel_on_disconnect": _Connection._get,
    "private/logout": _Connection._logout,
}


def _known(client_id: str | None) -> str:
    """The caller of a private connection method (always set: private calls authenticate)."""
    if client_id is None:
        raise RpcError(AUTHORIZATION_REQUIRED)
    return client_id


def _scope(params: Params) -> Scope:
    return cast("Scope", params.choice("scope", _SCOPES, "connection"))
