"""Deribit's JSON-RPC response envelope, shared by the HTTP and the WebSocket endpoints.

One function, so both transports answer with the same fields in the same order: that is what
keeps a seeded session byte-identical whichever way a client talks to the paper exchange.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from bastion.simulators.paper.errors import INTERNAL_SERVER_ERROR, RpcError

__all__ = ["NO_ID", "encode_envelope"]

logger = logging.getLogger(__name__)

NO_ID: Any = object()
"""The request carried no ``id``: the response carries none either."""


def _payload(
    us_in: int, us_out: int, rpc_id: Any, *, result: Any, error: RpcError | None, testnet: bool
) -> dict[str, Any]:
    payload: dict[str, Any] = {"jsonrpc": "2.0"}
    if rpc_id is not NO_ID:
        payload["id"] = rpc_id
    if error is None:
        payload["result"] = result
    else:
        payload["error"] = error.to_dict()
    payload |= {"usIn": us_in, "usOut": us_out, "usDiff": us_out - us_in}
    payload["testnet"] = testnet
    return payload


def encode_envelope(
    us_in: int,
    us_out: int,
    rpc_id: Any,
    *,
    testnet: bool,
    result: Any = None,
    error: RpcError | None = None,
) -> tuple[bytes, RpcError | None]:
    """The encoded envelope and the error it carries (an encoding failure becomes 11094).

    A result that cannot be encoded is answered with an internal error and no ``id`` (the id
    itself may be what failed); if even that fails, the exception propagates rather than loop.
    """
    try:
        return orjson.dumps(
            _payload(us_in, us_out, rpc_id, result=result, error=error, testnet=testnet)
        ), error
    except orjson.JSONEncodeError:
        logger.exception("paper exchange: unserialisable response")
        if error is not None and error.code == INTERNAL_SERVER_ERROR:
            raise
        fallback = RpcError(INTERNAL_SERVER_ERROR, data={"reason": "unserialisable response"})
        body = orjson.dumps(
            _payload(us_in, us_out, NO_ID, result=None, error=fallback, testnet=testnet)
        )
        return body, fallback
