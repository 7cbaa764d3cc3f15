"""Full-jitter backoff, the deadline, Retry-After, order safety and test mode."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.clock import SimClock
from bastion.errors import BastionError, ErrorCode, UsageError
from bastion.resilience.policy import POLICIES, policy_for
from bastion.resilience.retry import (
    Retrier,
    RetryDetails,
    RetrySettings,
    compute_backoff,
    process_offset,
    set_testing,
)


def _error(code: ErrorCode, retry_after: float | None = None) -> BastionError:
    return BastionError(code.name, code=code, retry_after=retry_after, dependency="dep")


def _retrier(seed: int = 7, **settings: float) -> Retrier:
    return Retrier(RetrySettings(seed=seed, offset=0.0, **settings), clock=SimClock())


@given(
    attempt=st.integers(min_value=0, max_value=2000),
    base=st.floats(min_value=0.001, max_value=10.0),
    cap=st.floats(min_value=0.001, max_value=100.0),
    seed=st.integers(),
    offset=st.floats(min_value=0.0, max_value=0.999999),
)
def test_full_jitter_stays_within_bounds(
    attempt: int, base: float, cap: float, seed: int, offset: float
) -> None:
    """Every wait lies in [0, min(cap, base·2ⁿ)], whatever the attempt, seed and offset."""
    wait = compute_backoff(attempt, base=base, cap=cap, rng=random.Random(seed), offset=offset)
    assert 0.0 <= wait <= min(cap, base * 2.0 ** min(attempt, 1000))


def test_backoff_is_reproducible_for_a_seed() -> None:
    """The same seed and offset give the same waits (replays are exact)."""
    first = [compute_backoff(n, base=0.5, cap=30, rng=random.Random(3)) for n in range(5)]
    again = [compute_backoff(n, base=0.5, cap=30, rng=random.Random(3)) for n in range(5)]
    assert first == again


def test_offset_desynchronises_processes_with_one_seed() -> None:
    """Two processes with one seed but different offsets draw different waits."""
    a = compute_backoff(3, base=0.5, cap=30, rng=random.Random(1), offset=0.1)
    b = compute_backoff(3, base=0.5, cap=30, rng=random.Random(1), offset=0.6)
    assert a != b
    assert 0.0 <= process_offset() < 1.0


def test_retries_stop_at_the_policy_limit() -> None:
    """A 504 (one retry) gets a wait for retry 0 and none for retry 1."""
    retrier = _retrier()
    error = BastionError("x", code=ErrorCode.TIMEOUT, http_status=504)
    policy = policy_for(error)
    assert retrier.next_wait(error, policy, retries_done=0, sends_order=False, remaining=60)
    assert retrier.next_wait(error, policy, retries_done=1, sends_order=False, remaining=60) is None


def test_retry_after_is_honoured() -> None:
    """A rate limit with Retry-After waits at least that long, even when jitter is smaller."""
    retrier = _retrier(base=0.001)
    error = _error(ErrorCode.RATE_LIMIT, retry_after=5.0)
    wait = retrier.next_wait(
        error, POLICIES[ErrorCode.RATE_LIMIT], retries_done=0, sends_order=False, remaining=60
    )
    assert wait == 5.0


def test_deadline_is_never_passed() -> None:
    """When the wait (here Retry-After) would end past the deadline, the call gives up."""
    retrier = _retrier()
    error = _error(ErrorCode.RATE_LIMIT, retry_after=10.0)
    policy = POLICIES[ErrorCode.RATE_LIMIT]
    assert (
        retrier.next_wait(error, policy, retries_done=0, sends_order=False, remaining=9.9) is None
    )
    assert retrier.next_wait(error, policy, retries_done=0, sends_order=False, remaining=11) == 10


@pytest.mark.parametrize(
    ("code", "retried"),
    [
        (ErrorCode.TIMEOUT, False),
        (ErrorCode.NETWORK, False),
        (ErrorCode.SERVER, False),
        (ErrorCode.INVALID_RESPONSE, False),
        (ErrorCode.RATE_LIMIT, True),
    ],
)
def test_order_sends_retry_only_when_not_accepted(code: ErrorCode, retried: bool) -> None:
    """An order send is retried after a rate limit, never after a timeout, network or 5xx."""
    retrier = _retrier()
    error = _error(code)
    wait = retrier.next_wait(error, POLICIES[code], retries_done=0, sends_order=True, remaining=60)
    assert (wait is not None) is retried


def test_auth_needs_a_way_to_refresh() -> None:
    """An auth failure is retried (at once) only when the caller can refresh credentials."""
    retrier = _retrier()
    error = _error(ErrorCode.AUTH)
    policy = POLICIES[ErrorCode.AUTH]
    assert retrier.next_wait(error, policy, retries_done=0, sends_order=True, remaining=60) is None
    assert (
        retrier.next_wait(
            error, policy, retries_done=0, sends_order=True, remaining=60, can_refresh=True
        )
        == 0.0
    )


def test_test_mode_makes_waits_zero_and_caps_attempts() -> None:
    """set_testing(True) zeroes waits; attempts=1 turns retries off altogether."""
    retrier = _retrier()
    error = _error(ErrorCode.RATE_LIMIT, retry_after=30.0)
    policy = POLICIES[ErrorCode.RATE_LIMIT]
    set_testing(True)
    assert retrier.next_wait(error, policy, retries_done=0, sends_order=False, remaining=1) == 0.0
    set_testing(True, attempts=1)
    assert retrier.next_wait(error, policy, retries_done=0, sends_order=False, remaining=60) is None
    with pytest.raises(UsageError):
        set_testing(True, attempts=0)


async def test_run_sleeps_on_the_clock_and_reports_each_retry() -> None:
    """run() retries through tenacity, sleeping the planned waits on the injected clock."""
    clock = SimClock()
    retrier = Retrier(RetrySettings(seed=1, offset=0.0), clock=clock)
    seen: list[RetryDetails] = []
    calls = 0

    async def attempt() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise _error(ErrorCode.SERVER)
        return "ok"

    async def before_retry(details: RetryDetails) -> None:
        seen.append(details)

    start = clock.monotonic()
    result = await retrier.run(
        _error(ErrorCode.SERVER),
        attempt,
        sends_order=False,
        deadline_at=start + 60,
        before_retry=before_retry,
    )
    assert (result, calls) == ("ok", 3)
    assert [d.retry for d in seen] == [1, 2, 3]
    assert clock.monotonic() - start == pytest.approx(sum(d.wait for d in seen))
    for n, details in enumerate(seen):
        assert 0.0 <= details.wait <= min(30.0, 0.5 * 2**n)


async def test_run_raises_the_last_error_when_spent() -> None:
    """When retries run out, the last classified error is raised as it is."""
    retrier = _retrier()
    last = _error(ErrorCode.NETWORK)

    async def attempt() -> None:
        raise last

    async def before_retry(details: RetryDetails) -> None:
        return None

    with pytest.raises(BastionError) as info:
        await retrier.run(
            _error(ErrorCode.NETWORK),
            attempt,
            sends_order=False,
            deadline_at=1e9,
            before_retry=before_retry,
        )
    assert info.value is last
