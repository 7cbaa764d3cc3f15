"""Deribit JSON-RPC over one WebSocket: the session :class:`DeribitClient` keeps when configured.

A socket is what cancel-on-disconnect needs: Deribit (and the paper exchange) cancel the
resting orders of a connection that enabled it as soon as that connection drops, so an agent
whose process dies or loses the network leaves nothing working in the market.

:class:`DeribitWsSession` connects to ``{base_url}/ws/api/v2`` (``ws://`` for ``http://``,
``wss://`` for ``https://``), authenticates the connection with ``public/auth``
``client_credentials`` (so private calls carry no token), and multiplexes requests: each gets
the next integer id, one reader task matches replies to waiters by id, so any number of
requests may be in flight at once. Server notifications are not requests: a heartbeat
``test_request`` is answered with ``public/test`` by the reader, anything else is ignored.

Failures are :class:`~bastion.errors.ExchangeError`: a JSON-RPC ``error`` keeps its Deribit code
(``exchange_code``) and is classified by the client's table
(:func:`bastion.exchange.deribit.rpc_error`), the one HTTP replies go through too; a socket
that cannot be opened or is lost is ``NETWORK``; no reply within ``timeout`` is ``TIMEOUT``,
with the limit as the error's ``timeout``. After a drop the next request reconnects (and
re-enables cancel-on-disconnect if it was on); after :meth:`DeribitWsSession.close` the session
stays closed. Retries, breakers and halts are not
this module's business: :func:`bastion.resilience.call` wraps each request in the client.

The client secret is a :class:`~pydantic.SecretStr`, read only to build the ``public/auth``
params; it never appears in a repr, a log line or an exception message.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from typing import Any, Literal

import orjson
from pydantic import SecretStr
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from bastion.errors import ErrorCode, ExchangeError, UsageError
from bastion.exchange.deribit_errors import rpc_error
from bastion.resilience import error_message
from bastion.sensitive import mask_url

__all__ = ["DeribitWsSession", "websocket_url"]

logger = logging.getLogger(__name__)

_REDACTED = "[REDACTED]"
_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
_TRANSPORT_ERRORS = (OSError, InvalidHandshake, InvalidURI, ConnectionClosed, TimeoutError)

CancelScope = Literal["connection", "account"]


def websocket_url(base_url: str) -> str:
    """``{base_url}/ws/api/v2`` with the scheme turned from http(s) into ws(s)."""
    base = base_url.rstrip("/")
    for http, ws in (("https://", "wss://"), ("http://", "ws://")):
        if base.startswith(http):
            return ws + base.removeprefix(http) + "/ws/api/v2"
    if base.startswith(("ws://", "wss://")):
        return base if base.endswith("/ws/api/v2") else base + "/ws/api/v2"
    raise UsageError(
        f"base_url {mask_url(base_url)!r} must start with http://, https://, ws:// or wss://"
    )


class DeribitWsSession:
    """One authenticated Deribit WebSocket; ``name`` labels the dependency in messages."""

    def __init__(
        self,
        *,
        base_url: str,
        client_id: str,
        client_secret: SecretStr,
        timeout: float = 10.0,
        name: str = "deribit",
        cancel_on_disconnect: bool = False,
    ) -> None:
        """``cancel_on_disconnect`` asks for it (connection scope) on every (re)connect."""
        if not isinstance(client_secret, SecretStr):
            raise UsageError("client_secret must be a pydantic SecretStr, never a plain str")
        self.name = name
        self.url = websocket_url(base_url)
        self._client_id = client_id
        self._secret = client_secret
        self._timeout = timeout
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._conn: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._connect_lock = asyncio.Lock()
        self._cod_scope: CancelScope | None = "connection" if cancel_on_disconnect else None
        self._closed = False
        self.connects = 0

    def __repr__(self) -> str:
        return (
            f"DeribitWsSession(name={self.name!r}, url={mask_url(self.url)!r}, "
            f"client_id={self._client_id!r}, connected={self.connected})"
        )

    @property
    def connected(self) -> bool:
        """True while the socket is open and its reader is running."""
        return self._conn is not None and self._reader is not None and not self._reader.done()

    async def __aenter__(self) -> DeribitWsSession:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- the API ------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open and authenticate the socket if it is not open (reconnects after a drop)."""
        if self._closed:
            raise UsageError("this DeribitWsSession was closed; make a new one")
        async with self._connect_lock:
            if self.connected:
                return
            await self._discard()
            dependency = f"{self.name} websocket"
            try:
                conn = await connect(
                    self.url, max_size=_MAX_MESSAGE_BYTES, open_timeout=self._timeout
                )
            except _TRANSPORT_ERRORS as exc:
                raise self._network(dependency, exc) from exc
            self._conn = conn
            self._reader = asyncio.get_running_loop().create_task(self._read(conn))
            self.connects += 1
            try:
                await self._send_and_wait(
                    "public/auth",
                    {
                        "grant_type": "client_credentials",
                        "client_id": self._client_id,
                        "client_secret": self._secret.get_secret_value(),
                    },
                )
                if self._cod_scope is not None:
                    params = {"scope": self._cod_scope}
                    await self._send_and_wait("private/enable_cancel_on_disconnect", params)
            except BaseException:
                # Never leave an unauthenticated socket behind for the next request to use.
                await self._close_socket(conn)
                await self._discard()
                raise

    async def request(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Send one JSON-RPC request and return its ``result`` (or raise ExchangeError)."""
        await self.connect()
        return await self._send_and_wait(method, params or {})

    async def enable_cancel_on_disconnect(self, scope: CancelScope = "connection") -> None:
        """Have the exchange cancel resting orders when this socket drops (kept on reconnect)."""
        await self.request("private/enable_cancel_on_disconnect", {"scope": scope})
        self._cod_scope = scope

    async def disable_cancel_on_disconnect(self, scope: CancelScope = "connection") -> None:
        await self.request("private/disable_cancel_on_disconnect", {"scope": scope})
        self._cod_scope = None

    async def set_heartbeat(self, interval: int) -> None:
        """Ask the exchange for heartbeats every ``interval`` s (>= 10); the reader answers."""
        await self.request("public/set_heartbeat", {"interval": interval})

    async def close(self) -> None:
        """Close the socket with a close frame; the session cannot be used after. Idempotent."""
        self._closed = True
        if self._conn is not None:
            await self._close_socket(self._conn)
        await self._discard()

    async def _close_socket(self, conn: ClientConnection) -> None:
        with contextlib.suppress(*_TRANSPORT_ERRORS):
            await asyncio.wait_for(conn.close(), self._timeout)

    async def abort(self) -> None:
        """Drop the TCP connection without a close frame, as a crash or a cut cable would.

        The session may reconnect on the next request; tests use this to prove that
        cancel-on-disconnect does not depend on a polite goodbye.
        """
        conn = self._conn
        if conn is not None:
            conn.transport.abort()
        await self._discard()

    # -- plumbing -------------------------------------------------------------------------

    async def _send_and_wait(self, method: str, params: dict[str, Any]) -> Any:
        dependency = f"{self.name} {method}"
        conn = self._conn
        if conn is None or not self.connected:
            raise ExchangeError(
                error_message(dependency, ErrorCode.NETWORK, "(websocket not connected)"),
                code=ErrorCode.NETWORK,
                dependency=dependency,
            )
        rpc_id = next(self._ids)
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rpc_id] = waiter
        message = {"jsonrpc": "2.0", "id": rpc_id, "method": method, "params": params}
        try:
            await conn.send(orjson.dumps(message).decode())
            reply = await asyncio.wait_for(waiter, self._timeout)
        except TimeoutError:
            if waiter.done():  # the reader failed it, and wait_for ran out at the same time
                reply = waiter.result()
            else:
                detail = f"(no reply within {self._timeout:g} s)"
                raise ExchangeError(
                    error_message(dependency, ErrorCode.TIMEOUT, detail),
                    code=ErrorCode.TIMEOUT,
                    dependency=dependency,
                    timeout=self._timeout,
                ) from None
        except _TRANSPORT_ERRORS as exc:
            raise self._network(dependency, exc) from exc
        finally:
            self._pending.pop(rpc_id, None)
        return self._unwrap(dependency, reply)

    def _unwrap(self, dependency: str, reply: dict[str, Any]) -> Any:
        error = reply.get("error")
        if isinstance(error, dict) and isinstance(error.get("code"), int):
            raise rpc_error(dependency, error, redact=self._redact)
        if "result" not in reply:
            detail = "(reply has neither result nor error)"
            raise ExchangeError(
                error_message(dependency, ErrorCode.INVALID_RESPONSE, detail),
                code=ErrorCode.INVALID_RESPONSE,
                dependency=dependency,
            )
        return reply["result"]

    async def _read(self, conn: ClientConnection) -> None:
        """Route replies to their waiters until the socket ends, then fail whoever still waits."""
        failure: BaseException | None = None
        try:
            async for frame in conn:
                try:
                    message = orjson.loads(frame)
                except orjson.JSONDecodeError:
                    logger.warning("%s websocket: ignoring a frame that is not JSON", self.name)
                    continue
                if not isinstance(message, dict):
                    continue
                rpc_id = message.get("id")
                waiter = self._pending.get(rpc_id) if isinstance(rpc_id, int) else None
                if waiter is not None:
                    if not waiter.done():
                        waiter.set_result(message)
                elif message.get("method") == "heartbeat":
                    await self._answer_heartbeat(conn, message)
        except ConnectionClosed as exc:
            failure = exc
        except OSError as exc:
            failure = exc
        finally:
            self._fail_pending(failure)

    async def _answer_heartbeat(self, conn: ClientConnection, message: dict[str, Any]) -> None:
        params = message.get("params")
        if isinstance(params, dict) and params.get("type") == "test_request":
            # The reply is not awaited: nothing waits on this id, so the reader drops it.
            probe = {"jsonrpc": "2.0", "id": next(self._ids), "method": "public/test"}
            await conn.send(orjson.dumps(probe | {"params": {}}).decode())

    def _fail_pending(self, failure: BaseException | None) -> None:
        dependency = f"{self.name} websocket"
        why = f"(connection lost: {type(failure).__name__})" if failure else "(connection closed)"
        for waiter in self._pending.values():
            if not waiter.done():
                waiter.set_exception(
                    ExchangeError(
                        error_message(dependency, ErrorCode.NETWORK, why),
                        code=ErrorCode.NETWORK,
                        dependency=dependency,
                    )
                )

    async def _discard(self) -> None:
        """Forget the socket and stop its reader (which fails any waiter left)."""
        reader, self._reader, self._conn = self._reader, None, None
        if reader is not None and not reader.done():
            reader.cancel()
            # asyncio.wait, not await: our own cancellation must propagate, the reader's not.
            await asyncio.wait([reader])
            self._fail_pending(None)

    def _network(self, dependency: str, exc: BaseException) -> ExchangeError:
        detail = self._redact(f"({type(exc).__name__}: {str(exc)[:200]})")
        return ExchangeError(
            error_message(dependency, ErrorCode.NETWORK, detail),
            code=ErrorCode.NETWORK,
            dependency=dependency,
        )

    def _redact(self, text: str) -> str:
        secret = self._secret.get_secret_value()
        return text.replace(secret, _REDACTED) if secret else text
