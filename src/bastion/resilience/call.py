"""The one choke point for every external call: exchange, LLM, tool and peer agent.

Nothing in Bastion calls httpx or an SDK except inside a function handed to :func:`call`. That
is what makes every outbound request halt-aware, bounded in time, classified into one
:class:`~bastion.errors.ErrorCode` and measured the same way.

The full order of one call is::

    halt → breaker → timeout → retry → classify → record

1. **halt** — an order-sending call asks ``halt_check`` first; a :class:`HaltedError` means the
   dependency is never reached.
2. **breaker** — an open circuit fails fast with ``CIRCUIT_OPEN``. *(Not yet: issue 3.)*
3. **timeout** — ``fn`` runs under ``asyncio.timeout``.
4. **retry** — retryable codes are retried with full jitter, never for order-sending calls
   unless the failure proves the order was not accepted. *(Not yet: issue 3.)*
5. **classify** — any failure becomes a :class:`BastionError` with a code
   (:func:`classify_exception`); one that already is passes through unchanged.
6. **record** — the duration histogram and the outcome counter (``ok`` or the code's value).

``asyncio.CancelledError`` is never caught, converted or recorded: cancellation belongs to the
caller.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

import httpx

from bastion.errors import BastionError, ErrorCode, ExchangeError, code_for_http_status
from bastion.telemetry.metrics import Metrics

__all__ = ["Layer", "call", "classify_exception", "error_class_for", "error_message"]

T = TypeVar("T")

Layer = Literal["exchange", "llm", "tool", "peer"]

# The exception class each layer raises; layers without their own class yet use the base.
_LAYER_ERRORS: dict[str, type[BastionError]] = {"exchange": ExchangeError}

# What an operator should do about each code: the tail of every message.
_HINTS: dict[ErrorCode, str] = {
    ErrorCode.NETWORK: "check connectivity to the host; retry after backoff",
    ErrorCode.TIMEOUT: "the dependency is slow or unreachable; retry after backoff",
    ErrorCode.AUTH: "check the client id and secret",
    ErrorCode.FORBIDDEN: "the credentials lack the scope for this call",
    ErrorCode.RATE_LIMIT: "slow down; retry after backoff",
    ErrorCode.BAD_REQUEST: "fix the request; do not retry",
    ErrorCode.NOT_FOUND: "check the name or id",
    ErrorCode.INSUFFICIENT_FUNDS: "reduce the size or add funds",
    ErrorCode.SERVER: "failure on the far side; retry after backoff",
    ErrorCode.INVALID_RESPONSE: "unexpected reply; check the base URL points at the right API",
    ErrorCode.CONFIG: "fix the configuration",
}


def error_class_for(layer: Layer) -> type[BastionError]:
    """The exception class failures of ``layer`` are raised as."""
    return _LAYER_ERRORS.get(layer, BastionError)


def error_message(dependency: str, code: ErrorCode, detail: str = "") -> str:
    """The one message format: ``<dependency>: <CODE> <detail> — <what to do>``.

    >>> error_message("deribit private/buy", ErrorCode.RATE_LIMIT, "(10028 too_many_requests)")
    'deribit private/buy: RATE_LIMIT (10028 too_many_requests) — slow down; retry after backoff'
    """
    text = f"{dependency}: {code.name}"
    if detail:
        text += f" {detail}"
    hint = _HINTS.get(code)
    if hint:
        text += f" — {hint}"
    return text


# httpx exceptions to codes, most specific first; the first isinstance match wins.
_HTTPX_CODES: tuple[tuple[type[Exception] | tuple[type[Exception], ...], ErrorCode], ...] = (
    (httpx.TimeoutException, ErrorCode.TIMEOUT),
    ((httpx.UnsupportedProtocol, httpx.InvalidURL), ErrorCode.CONFIG),
    (httpx.LocalProtocolError, ErrorCode.BAD_REQUEST),
    (httpx.TransportError, ErrorCode.NETWORK),  # NetworkError, RemoteProtocolError, ProxyError
    ((httpx.DecodingError, httpx.TooManyRedirects), ErrorCode.INVALID_RESPONSE),
)


def _httpx_code(exc: Exception) -> ErrorCode:
    """The code for an httpx exception (``UNKNOWN`` for the developer-misuse family)."""
    if isinstance(exc, httpx.HTTPStatusError):
        return code_for_http_status(exc.response.status_code)
    for types, code in _HTTPX_CODES:
        if isinstance(exc, types):
            return code
    return ErrorCode.UNKNOWN


def classify_exception(
    exc: BaseException,
    dependency: str,
    *,
    timeout: float | None = None,
    error_class: type[BastionError] = BastionError,
) -> BastionError:
    """Translate a foreign exception into a classified :class:`BastionError`.

    A :class:`BastionError` is returned unchanged (it is already classified). ``timeout`` is the
    limit that expired, when the failure is our own deadline, and goes into the message. The
    caller raises the result ``from exc``.
    """
    if isinstance(exc, BastionError):
        return exc
    http_status: int | None = None
    if isinstance(exc, TimeoutError):
        code = ErrorCode.TIMEOUT
        detail = f"after {timeout:g} s" if timeout is not None else "(TimeoutError)"
    elif isinstance(exc, httpx.HTTPError | httpx.InvalidURL):
        code = _httpx_code(exc)
        detail = f"({type(exc).__name__})"
        if isinstance(exc, httpx.HTTPStatusError):
            http_status = exc.response.status_code
            detail = f"(HTTP {http_status})"
    else:
        code = ErrorCode.UNKNOWN
        detail = f"({type(exc).__name__})"
    return error_class(
        error_message(dependency, code, detail),
        code=code,
        dependency=dependency,
        http_status=http_status,
    )


def _record(
    metrics: Metrics | None,
    dependency: str,
    layer: Layer,
    outcome: str,
    duration: float | None,
) -> None:
    if metrics is None:
        return
    metrics.external_calls.labels(dependency=dependency, layer=layer, outcome=outcome).inc()
    if duration is not None:
        metrics.external_call_duration.labels(dependency=dependency, layer=layer).observe(duration)


async def call(
    dependency: str,
    fn: Callable[[], Awaitable[T]],
    *,
    layer: Layer,
    timeout: float,  # noqa: ASYNC109  the choke point owns the deadline; it applies asyncio.timeout
    sends_order: bool = False,
    halt_check: Callable[[], None] | None = None,
    metrics: Metrics | None = None,
) -> T:
    """Run ``fn`` as one guarded call to ``dependency`` and return its result.

    ``dependency`` names what is called (``"deribit private/buy"``) and labels the metrics.
    ``sends_order`` marks calls that may move money: ``halt_check`` runs first and its
    :class:`HaltedError` stops the call before ``fn`` is touched (counted, not timed).
    Every failure leaves as a :class:`BastionError` (the layer's class) with a code.

    Durations are wall time (``time.perf_counter``): they measure real I/O, not simulated time.
    """
    if sends_order and halt_check is not None:
        try:
            halt_check()
        except BastionError as exc:
            _record(metrics, dependency, layer, exc.code.value, None)
            raise
    deadline = asyncio.timeout(timeout)
    started = time.perf_counter()
    try:
        async with deadline:
            result = await fn()
    except Exception as exc:
        error = classify_exception(
            exc,
            dependency,
            timeout=timeout if deadline.expired() else None,
            error_class=error_class_for(layer),
        )
        _record(metrics, dependency, layer, error.code.value, time.perf_counter() - started)
        if error is exc:
            raise
        raise error from exc
    _record(metrics, dependency, layer, "ok", time.perf_counter() - started)
    return result
