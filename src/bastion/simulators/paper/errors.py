"""Deribit JSON-RPC errors as the paper exchange raises and serves them.

Everything inside the simulator that refuses a request raises :class:`RpcError`; the app turns
it into Deribit's ``error`` object and picks the HTTP status with :func:`http_status_for`. The
codes and messages are the canonical Deribit list (shared/deribit.md §2), which is also what
ccxt classifies by, so a code chosen here decides which ccxt exception a client sees.

Convention for bad input (so every handler answers the same way):

- a required parameter is absent, or a value is not one of an enumeration → ``-32602``
  ``Invalid params`` with ``data={"reason", "param"}`` (Deribit's own answer to a bad currency);
- a value is present but malformed (not a number, too long, unsupported) → ``11029``
  ``invalid_arguments`` with the same ``data``;
- an order breaks a trading rule → the specific trading code (``10002``, ``10021``, ``10043``...).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AUTHORIZATION_REQUIRED",
    "BAD_REQUEST",
    "INTERNAL_SERVER_ERROR",
    "INVALID_ARGUMENTS",
    "INVALID_CREDENTIALS",
    "INVALID_INSTRUMENT",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "TOO_MANY_REQUESTS",
    "UNAUTHORIZED",
    "RpcError",
    "http_status_for",
    "invalid_argument",
    "invalid_param",
    "message_for",
]

AUTHORIZATION_REQUIRED = 10000
INVALID_INSTRUMENT = 10020
TOO_MANY_REQUESTS = 10028
INVALID_ARGUMENTS = 11029
BAD_REQUEST = 11050
INTERNAL_SERVER_ERROR = 11094
INVALID_CREDENTIALS = 13004
UNAUTHORIZED = 13009
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
PARSE_ERROR = -32700

_MESSAGES: dict[int, str] = {
    10000: "authorization_required",
    10002: "qty_too_low",
    10004: "order_not_found",
    10005: "price_too_low",
    10007: "price_too_high",
    10009: "not_enough_funds",
    10010: "already_closed",
    10020: "invalid_or_unsupported_instrument",
    10021: "invalid_amount",
    10028: "too_many_requests",
    10029: "not_owner_of_order",
    10030: "must_be_websocket_request",
    10040: "retry",
    10041: "settlement_in_progress",
    10043: "price_wrong_tick",
    11029: "invalid_arguments",
    11044: "not_open_order",
    11050: "bad_request",
    11051: "system_maintenance",
    11054: "post_only_reject",
    11094: "internal_server_error",
    13004: "invalid_credentials",
    13009: "unauthorized",
    13020: "not_found",
    13021: "forbidden",
    13028: "temporarily_unavailable",
    -32600: "Invalid Request",
    -32601: "Method not found",
    -32602: "Invalid params",
    -32700: "Parse error",
}

_AUTH_CODES = frozenset({AUTHORIZATION_REQUIRED, INVALID_CREDENTIALS, UNAUTHORIZED})


def message_for(code: int) -> str:
    """Deribit's message for ``code``; unknown codes get a generic ``error``."""
    return _MESSAGES.get(code, "error")


def http_status_for(code: int) -> int:
    """HTTP status of an error response: 401 for auth codes, 429 for rate limits, else 400.

    Deribit documents no status table; this is the recommendation of shared/deribit.md §2, and
    ccxt classifies by the JSON body first, so the status only matters to bare HTTP clients.
    """
    if code in _AUTH_CODES:
        return 401
    if code == TOO_MANY_REQUESTS:
        return 429
    return 400


class RpcError(Exception):
    """A Deribit JSON-RPC error: ``code``, ``message`` and optional ``data``."""

    def __init__(self, code: int, message: str | None = None, data: Any = None) -> None:
        self.code = code
        self.message = message if message is not None else message_for(code)
        self.data = data
        super().__init__(f"{self.code} {self.message}")

    def to_dict(self) -> dict[str, Any]:
        """The ``error`` member of the response envelope."""
        error: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.data is not None:
            error["data"] = self.data
        return error

    def __repr__(self) -> str:
        return f"RpcError(code={self.code}, message={self.message!r}, data={self.data!r})"


def invalid_param(param: str, reason: str) -> RpcError:
    """``-32602 Invalid params``: a parameter is missing or outside its enumeration."""
    return RpcError(INVALID_PARAMS, data={"reason": reason, "param": param})


def invalid_argument(param: str, reason: str) -> RpcError:
    """``11029 invalid_arguments``: a parameter is present but its value is malformed."""
    return RpcError(INVALID_ARGUMENTS, data={"reason": reason, "param": param})
