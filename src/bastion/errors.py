"""One error taxonomy for every failure Bastion sees or raises.

Every failure carries an :class:`ErrorCode`; the code, not the exception class, decides what the
runtime does next (retry, trip a breaker, halt, tell a human: see
:mod:`bastion.resilience.policy`). Foreign failures (httpx exceptions, HTTP statuses, bodies that
are not what the API documents) are translated by :func:`classify`, here and only here. A
venue's own error codes are the venue adapter's to know: the Deribit client maps a JSON-RPC
error code to an :class:`ErrorCode` (:mod:`bastion.exchange.deribit`) and hands both to
:func:`classify`, which records the raw ``exchange_code`` and knows nothing of Deribit.

Exception tree::

    BastionError                 runtime conditions; always carry a code
    ├── ConfigError              bad settings at start-up: names the field and the fix
    ├── ExchangeError            an exchange answered with an error or could not be reached
    ├── LLMError                 a language model provider failed or refused
    ├── ToolError                a tool an agent called failed
    ├── PeerError                a peer agent failed or could not be reached
    ├── HaltedError              the kill switch is active; nothing may be sent
    ├── RiskRejected             an order intent broke a cap (carries limit and observed)
    └── BudgetExhausted          a token or USD budget cannot cover a call; nothing was sent

    UsageError (RuntimeError)    a developer called Bastion's API wrongly; never retried

This module imports no HTTP library: foreign exception classes are matched by their qualified
name along the MRO (most specific first), so the taxonomy stays importable by the pure core and
the table can still name every httpx class (a meta-test walks ``httpx.__all__``).
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any, Literal

__all__ = [
    "BastionError",
    "BudgetExhausted",
    "ConfigError",
    "ErrorCode",
    "ExchangeError",
    "HaltedError",
    "LLMError",
    "Layer",
    "PeerError",
    "RiskRejected",
    "ToolError",
    "UsageError",
    "classify",
    "code_for_exception",
    "code_for_http_status",
    "error_class_for",
    "error_message",
    "parse_retry_after",
]

Layer = Literal["exchange", "llm", "tool", "peer", "webhook"]
"""The kind of dependency a call reaches; picks the error class and the breaker defaults."""


class ErrorCode(StrEnum):
    """What went wrong, in words an operator and a policy table both understand."""

    NETWORK = "network"
    TIMEOUT = "timeout"
    AUTH = "auth"
    FORBIDDEN = "forbidden"
    RATE_LIMIT = "rate_limit"
    BAD_REQUEST = "bad_request"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
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
    """A classified failure. ``str()`` is the short operator message; the fields are data.

    ``timeout`` is the limit, in seconds, that expired when the failure is a deadline of ours
    (or of an adapter's) running out, so nothing needs to read it back out of the message.
    """

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
        timeout: float | None = None,
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
        self.timeout = timeout
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
            "timeout",
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
    """An exchange call failed; ``exchange_code`` holds the venue's own error code when known."""


class LLMError(BastionError):
    """A language-model call failed: provider down, refused, rate-limited or out of budget."""


class ToolError(BastionError):
    """A tool an agent called failed; its breaker opens for that tool only."""


class PeerError(BastionError):
    """A call to a peer agent failed or the peer could not be reached."""


class HaltedError(BastionError):
    """The kill switch is active. Catchable: the loop records it and stops sending."""

    default_code = ErrorCode.HALTED


class RiskRejected(BastionError):
    """An order intent broke a risk cap; ``limit`` and ``observed`` say by how much."""

    default_code = ErrorCode.RISK_REJECTED


class UsageError(RuntimeError):
    """Bastion's API was called wrongly by a developer. A bug to fix, never a runtime state."""


_LAYER_ERRORS: dict[str, type[BastionError]] = {
    "exchange": ExchangeError,
    "llm": LLMError,
    "tool": ToolError,
    "peer": PeerError,
}


def error_class_for(layer: Layer) -> type[BastionError]:
    """The exception class failures of ``layer`` are raised as."""
    return _LAYER_ERRORS.get(layer, BastionError)


# What an operator should do about each code: the tail of every message.
_HINTS: dict[ErrorCode, str] = {
    ErrorCode.NETWORK: "check connectivity to the host; retry after backoff",
    ErrorCode.TIMEOUT: "the dependency is slow or unreachable; retry after backoff",
    ErrorCode.AUTH: "check the client id and secret",
    ErrorCode.FORBIDDEN: "the API refused this IP or key",
    ErrorCode.RATE_LIMIT: "slow down; retry after backoff",
    ErrorCode.BAD_REQUEST: "fix the request; do not retry",
    ErrorCode.CONFLICT: "someone changed it first; re-read it, do not retry",
    ErrorCode.NOT_FOUND: "check the name or id",
    ErrorCode.INSUFFICIENT_FUNDS: "reduce the size or add funds",
    ErrorCode.BUDGET_EXHAUSTED: "top up the budget or halt",
    ErrorCode.CIRCUIT_OPEN: "failing fast while the dependency recovers",
    ErrorCode.SERVER: "failure on the far side; retry after backoff",
    ErrorCode.INVALID_RESPONSE: "unexpected reply; check the base URL points at the right API",
    ErrorCode.CONFIG: "fix the configuration",
}


def error_message(dependency: str, code: ErrorCode, detail: str = "") -> str:
    """The one message format: ``<dependency>: <CODE> <detail> — <what to do>``.

    >>> error_message("deribit public/ticker", ErrorCode.FORBIDDEN, "(HTTP 403)")
    'deribit public/ticker: FORBIDDEN (HTTP 403) — the API refused this IP or key'
    """
    text = f"{dependency}: {code.name}"
    if detail:
        text += f" {detail}"
    hint = _HINTS.get(code)
    if hint:
        text += f" — {hint}"
    return text


_HTTP_STATUSES: dict[int, ErrorCode] = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.AUTH,
    402: ErrorCode.BUDGET_EXHAUSTED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    408: ErrorCode.TIMEOUT,
    409: ErrorCode.CONFLICT,
    422: ErrorCode.BAD_REQUEST,
    429: ErrorCode.RATE_LIMIT,
    500: ErrorCode.SERVER,
    502: ErrorCode.SERVER,
    503: ErrorCode.SERVER,
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


# Foreign exception classes by qualified name. The most specific class along the MRO wins, so a
# subclass listed here overrides its base. Every exception httpx exports has its own row.
_EXCEPTIONS: dict[str, ErrorCode] = {
    "builtins.TimeoutError": ErrorCode.TIMEOUT,
    "builtins.ConnectionError": ErrorCode.NETWORK,
    "json.decoder.JSONDecodeError": ErrorCode.INVALID_RESPONSE,
    "pydantic_core._pydantic_core.ValidationError": ErrorCode.INVALID_RESPONSE,
    "httpx.HTTPError": ErrorCode.NETWORK,
    "httpx.RequestError": ErrorCode.NETWORK,
    "httpx.TransportError": ErrorCode.NETWORK,
    "httpx.TimeoutException": ErrorCode.TIMEOUT,
    "httpx.ConnectTimeout": ErrorCode.TIMEOUT,
    "httpx.ReadTimeout": ErrorCode.TIMEOUT,
    "httpx.WriteTimeout": ErrorCode.TIMEOUT,
    "httpx.PoolTimeout": ErrorCode.TIMEOUT,
    "httpx.NetworkError": ErrorCode.NETWORK,
    "httpx.ConnectError": ErrorCode.NETWORK,
    "httpx.ReadError": ErrorCode.NETWORK,
    "httpx.WriteError": ErrorCode.NETWORK,
    "httpx.CloseError": ErrorCode.NETWORK,
    "httpx.ProxyError": ErrorCode.NETWORK,
    "httpx.ProtocolError": ErrorCode.NETWORK,
    "httpx.RemoteProtocolError": ErrorCode.NETWORK,  # the peer broke HTTP (often a dropped link)
    "httpx.LocalProtocolError": ErrorCode.BAD_REQUEST,  # we built a request HTTP cannot carry
    "httpx.UnsupportedProtocol": ErrorCode.CONFIG,
    "httpx.InvalidURL": ErrorCode.CONFIG,
    "httpx.DecodingError": ErrorCode.INVALID_RESPONSE,
    "httpx.TooManyRedirects": ErrorCode.INVALID_RESPONSE,
    "httpx.HTTPStatusError": ErrorCode.INVALID_RESPONSE,  # fallback only: the status decides
    # Misuse of the httpx API inside an adapter: a bug to fix, so never retried.
    "httpx.CookieConflict": ErrorCode.BAD_REQUEST,
    "httpx.StreamError": ErrorCode.BAD_REQUEST,
    "httpx.StreamConsumed": ErrorCode.BAD_REQUEST,
    "httpx.StreamClosed": ErrorCode.BAD_REQUEST,
    "httpx.ResponseNotRead": ErrorCode.BAD_REQUEST,
    "httpx.RequestNotRead": ErrorCode.BAD_REQUEST,
}


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def code_for_exception(exc_type: type[BaseException]) -> ErrorCode:
    """Our code for a foreign exception class: its most specific row along the MRO."""
    for cls in exc_type.__mro__:
        code = _EXCEPTIONS.get(_qualname(cls))
        if code is not None:
            return code
    return ErrorCode.UNKNOWN


def _response_status(exc: BaseException) -> tuple[int | None, str | None]:
    """The HTTP status and Retry-After header of an exception that carries a response."""
    try:
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
        headers = getattr(response, "headers", None)
    except RuntimeError:  # httpx raises when no request or response was attached
        return None, None
    if not isinstance(status, int):
        return None, None
    retry_after = headers.get("Retry-After") if headers is not None else None
    return status, retry_after if isinstance(retry_after, str) else None


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` value (delta-seconds, or an HTTP date when ``now`` is given).

    Negative or past values are 0; anything unreadable is None.
    """
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    if now is None:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def classify(
    exc: BaseException | None = None,
    *,
    dependency: str,
    code: ErrorCode | None = None,
    http_status: int | None = None,
    exchange_code: int | None = None,
    invalid: str | None = None,
    detail: str | None = None,
    retry_after: float | None = None,
    timeout: float | None = None,
    now: float | None = None,
    error_class: type[BastionError] = BastionError,
) -> BastionError:
    """Translate one failure into a classified :class:`BastionError` (the caller raises it).

    The inputs, strongest first:

    * ``exc`` already a :class:`BastionError`: returned unchanged.
    * ``invalid`` (why a body is not what the API documents: not JSON, a missing field):
      ``INVALID_RESPONSE``.
    * ``code``: a venue adapter's reading of its own error (the Deribit client's JSON-RPC
      table), taken as is.
    * ``exc``: the exception table; an exception carrying a response (``HTTPStatusError``) is
      classified by its status and its ``Retry-After`` header. ``timeout`` is the limit that
      expired when the failure is our own deadline: it becomes the error's ``timeout``.
    * ``http_status`` alone: the status table.

    ``exchange_code`` (the venue's raw code) is recorded whatever decided the code.
    ``detail`` replaces the default parenthesised detail of the message. ``now`` (clock
    seconds) lets an HTTP-date ``Retry-After`` be read. A foreign ``exc`` becomes the result's
    ``__cause__``, as ``raise … from exc`` would make it.
    """
    if isinstance(exc, BastionError):
        return exc
    default_detail = ""
    expired: float | None = None
    if exc is not None:
        status, header = _response_status(exc)
        if status is not None:
            http_status = http_status if http_status is not None else status
            if retry_after is None:
                retry_after = parse_retry_after(header, now=now)
    if invalid is not None:
        code = ErrorCode.INVALID_RESPONSE
        default_detail = f"({invalid})"
    elif code is not None:
        default_detail = f"({exchange_code})" if exchange_code is not None else ""
    elif exc is not None and http_status is None:
        code = code_for_exception(type(exc))
        if isinstance(exc, TimeoutError) and timeout is not None:
            expired = timeout
            default_detail = f"after {timeout:.3g} s"
        else:
            default_detail = f"({type(exc).__name__})"
    elif http_status is not None:
        code = code_for_http_status(http_status)
        default_detail = f"(HTTP {http_status})"
    else:
        code = ErrorCode.UNKNOWN
    error = error_class(
        error_message(dependency, code, default_detail if detail is None else detail),
        code=code,
        dependency=dependency,
        http_status=http_status,
        exchange_code=exchange_code,
        retry_after=retry_after,
        timeout=expired,
    )
    if exc is not None:
        error.__cause__ = exc
    return error


class BudgetExhausted(BastionError):
    """A call was refused because a budget cannot cover it; nothing was sent.

    ``limit`` and ``observed`` are the scope's limit and what was used (or used and held) when
    the call was refused; ``need`` is the call's estimate, all in ``unit``.
    """

    default_code = ErrorCode.BUDGET_EXHAUSTED

    def __init__(
        self,
        message: str,
        *,
        limit: float,
        observed: float,
        scope: str,
        unit: Literal["tokens", "usd"],
        need: float,
        remaining: float,
        exhausted: bool = False,
    ) -> None:
        super().__init__(message, limit=limit, observed=observed, dependency="budget")
        self.scope = scope
        self.unit = unit
        self.need = need
        self.remaining = remaining
        self.exhausted = exhausted
        """True when the limit is used up, not merely too small for this call."""
