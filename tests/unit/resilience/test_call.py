"""resilience.call: halt first, deadline, classification, metrics, cancellation."""

from __future__ import annotations

import asyncio

import httpx
import pytest

import bastion.resilience as package
from bastion.errors import BastionError, ErrorCode, ExchangeError, HaltedError
from bastion.resilience import call, classify_exception, error_message
from bastion.telemetry.metrics import Metrics

DEP = "deribit public/ticker"


async def _never() -> None:
    await asyncio.Event().wait()


async def _ok() -> str:
    return "pong"


def _calls(metrics: Metrics, outcome: str, dependency: str = DEP) -> float | None:
    return metrics.registry.get_sample_value(
        "bastion_external_calls_total",
        {"dependency": dependency, "layer": "exchange", "outcome": outcome},
    )


def _timed(metrics: Metrics, dependency: str = DEP) -> float | None:
    return metrics.registry.get_sample_value(
        "bastion_external_call_duration_seconds_count",
        {"dependency": dependency, "layer": "exchange"},
    )


async def test_result_is_returned_and_recorded_ok() -> None:
    """A successful call returns fn's result and counts one ok outcome with one duration."""
    metrics = Metrics()
    assert await call(DEP, _ok, layer="exchange", timeout=1, metrics=metrics) == "pong"
    assert _calls(metrics, "ok") == 1
    assert _timed(metrics) == 1


async def test_deadline_becomes_timeout() -> None:
    """An fn that never finishes is cut at the deadline and raised as an ExchangeError TIMEOUT."""
    metrics = Metrics()
    with pytest.raises(ExchangeError) as info:
        await call(DEP, _never, layer="exchange", timeout=0.001, metrics=metrics)
    assert info.value.code is ErrorCode.TIMEOUT
    assert info.value.dependency == DEP
    assert str(info.value).startswith("deribit public/ticker: TIMEOUT after 0.001 s")
    assert isinstance(info.value.__cause__, TimeoutError)
    assert _calls(metrics, "timeout") == 1
    assert _timed(metrics) == 1


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (httpx.ConnectError("refused"), ErrorCode.NETWORK),
        (httpx.ReadError("reset"), ErrorCode.NETWORK),
        (httpx.RemoteProtocolError("bad frame"), ErrorCode.NETWORK),
        (httpx.ProxyError("proxy"), ErrorCode.NETWORK),
        (httpx.ConnectTimeout("slow"), ErrorCode.TIMEOUT),
        (httpx.ReadTimeout("slow"), ErrorCode.TIMEOUT),
        (httpx.PoolTimeout("busy"), ErrorCode.TIMEOUT),
        (httpx.UnsupportedProtocol("ftp"), ErrorCode.CONFIG),
        (httpx.LocalProtocolError("bad header"), ErrorCode.BAD_REQUEST),
        (httpx.DecodingError("gzip"), ErrorCode.INVALID_RESPONSE),
        (ValueError("boom"), ErrorCode.UNKNOWN),
    ],
)
async def test_foreign_exceptions_are_classified(exc: Exception, code: ErrorCode) -> None:
    """Each foreign exception raised by fn leaves as the layer's error class with its code."""
    metrics = Metrics()

    async def fail() -> None:
        raise exc

    with pytest.raises(ExchangeError) as info:
        await call(DEP, fail, layer="exchange", timeout=1, metrics=metrics)
    assert info.value.code is code
    assert info.value.__cause__ is exc
    assert _calls(metrics, code.value) == 1


def test_http_status_error_uses_the_status() -> None:
    """An httpx.HTTPStatusError is classified by its status code and keeps it."""
    request = httpx.Request("GET", "http://x/")
    exc = httpx.HTTPStatusError("429", request=request, response=httpx.Response(429))
    error = classify_exception(exc, DEP)
    assert (error.code, error.http_status) == (ErrorCode.RATE_LIMIT, 429)


def test_every_httpx_transport_error_is_mapped() -> None:
    """No httpx transport or timeout exception class is left to fall through to UNKNOWN."""
    for name in dir(httpx):
        cls = getattr(httpx, name)
        if isinstance(cls, type) and issubclass(cls, httpx.TransportError):
            error = classify_exception(cls("x"), DEP)
            assert error.code is not ErrorCode.UNKNOWN, name


async def test_other_layers_raise_the_base_class() -> None:
    """A layer without its own error class raises a BastionError (not an ExchangeError)."""

    async def fail() -> None:
        raise httpx.ConnectError("refused")

    with pytest.raises(BastionError) as info:
        await call("openai chat", fail, layer="llm", timeout=1)
    assert type(info.value) is BastionError
    assert info.value.code is ErrorCode.NETWORK


async def test_halt_check_stops_order_before_fn() -> None:
    """When halt_check raises HaltedError on an order-sending call, fn is never called."""
    metrics = Metrics()
    reached = False

    async def send() -> None:
        nonlocal reached
        reached = True

    def halted() -> None:
        raise HaltedError("halted: kill switch active")

    with pytest.raises(HaltedError):
        await call(
            "deribit private/buy",
            send,
            layer="exchange",
            timeout=1,
            sends_order=True,
            halt_check=halted,
            metrics=metrics,
        )
    assert not reached
    assert _calls(metrics, "halted", "deribit private/buy") == 1
    assert _timed(metrics, "deribit private/buy") is None


async def test_halt_check_ignored_for_reads() -> None:
    """halt_check guards order-sending calls only; reads still go through while halted."""

    def halted() -> None:
        raise HaltedError("halted")

    assert await call(DEP, _ok, layer="exchange", timeout=1, halt_check=halted) == "pong"


async def test_bastion_error_passes_through_unchanged() -> None:
    """A BastionError raised by fn is re-raised as the same object and still recorded."""
    metrics = Metrics()
    original = ExchangeError("deribit public/ticker: NOT_FOUND (10020)", code=ErrorCode.NOT_FOUND)

    async def fail() -> None:
        raise original

    with pytest.raises(ExchangeError) as info:
        await call(DEP, fail, layer="exchange", timeout=1, metrics=metrics)
    assert info.value is original
    assert info.value.__cause__ is None
    assert _calls(metrics, "not_found") == 1


async def test_cancellation_propagates() -> None:
    """Cancelling the caller raises CancelledError through call, unconverted and unrecorded."""
    metrics = Metrics()
    started = asyncio.Event()

    async def hang() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(call(DEP, hang, layer="exchange", timeout=60, metrics=metrics))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _timed(metrics) is None


def test_message_format() -> None:
    """Messages read '<dependency>: <CODE> <detail> — <what to do>'."""
    assert (
        error_message("deribit private/buy", ErrorCode.RATE_LIMIT, "(10028 too_many_requests)")
        == "deribit private/buy: RATE_LIMIT (10028 too_many_requests) — slow down; "
        "retry after backoff"
    )


def test_public_names_sorted_and_complete() -> None:
    """bastion.resilience re-exports a sorted __all__ and every name in it exists."""
    assert package.__all__ == sorted(package.__all__)
    assert all(hasattr(package, name) for name in package.__all__)
