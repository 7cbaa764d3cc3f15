"""One request through an official provider SDK, and how its exceptions become coded errors.

:func:`send` is what both adapters do around the SDK call: the SDK's timeout set just past the
choke point's, failures turned into :class:`~bastion.errors.LLMError` s, the wall time kept.

The ``openai`` and ``anthropic`` SDKs share one generated exception hierarchy (timeout,
connection, status, response validation). Each adapter hands its SDK's classes to
:func:`classify_sdk_error` so the mapping lives in one place and matches the exchange's:
a status error is classified by its HTTP status and ``Retry-After`` header through
:func:`bastion.errors.classify`, a timeout reads ``llm openai/gpt-4o: TIMEOUT after 120 s``.

The SDKs' own retries are always off (``max_retries=0``): retrying is the choke point's job,
with the policy table, the breaker and the deadline; two retry loops would multiply.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bastion.errors import ErrorCode, LLMError, classify, error_message

__all__ = ["SdkErrors", "classify_sdk_error", "invalid_response", "send"]

# The choke point's asyncio.timeout owns the limit; the SDK's own is a backstop just past it.
_SDK_TIMEOUT_SLACK = 1.0


@dataclass(frozen=True, slots=True)
class SdkErrors:
    """One SDK's exception classes, most specific first where they nest; ``base`` is the root
    of its API errors."""

    base: type[Exception]
    timeout: type[BaseException]
    connection: type[BaseException]
    status: type[BaseException]
    validation: type[BaseException]


async def send(
    create: Callable[..., Awaitable[Any]],
    request: dict[str, Any],
    errors: SdkErrors,
    *,
    dependency: str,
    timeout: float,  # noqa: ASYNC109  handed to the SDK, which applies it to the request
) -> tuple[Any, float]:
    """One SDK request: its answer and wall time, or its failure as a coded ``LLMError``."""
    started = time.perf_counter()
    try:
        response = await create(**request, timeout=timeout + _SDK_TIMEOUT_SLACK)
    except errors.base as exc:
        raise classify_sdk_error(exc, errors, dependency=dependency, timeout=timeout) from exc
    except ValueError as exc:  # a body that is not JSON
        raise invalid_response(dependency, f"not JSON: {exc}") from exc
    return response, time.perf_counter() - started


def classify_sdk_error(
    exc: BaseException, errors: SdkErrors, *, dependency: str, timeout: float
) -> LLMError:
    """The coded error for an SDK exception raised by one request."""
    if isinstance(exc, errors.timeout):  # a subclass of the connection error: test it first
        error = classify(TimeoutError(), dependency=dependency, timeout=timeout)
    elif isinstance(exc, errors.connection) and _bad_url(exc):
        detail = f"({type(exc.__cause__).__name__}: the base URL cannot be used)"
        return LLMError(
            error_message(dependency, ErrorCode.CONFIG, detail),
            code=ErrorCode.CONFIG,
            dependency=dependency,
        )
    elif isinstance(exc, errors.connection):
        error = classify(ConnectionError(), dependency=dependency, detail=f"({type(exc).__name__})")
    elif isinstance(exc, errors.status):
        error = classify(exc, dependency=dependency)
    elif isinstance(exc, errors.validation):
        return invalid_response(dependency, "body does not match the API schema")
    else:
        error = classify(exc, dependency=dependency)
    return LLMError(
        error.message,
        code=error.code,
        dependency=dependency,
        http_status=error.http_status,
        retry_after=error.retry_after,
    )


# What the SDK's HTTP client raises for a URL it cannot use. Matched by class name: depending
# on their version the SDKs run on httpx or on its fork httpx2, whose classes differ.
_URL_ERRORS = frozenset({"UnsupportedProtocol", "InvalidURL"})


def _bad_url(exc: BaseException) -> bool:
    return type(exc.__cause__).__name__ in _URL_ERRORS


def invalid_response(dependency: str, why: str) -> LLMError:
    """A reply the provider's API does not document: no choices, no JSON, no usage."""
    return LLMError(
        error_message(dependency, ErrorCode.INVALID_RESPONSE, f"({why})"),
        code=ErrorCode.INVALID_RESPONSE,
        dependency=dependency,
    )
