"""resilience.call: halt, breaker, timeout, retry, classification, record, fallback, cancel."""

from __future__ import annotations

import asyncio

import httpx
import pytest

import bastion.resilience as package
from bastion.clock import SimClock
from bastion.errors import BastionError, ErrorCode, ExchangeError, HaltedError, LLMError
from bastion.events import Event, EventKind, Journal
from bastion.resilience import (
    BreakerConfig,
    BreakerRegistry,
    BreakerState,
    Resilience,
    RetrySettings,
    call,
    classify_exception,
    error_message,
    policy_for,
    set_testing,
)
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
    set_testing(True, attempts=1)
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
    set_testing(True, attempts=1)
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


async def test_each_layer_raises_its_class() -> None:
    """An LLM failure leaves as an LLMError (not an ExchangeError), still with its code."""
    set_testing(True, attempts=1)

    async def fail() -> None:
        raise httpx.ConnectError("refused")

    with pytest.raises(BastionError) as info:
        await call("openai chat", fail, layer="llm", timeout=1)
    assert type(info.value) is LLMError
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


# -- the Resilience object: breaker, retries, events, fallback -------------------------------

TIGHT = BreakerConfig(failure_threshold=2, window=30.0, recovery_timeout=10.0)


class Far:
    """A scripted dependency: raises the queued failures in turn, then answers "pong"."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "pong"


def _resilience(
    clock: SimClock | None = None,
    *,
    metrics: Metrics | None = None,
    journal: Journal | None = None,
    breakers: BreakerRegistry | None = None,
) -> Resilience:
    clock = clock or SimClock()
    return Resilience(
        clock=clock,
        metrics=metrics,
        journal=journal,
        breakers=breakers or BreakerRegistry(clock=clock, overrides={"deribit": TIGHT}),
        retry=RetrySettings(seed=1, offset=0.0),
    )


def _journal() -> tuple[Journal, list[Event]]:
    journal = Journal(run_id="r")
    events: list[Event] = []
    journal.subscribe(events.append)
    return journal, events


def _server_error(status: int = 503) -> ExchangeError:
    return ExchangeError("503", code=ErrorCode.SERVER, http_status=status, dependency=DEP)


async def test_halt_comes_before_the_breaker() -> None:
    """A halted order send raises HaltedError even while the breaker is open; fn is not called."""
    resilience = _resilience()
    assert resilience.breakers is not None
    breaker = resilience.breakers.get("deribit", "exchange")
    breaker.on_failure()
    breaker.on_failure()
    far = Far()

    def halted() -> None:
        raise HaltedError("halted")

    with pytest.raises(HaltedError):
        await resilience.call(
            "deribit private/buy",
            far,
            layer="exchange",
            timeout=1,
            sends_order=True,
            halt_check=halted,
            breaker="deribit",
        )
    with pytest.raises(ExchangeError) as info:
        await resilience.call(
            "deribit private/buy", far, layer="exchange", timeout=1, breaker="deribit"
        )
    assert info.value.code is ErrorCode.CIRCUIT_OPEN
    assert info.value.retry_after == 10.0
    assert far.calls == 0


async def test_breaker_opens_fails_fast_then_closes_on_a_probe() -> None:
    """Failures open the breaker; open calls never reach fn; after recovery a probe closes it."""
    clock = SimClock()
    metrics = Metrics()
    journal, events = _journal()
    resilience = _resilience(clock, metrics=metrics, journal=journal)
    resilience.breakers = BreakerRegistry(
        clock=clock,
        metrics=metrics,
        overrides={"deribit": TIGHT},
        on_change=resilience._breaker_changed,
    )
    far = Far(*[_server_error() for _ in range(10)])
    with pytest.raises(ExchangeError) as info:
        await resilience.call(DEP, far, layer="exchange", timeout=1, breaker="deribit")
    assert info.value.code is ErrorCode.CIRCUIT_OPEN  # the third attempt met the open breaker
    assert far.calls == 2

    with pytest.raises(ExchangeError):
        await resilience.call(DEP, far, layer="exchange", timeout=1, breaker="deribit")
    assert far.calls == 2
    assert _calls(metrics, "circuit_open") == 2

    far.failures.clear()
    clock.advance(10)
    assert await resilience.call(DEP, far, layer="exchange", timeout=1, breaker="deribit") == "pong"
    assert resilience.breakers.get("deribit", "exchange").state is BreakerState.CLOSED
    moves = [e.payload["state"] for e in events if e.kind is EventKind.BREAKER_STATE_CHANGED]
    assert moves == ["open", "half_open", "closed"]


async def test_refusals_do_not_count_for_the_breaker() -> None:
    """404s prove the dependency is alive: they never open its breaker."""
    resilience = _resilience()
    for _ in range(5):
        far = Far(ExchangeError("404", code=ErrorCode.NOT_FOUND, http_status=404))
        with pytest.raises(ExchangeError):
            await resilience.call(DEP, far, layer="exchange", timeout=1, breaker="deribit")
    assert resilience.breakers is not None
    assert resilience.breakers.get("deribit", "exchange").state is BreakerState.CLOSED


async def test_retries_are_recorded_with_their_wait() -> None:
    """Each retry is counted and journaled with the wait taken; the clock moved by the waits."""
    clock = SimClock()
    metrics = Metrics()
    journal, events = _journal()
    resilience = _resilience(clock, metrics=metrics, journal=journal)
    far = Far(_server_error(), _server_error())
    start = clock.monotonic()
    assert await resilience.call(DEP, far, layer="exchange", timeout=1) == "pong"
    retried = [e.payload for e in events if e.kind is EventKind.CALL_RETRIED]
    assert [p["retry"] for p in retried] == [1, 2]
    assert all(p["code"] == "server" for p in retried)
    assert clock.monotonic() - start == pytest.approx(sum(p["wait"] for p in retried))
    assert _calls(metrics, "server") == 2
    assert _calls(metrics, "ok") == 1
    retries = metrics.registry.get_sample_value(
        "bastion_call_retries_total", {"dependency": DEP, "layer": "exchange", "code": "server"}
    )
    assert retries == 2


async def test_retry_after_is_waited_out() -> None:
    """A 429 with Retry-After 3 waits at least 3 s of clock time before the retry."""
    clock = SimClock()
    resilience = _resilience(clock)
    limited = ExchangeError("429", code=ErrorCode.RATE_LIMIT, http_status=429, retry_after=3.0)
    far = Far(limited)
    start = clock.monotonic()
    assert await resilience.call(DEP, far, layer="exchange", timeout=1) == "pong"
    assert clock.monotonic() - start >= 3.0


async def test_deadline_stops_retries() -> None:
    """When Retry-After would outlast the call's deadline, the call raises after one attempt."""
    resilience = _resilience()
    limited = ExchangeError("429", code=ErrorCode.RATE_LIMIT, http_status=429, retry_after=30.0)
    far = Far(limited)
    with pytest.raises(ExchangeError) as info:
        await resilience.call(DEP, far, layer="exchange", timeout=1, deadline=10)
    assert info.value is limited
    assert far.calls == 1


async def test_timeouts_are_retried_per_policy() -> None:
    """A dependency that hangs is cut at each attempt's timeout and tried 1 + retries times."""
    metrics = Metrics()
    resilience = _resilience(metrics=metrics)
    with pytest.raises(ExchangeError) as info:
        await resilience.call(DEP, _never, layer="exchange", timeout=0.001)
    assert info.value.code is ErrorCode.TIMEOUT
    assert _calls(metrics, "timeout") == 1 + policy_for(info.value).retry_attempts


async def test_order_send_is_not_retried_after_a_timeout() -> None:
    """An order send that timed out may have been accepted: it is never sent again."""
    resilience = _resilience()
    far = Far(TimeoutError())
    with pytest.raises(ExchangeError) as info:
        await resilience.call(
            "deribit private/buy", far, layer="exchange", timeout=1, sends_order=True
        )
    assert info.value.code is ErrorCode.TIMEOUT
    assert far.calls == 1


async def test_order_send_is_retried_after_a_rate_limit() -> None:
    """A rate-limited order was refused, so it is sent again and succeeds."""
    resilience = _resilience()
    far = Far(ExchangeError("429", code=ErrorCode.RATE_LIMIT, http_status=429))
    result = await resilience.call(
        "deribit private/buy", far, layer="exchange", timeout=1, sends_order=True
    )
    assert (result, far.calls) == ("pong", 2)


async def test_halt_is_rechecked_before_a_retry() -> None:
    """A halt that trips while an order send waits to retry stops the retry."""
    halted = False

    def halt_check() -> None:
        if halted:
            raise HaltedError("halted")

    async def limited() -> str:
        nonlocal halted
        halted = True
        raise ExchangeError("429", code=ErrorCode.RATE_LIMIT, http_status=429)

    with pytest.raises(HaltedError):
        await _resilience().call(
            "deribit private/buy",
            limited,
            layer="exchange",
            timeout=1,
            sends_order=True,
            halt_check=halt_check,
        )


async def test_auth_failure_refreshes_and_retries_once() -> None:
    """An auth failure awaits refresh() and retries exactly once; a second one is raised."""
    refreshed: list[ErrorCode] = []

    async def refresh(error: BastionError) -> None:
        refreshed.append(error.code)

    def auth() -> ExchangeError:
        return ExchangeError("401", code=ErrorCode.AUTH, http_status=401)

    resilience = _resilience()
    far = Far(auth())
    assert await resilience.call(DEP, far, layer="exchange", timeout=1, refresh=refresh) == "pong"
    assert refreshed == [ErrorCode.AUTH]

    far = Far(auth(), auth())
    with pytest.raises(ExchangeError):
        await resilience.call(DEP, far, layer="exchange", timeout=1, refresh=refresh)
    assert far.calls == 2


async def test_fallback_answers_when_the_policy_allows() -> None:
    """A 500 (cached fallback) is answered by the fallback; a 400 (fix input) is raised."""
    journal, events = _journal()
    resilience = _resilience(journal=journal)
    seen: list[BastionError] = []

    async def cached(error: BastionError) -> str:
        seen.append(error)
        return "cached"

    far = Far(*[_server_error(500) for _ in range(3)])
    assert await resilience.call(DEP, far, layer="exchange", timeout=1, fallback=cached) == "cached"
    assert [e.code for e in seen] == [ErrorCode.SERVER]
    assert far.calls == 3  # 1 + the two retries a 500 allows
    failed = [e.payload for e in events if e.kind is EventKind.CALL_FAILED]
    assert failed[-1]["fallback"] is True
    assert failed[-1]["attempts"] == 3

    far = Far(ExchangeError("400", code=ErrorCode.BAD_REQUEST, http_status=400))
    with pytest.raises(ExchangeError):
        await resilience.call(DEP, far, layer="exchange", timeout=1, fallback=cached)
    assert far.calls == 1
    assert len(seen) == 1


async def test_test_mode_makes_retries_instant() -> None:
    """With set_testing(True) a retried call takes no clock time at all."""
    set_testing(True)
    clock = SimClock()
    far = Far(_server_error(), _server_error())
    assert await _resilience(clock).call(DEP, far, layer="exchange", timeout=1) == "pong"
    assert clock.monotonic() == 0.0


async def test_the_deadline_bounds_the_whole_call_even_below_the_attempt_timeout() -> None:
    """A 1 s deadline with a 10 s attempt timeout: retries stop in time, the code stays NETWORK."""
    clock = SimClock()
    resilience = Resilience(clock=clock, breakers=False, retry=RetrySettings(deadline=1.0))
    attempts = 0

    async def refused() -> None:
        nonlocal attempts
        attempts += 1
        raise httpx.ConnectError("connection refused")

    started = clock.monotonic()
    with pytest.raises(ExchangeError) as info:
        await resilience.call("deribit public/get_time", refused, layer="exchange", timeout=10.0)
    assert info.value.code is ErrorCode.NETWORK
    assert clock.monotonic() - started <= 1.0
    assert attempts >= 1
