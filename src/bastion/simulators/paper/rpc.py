"""JSON-RPC requests of the paper exchange: one decoder and one dispatcher for both transports.

HTTP (:mod:`.app`) and WebSocket (:mod:`.ws`) differ only in where a request comes from (a
body, a query string or a text frame) and who the caller is (a header, or the socket's
session). Everything else happens here, once, so both validate a request identically:

1. :func:`decode` turns a body or frame into one JSON object: over 32 kB is ``-32600``
   "request entity too large", not JSON is ``-32700``, a batch or a scalar is ``-32600``;
2. :func:`read` checks the object: ``method`` must be a string naming a served method
   (``-32601`` otherwise; where the transport also names one, in the URL path, they must
   agree), ``params`` must be an object of named parameters (``-32602``), and where the
   transport requires it (WebSocket: Deribit's "client requests must carry an id") the id
   must be there (``-32600``);
3. :func:`dispatch` runs the method's handler from :mod:`.methods`, asking the transport for
   the caller only when the method is private.

An exception a handler did not mean to raise becomes :func:`internal_error` (11094, logged),
so no request is ever answered with a 500 or a dropped socket.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from bastion.simulators.paper.auth import Authenticator
from bastion.simulators.paper.envelope import NO_ID
from bastion.simulators.paper.errors import (
    INTERNAL_SERVER_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    RpcError,
    invalid_param,
)
from bastion.simulators.paper.methods import PRIVATE, PUBLIC, Call
from bastion.simulators.paper.params import Params
from bastion.simulators.paper.venue import PaperVenue

__all__ = [
    "MAX_MESSAGE_BYTES",
    "RpcRequest",
    "decode",
    "dispatch",
    "internal_error",
    "is_private",
    "is_served",
    "read",
]

logger = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 32 * 1024
"""Deribit's limit on one request (a POST body or a frame): -32600 beyond it."""


@dataclass(frozen=True, slots=True)
class RpcRequest:
    """One valid request: its id (``NO_ID`` when absent), method and named params."""

    rpc_id: Any
    method: str
    params: Params


def is_served(method: str) -> bool:
    return method in PUBLIC or method in PRIVATE


def is_private(method: str) -> bool:
    return method in PRIVATE


def decode(payload: bytes | str, *, what: str) -> dict[str, Any]:
    """The one JSON-RPC request object in ``payload`` (``what``: "body" or "frame")."""
    size = len(payload) if isinstance(payload, bytes) else len(payload.encode())
    if size > MAX_MESSAGE_BYTES:
        raise RpcError(INVALID_REQUEST, "request entity too large")
    try:
        decoded: Any = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise RpcError(PARSE_ERROR, data={"reason": f"{what} is not valid JSON"}) from None
    if not isinstance(decoded, dict):
        reason = f"{what} must be one JSON-RPC request object (batches are not supported)"
        raise RpcError(INVALID_REQUEST, data={"reason": reason})
    return {str(key): value for key, value in decoded.items()}


def read(message: dict[str, Any], *, require_id: bool, method: str | None = None) -> RpcRequest:
    """Check a decoded message; ``method`` is the one the transport named, if it names one."""
    rpc_id = message.get("id", NO_ID)
    if require_id and rpc_id is NO_ID:
        raise RpcError(INVALID_REQUEST, data={"reason": "a request needs an id"})
    named = message.get("method")
    if named is not None and not isinstance(named, str):
        raise RpcError(INVALID_REQUEST, data={"reason": "method must be a string"})
    if method is not None and named is not None and named != method:
        reason = f"method {named!r} in the body differs from {method!r} in the path"
        raise RpcError(INVALID_REQUEST, data={"reason": reason})
    chosen = method if method is not None else named
    if chosen is None:
        raise RpcError(INVALID_REQUEST, data={"reason": "method must be a string"})
    if not is_served(chosen):
        raise RpcError(METHOD_NOT_FOUND)
    raw = message.get("params")
    if raw is not None and not isinstance(raw, dict):
        raise invalid_param("params", "must be an object of named parameters")
    return RpcRequest(rpc_id, chosen, Params(raw or {}))


def dispatch(
    request: RpcRequest, *, venue: PaperVenue, auth: Authenticator, caller: Callable[[], str]
) -> Any:
    """Run the request's handler; ``caller`` names the client, and is asked for private calls
    only (it raises the transport's auth error when there is none)."""
    method = request.method
    handler = PUBLIC.get(method) or PRIVATE[method]
    client_id = caller() if method in PRIVATE else ""
    return handler(Call(venue, auth, request.params, client_id))


def internal_error(exc: Exception, method: str, *, transport: str) -> RpcError:
    """Log an unexpected exception and answer it as Deribit's 11094 internal_server_error."""
    logger.exception("paper exchange: unexpected error in %s over %s", method, transport)
    return RpcError(INTERNAL_SERVER_ERROR, data={"reason": f"unexpected {type(exc).__name__}"})
