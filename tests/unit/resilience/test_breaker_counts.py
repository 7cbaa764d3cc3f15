"""What one call tells its breaker: throttles never count, recovered failures are withdrawn.

The rule per code is the ``breaker`` column of the policy table; these tests drive it through
:meth:`Resilience.call` on a SimClock, the way the exchange client does.
"""

from __future__ import annotations

import pytest

from bastion.clock import SimClock
from bastion.errors import ErrorCode, ExchangeError
from bastion.resilience import (
    BreakerConfig,
    BreakerRegistry,
    BreakerState,
    CircuitBreaker,
    Resilience,
    RetrySettings,
)

DEP = "deribit private/get_account_summary"
WINDOWED = BreakerConfig(failure_threshold=5, window=30.0, recovery_timeout=15.0)
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


def _rig(config: BreakerConfig) -> tuple[Resilience, CircuitBreaker, SimClock]:
    clock = SimClock()
    resilience = Resilience(
        clock=clock,
        breakers=BreakerRegistry(clock=clock, overrides={"deribit": config}),
        retry=RetrySettings(seed=1, offset=0.0),
    )
    assert resilience.breakers is not None
    return resilience, resilience.breakers.get("deribit", "exchange"), clock


def _limited(retry_after: float | None = None) -> ExchangeError:
    return ExchangeError(
        "429", code=ErrorCode.RATE_LIMIT, http_status=429, retry_after=retry_after, dependency=DEP
    )


def _server(status: int = 503) -> ExchangeError:
    return ExchangeError(str(status), code=ErrorCode.SERVER, http_status=status, dependency=DEP)


def _timeout() -> ExchangeError:
    return ExchangeError("timeout", code=ErrorCode.TIMEOUT, dependency=DEP)


async def _call(resilience: Resilience, far: Far) -> str:
    return await resilience.call(DEP, far, layer="exchange", timeout=1, breaker="deribit")


async def test_rate_limited_attempts_recovered_within_a_call_leave_the_breaker_closed() -> None:
    """Three 429s then an answer: the call succeeds and the breaker counted nothing."""
    resilience, breaker, _ = _rig(TIGHT)
    far = Far(_limited(), _limited(retry_after=1.0), _limited())
    assert await _call(resilience, far) == "pong"
    assert far.calls == 4
    assert breaker.state is BreakerState.CLOSED
    assert breaker.failures() == 0


async def test_rate_limits_never_open_the_breaker_even_when_calls_give_up() -> None:
    """Calls that spend every retry on rate limits fail as RATE_LIMIT, never CIRCUIT_OPEN."""
    resilience, breaker, _ = _rig(TIGHT)
    for _ in range(5):
        with pytest.raises(ExchangeError) as info:
            await _call(resilience, Far(*[_limited() for _ in range(4)]))
        assert info.value.code is ErrorCode.RATE_LIMIT
    assert breaker.state is BreakerState.CLOSED
    assert breaker.failures() == 0


async def test_server_failures_that_retries_recovered_are_withdrawn() -> None:
    """Three calls that each recover from two 503s leave no failure behind (6 were seen)."""
    resilience, breaker, _ = _rig(WINDOWED)
    for _ in range(3):
        assert await _call(resilience, Far(_server(), _server())) == "pong"
    assert breaker.state is BreakerState.CLOSED
    assert breaker.failures() == 0


async def test_a_call_that_finally_fails_keeps_each_failed_attempt() -> None:
    """Four 503s in one call that gives up count four, so the next failure opens the breaker."""
    resilience, breaker, _ = _rig(WINDOWED)
    with pytest.raises(ExchangeError) as info:
        await _call(resilience, Far(*[_server() for _ in range(4)]))
    assert info.value.code is ErrorCode.SERVER
    assert (breaker.state, breaker.failures()) == (BreakerState.CLOSED, 4)

    far = Far(*[_server() for _ in range(4)])
    with pytest.raises(ExchangeError) as info:
        await _call(resilience, far)
    assert info.value.code is ErrorCode.CIRCUIT_OPEN  # opened by its first attempt
    assert far.calls == 1
    assert breaker.state is BreakerState.OPEN


async def test_withdrawal_takes_back_only_the_calls_own_failures() -> None:
    """A recovering call withdraws its own failures, not those of a call that gave up."""
    resilience, breaker, _ = _rig(WINDOWED)
    with pytest.raises(ExchangeError):  # a 500 is tried three times
        await _call(resilience, Far(*[_server(500) for _ in range(3)]))
    assert breaker.failures() == 3
    assert await _call(resilience, Far(_timeout())) == "pong"
    assert breaker.failures() == 3


async def test_a_refusal_after_a_failure_withdraws_it() -> None:
    """A 503 then a 404 in one call: the dependency answered, so the 503 is taken back."""
    resilience, breaker, _ = _rig(WINDOWED)
    refused = ExchangeError("404", code=ErrorCode.NOT_FOUND, http_status=404, dependency=DEP)
    with pytest.raises(ExchangeError) as info:
        await _call(resilience, Far(_server(), refused))
    assert info.value.code is ErrorCode.NOT_FOUND
    assert breaker.failures() == 0


async def test_a_rate_limited_probe_frees_its_slot_and_the_retry_closes_the_breaker() -> None:
    """Half-open: a probe answered 429 says nothing; its retry probes again and closes it."""
    resilience, breaker, clock = _rig(TIGHT)
    breaker.on_failure()
    breaker.on_failure()
    clock.advance(TIGHT.recovery_timeout)
    assert breaker.state is BreakerState.HALF_OPEN
    far = Far(_limited())
    assert await _call(resilience, far) == "pong"
    assert far.calls == 2
    assert breaker.state is BreakerState.CLOSED


async def test_a_probe_that_is_only_ever_rate_limited_leaves_the_breaker_half_open() -> None:
    """A throttled probe neither closes nor reopens; the next call may probe again."""
    resilience, breaker, clock = _rig(TIGHT)
    breaker.on_failure()
    breaker.on_failure()
    clock.advance(TIGHT.recovery_timeout)
    with pytest.raises(ExchangeError) as info:
        await _call(resilience, Far(*[_limited() for _ in range(4)]))
    assert info.value.code is ErrorCode.RATE_LIMIT
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.acquire()


async def test_a_failed_probe_reopens_at_once() -> None:
    """Half-open: a probe's 503 reopens the breaker; its retry fails fast."""
    resilience, breaker, clock = _rig(TIGHT)
    breaker.on_failure()
    breaker.on_failure()
    clock.advance(TIGHT.recovery_timeout)
    far = Far(_server(), _server())
    with pytest.raises(ExchangeError) as info:
        await _call(resilience, far)
    assert info.value.code is ErrorCode.CIRCUIT_OPEN
    assert far.calls == 1
    assert breaker.state is BreakerState.OPEN
