"""One error taxonomy for every failure Bastion sees or raises.

Every failure carries an :class:`ErrorCode`; the code, not the exception class, decides what the
runtime does next (retry, trip a breaker, halt, tell a human). Foreign exceptions (httpx, JSON
decoding, Deribit JSON-RPC errors) are translated here and only here, at the edge.

Exception tree::

    BastionError                 runtime conditions; always carry a code
    ├── ConfigError              bad settings at start-up: names the field and the fix
    ├── ExchangeError            an exchange answered with an error or could not be reached
    ├── HaltedError              the kill switch is active; nothing may be sent
    └── RiskRejected             an order intent broke a cap (carries limit and observed)

    UsageError (RuntimeError)    a developer called Bastion's API wrongly; never retried
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

__all__ = [
    "BastionError",
    "ConfigError",
    "ErrorCode",
    "ExchangeError",
    "HaltedError",
    "RiskRejected",
    "UsageError",
    "code_for_deribit",
    "code_for_http_status",
]


class ErrorCode(StrEnum):
    """What went wrong, in words an operator and a policy table both understand."""

    NETWORK = "network"
    TIMEOUT = "timeout"
    AUTH = "auth"
    FORBIDDEN = "forbidden"
    RATE_LIMIT = "rate_limit"
    BAD_REQUEST = "bad_request"
    NOT_FOUND = "not_found"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    BUDGET_EXHAUSTED = "budget_exhausted"
    CIRCUIT_OPEN = "circuit_open"
    HALTED = "halted"
    RISK_REJECTED = "risk_rejected"
    CONFIG = "config"
    SERVER = "server"
    INVALID_RESPONSE = "invalid_response"
    UNKNOWN = "unknown"


class BastionError(Exception):
    """A classified failure. ``str()`` is the short operator message; the fields are data."""

    default_code = ErrorCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode | None = None,
        dependency: str | None = None,
        http_status: int | None = None,
        exchange_code: int | None = None,
        retry_after: float | None = None,
        limit: Any = None,
        observed: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.dependency = dependency
        self.http_status = http_status
        self.exchange_code = exchange_code
        self.retry_after = retry_after
        self.limit = limit
        self.observed = observed

    @property
    def kind(self) -> str:
        """A stable, serialisable name for traces and the API."""
        return self.code.value

    def to_dict(self) -> dict[str, Any]:
        """The error as data: what traces, events and the API record."""
        data: dict[str, Any] = {"kind": self.kind, "message": self.message}
        for name in (
            "dependency",
            "http_status",
            "exchange_code",
            "retry_after",
            "limit",
            "observed",
        ):
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        return data

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "message")
        return f"{type(self).__name__}({self.message!r}, {fields})"


class ConfigError(BastionError):
    """Settings are wrong; raised at start-up before anything runs."""

    default_code = ErrorCode.CONFIG


class ExchangeError(BastionError):
    """An exchange call failed; ``exchange_code`` holds Deribit's JSON-RPC code when known."""


class HaltedError(BastionError):
    """The kill switch is active. Catchable: the loop records it and stops sending."""

    default_code = ErrorCode.HALTED


class RiskRejected(BastionError):
    """An order intent broke a risk cap; ``limit`` and ``observed`` say by how much."""

    default_code = ErrorCode.RISK_REJECTED


class UsageError(RuntimeError):
    """Bastion's API was called wrongly by a developer. A bug to fix, never a runtime state."""


# Deribit JSON-RPC error codes (shared/deribit.md §2) to our taxonomy.
_DERIBIT_CODES: dict[int, ErrorCode] = {
    10000: ErrorCode.AUTH,
    10002: ErrorCode.BAD_REQUEST,
    10004: ErrorCode.NOT_FOUND,
    10005: ErrorCode.BAD_REQUEST,
    10007: ErrorCode.BAD_REQUEST,
    10009: ErrorCode.INSUFFICIENT_FUNDS,
    10010: ErrorCode.NOT_FOUND,
    10020: ErrorCode.NOT_FOUND,
    10021: ErrorCode.BAD_REQUEST,
    10028: ErrorCode.RATE_LIMIT,
    10029: ErrorCode.FORBIDDEN,
    10030: ErrorCode.BAD_REQUEST,
    10040: ErrorCode.SERVER,
    10041: ErrorCode.SERVER,
    10043: ErrorCode.BAD_REQUEST,
    11029: ErrorCode.BAD_REQUEST,
    11044: ErrorCode.BAD_REQUEST,
    11050: ErrorCode.BAD_REQUEST,
    11051: ErrorCode.SERVER,
    11054: ErrorCode.BAD_REQUEST,
    11094: ErrorCode.SERVER,
    13004: ErrorCode.AUTH,
    13009: ErrorCode.AUTH,
    13020: ErrorCode.NOT_FOUND,
    13021: ErrorCode.FORBIDDEN,
    -32600: ErrorCode.BAD_REQUEST,
    -32601: ErrorCode.NOT_FOUND,
    -32602: ErrorCode.BAD_REQUEST,
    -32700: ErrorCode.BAD_REQUEST,
    -32000: ErrorCode.BAD_REQUEST,
}


def code_for_deribit(exchange_code: int) -> ErrorCode:
    """Our code for a Deribit JSON-RPC error code; unknown codes are ``UNKNOWN``."""
    return _DERIBIT_CODES.get(exchange_code, ErrorCode.UNKNOWN)


_HTTP_STATUSES: dict[int, ErrorCode] = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.AUTH,
    402: ErrorCode.BUDGET_EXHAUSTED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    408: ErrorCode.TIMEOUT,
    409: ErrorCode.BAD_REQUEST,
    422: ErrorCode.BAD_REQUEST,
    429: ErrorCode.RATE_LIMIT,
    504: ErrorCode.TIMEOUT,
}


def code_for_http_status(status: int) -> ErrorCode:
    """Our code for an HTTP status: exact matches first, then by class."""
    if status in _HTTP_STATUSES:
        return _HTTP_STATUSES[status]
    if 500 <= status < 600:
        return ErrorCode.SERVER
    if 400 <= status < 500:
        return ErrorCode.BAD_REQUEST
    return ErrorCode.INVALID_RESPONSE
