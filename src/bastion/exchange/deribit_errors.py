"""Deribit's JSON-RPC errors in Bastion's taxonomy: the table and the one translation.

Deribit knowledge stays in the adapter: :mod:`bastion.errors` knows HTTP and foreign exception
classes, not venue codes. Both transports (HTTP in :mod:`bastion.exchange.deribit`, WebSocket in
:mod:`bastion.exchange.deribit_ws`) turn an ``error`` object into an error through
:func:`rpc_error`, so a code means the same on either.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

from bastion.errors import BastionError, ErrorCode, ExchangeError, classify

__all__ = ["DERIBIT_CODES", "code_for_deribit", "rpc_error"]


DERIBIT_CODES: Mapping[int, ErrorCode] = {
    10000: ErrorCode.AUTH,  # authorization_required
    10002: ErrorCode.BAD_REQUEST,  # qty_too_low
    10004: ErrorCode.NOT_FOUND,  # order_not_found
    10005: ErrorCode.BAD_REQUEST,  # price_too_low
    10007: ErrorCode.BAD_REQUEST,  # price_too_high
    10009: ErrorCode.INSUFFICIENT_FUNDS,  # not_enough_funds
    10010: ErrorCode.NOT_FOUND,  # already_closed
    10020: ErrorCode.NOT_FOUND,  # invalid_or_unsupported_instrument
    10021: ErrorCode.BAD_REQUEST,  # invalid_amount
    10028: ErrorCode.RATE_LIMIT,  # too_many_requests
    10029: ErrorCode.NOT_FOUND,  # not_owner_of_order: not an order of ours (ccxt OrderNotFound)
    10030: ErrorCode.BAD_REQUEST,  # must_be_websocket_request
    10040: ErrorCode.SERVER,  # retry
    10041: ErrorCode.SERVER,  # settlement_in_progress
    10043: ErrorCode.BAD_REQUEST,  # price_wrong_tick
    11029: ErrorCode.BAD_REQUEST,  # invalid_arguments
    11044: ErrorCode.BAD_REQUEST,  # not_open_order
    11050: ErrorCode.BAD_REQUEST,  # bad_request
    11051: ErrorCode.SERVER,  # system_maintenance
    11054: ErrorCode.BAD_REQUEST,  # post_only_reject
    11094: ErrorCode.SERVER,  # internal_server_error
    13004: ErrorCode.AUTH,  # invalid_credentials
    13009: ErrorCode.AUTH,  # unauthorized
    13020: ErrorCode.NOT_FOUND,  # not_found
    13021: ErrorCode.FORBIDDEN,  # forbidden
    13028: ErrorCode.SERVER,  # temporarily_unavailable
    -32600: ErrorCode.BAD_REQUEST,  # Invalid Request
    -32601: ErrorCode.NOT_FOUND,  # Method not found
    -32602: ErrorCode.BAD_REQUEST,  # Invalid params
    -32700: ErrorCode.BAD_REQUEST,  # Parse error
    -32000: ErrorCode.BAD_REQUEST,  # JSON-RPC implementation-defined error
}
"""Deribit's JSON-RPC error codes (the "RPC Error Codes" list of the API v2 docs) in our
taxonomy; a code not listed is ``UNKNOWN``."""


def code_for_deribit(exchange_code: int) -> ErrorCode:
    """Our code for a Deribit JSON-RPC error code; unknown codes are ``UNKNOWN``."""
    return DERIBIT_CODES.get(exchange_code, ErrorCode.UNKNOWN)


def rpc_error(
    dependency: str,
    error: Mapping[str, Any],
    *,
    redact: Callable[[str], str],
    http_status: int | None = None,
    retry_after: float | None = None,
) -> BastionError:
    """The :class:`~bastion.errors.ExchangeError` a JSON-RPC ``error`` object stands for.

    ``error["code"]`` (an int) is classified by :data:`DERIBIT_CODES` and kept as
    ``exchange_code``; Deribit's message and ``data.reason``, cut to 200 characters and passed
    through ``redact``, become the message's detail.
    """
    number = cast("int", error["code"])
    text = str(error.get("message", ""))
    data = error.get("data")
    if isinstance(data, dict) and data.get("reason"):
        text = f"{text}: {data['reason']}" if text else str(data["reason"])
    return classify(
        dependency=dependency,
        code=code_for_deribit(number),
        exchange_code=number,
        detail=redact(f"({number} {text[:200]})" if text else f"({number})"),
        http_status=http_status,
        retry_after=retry_after,
        error_class=ExchangeError,
    )
