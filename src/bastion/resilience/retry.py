"""Retries with exponential backoff and full jitter, driven by tenacity, bounded by a deadline.

The arithmetic is pure and kept apart from the sleeping (as stamina keeps ``_compute_backoff``
apart from ``_smart_sleep``): :func:`compute_backoff` draws one wait, :meth:`Retrier.next_wait`
decides from the policy row, the deadline and the order-safety rule whether there is a next
attempt at all, and only :meth:`Retrier.run` sleeps, on the injected
:class:`~bastion.clock.Clock` (so a :class:`~bastion.clock.SimClock` test is instant).

**Full jitter.** The n-th retry (n = 0, 1, …) waits ``min(cap, base·2ⁿ)·U(0, 1)``: spread over
the whole interval, so clients that failed together do not come back together.

**Per-process offset.** Jitter is drawn from a seeded generator (Bastion is deterministic for a
seed), so a fleet started with one seed would draw the same jitter and retry in step. Each
process therefore also draws, once and from the OS, an offset φ in [0, 1) and uses
``(U + φ) mod 1`` as its jitter fraction. The result still lies in ``[0, min(cap, base·2ⁿ))``
and is still uniform, a replay with the same seed and offset is exact, and two processes with
one seed are shifted apart by their offsets. A forked child draws a new offset.

**Never resend an order that may have been accepted.** An order-sending call is retried only
after a failure that proves the order was not accepted (``Policy.proves_not_accepted``: rate
limit, auth, circuit open, refusals); never after a timeout, a dropped connection or a 5xx.

**Test mode.** :func:`set_testing` makes every wait zero (and can cap attempts) for the whole
process, for Bastion's tests and users' tests alike; reset it in a fixture.
"""

from __future__ import annotations

import os
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, stop_never

from bastion.clock import Clock
from bastion.errors import BastionError, UsageError
from bastion.resilience.policy import Action, Policy, policy_for

__all__ = [
    "Retrier",
    "RetryDetails",
    "RetrySettings",
    "compute_backoff",
    "is_testing",
    "process_offset",
    "set_testing",
]

T = TypeVar("T")

_testing = False
_testing_attempts: int | None = None


def set_testing(testing: bool, *, attempts: int | None = None) -> None:
    """Turn test mode on or off: waits become zero; ``attempts`` caps attempts per call."""
    global _testing, _testing_attempts  # noqa: PLW0603  test mode is process-wide by design
    if attempts is not None and attempts < 1:
        raise UsageError(f"attempts must be at least 1, got {attempts}")
    _testing = testing
    _testing_attempts = attempts if testing else None


def is_testing() -> bool:
    """Whether test mode is on."""
    return _testing


def _draw_offset() -> float:
    return random.SystemRandom().random()


_offset = _draw_offset()


def _redraw_offset() -> None:
    global _offset  # noqa: PLW0603  one offset per process, redrawn in a forked child
    _offset = _draw_offset()


os.register_at_fork(after_in_child=_redraw_offset)


def process_offset() -> float:
    """This process's jitter offset in [0, 1), drawn once from the OS."""
    return _offset


def compute_backoff(
    attempt: int, *, base: float, cap: float, rng: random.Random, offset: float = 0.0
) -> float:
    """The wait before retry ``attempt`` (0 for the first): ``min(cap, base·2ⁿ)·((U+φ) mod 1)``."""
    ceiling = min(cap, base * 2.0 ** min(attempt, 1000))
    return ceiling * ((rng.random() + offset) % 1.0)


@dataclass(frozen=True, slots=True)
class RetrySettings:
    """Backoff parameters and the overall deadline of one call, in seconds.

    ``seed`` makes the jitter reproducible; ``offset`` pins the per-process offset (None: this
    process's :func:`process_offset`).
    """

    base: float = 0.5
    cap: float = 30.0
    deadline: float = 60.0
    seed: int | None = None
    offset: float | None = None
    min_attempt: float = 0.25
    """Time an attempt needs after its wait: a retry that would start later than this before
    the deadline gives up instead, keeping the last error (a NETWORK failure stays NETWORK
    rather than becoming a zero-second TIMEOUT at the deadline)."""


@dataclass(frozen=True, slots=True)
class RetryDetails:
    """One retry about to happen: the failure, its policy row, which retry and the wait."""

    retry: int
    wait: float
    error: BastionError
    policy: Policy


class Retrier:
    """Plans and runs the retries of one runtime on tenacity, sleeping on the injected clock."""

    def __init__(self, settings: RetrySettings | None = None, *, clock: Clock) -> None:
        self.settings = settings or RetrySettings()
        self._clock = clock
        self._rng = random.Random(self.settings.seed)  # noqa: S311  jitter, not cryptography
        self._offset = (
            self.settings.offset if self.settings.offset is not None else process_offset()
        )

    def next_wait(
        self,
        error: BastionError,
        policy: Policy,
        *,
        retries_done: int,
        sends_order: bool,
        remaining: float,
        can_refresh: bool = False,
    ) -> float | None:
        """The wait before the next attempt, or None when the call must give up now.

        Gives up when the policy allows no more retries, when an order may have been accepted,
        when a credential refresh is called for but there is no way to refresh, or when the
        wait (at least ``Retry-After`` where the policy honours it) would not leave
        ``min_attempt`` seconds before the deadline (``remaining`` seconds away).
        """
        if sends_order and not policy.proves_not_accepted:
            return None
        if policy.action is Action.REFRESH_CREDENTIALS and not can_refresh:
            return None
        limit = policy.retry_attempts
        if _testing and _testing_attempts is not None:
            limit = min(limit, _testing_attempts - 1)
        if retries_done >= limit:
            return None
        settings = self.settings
        wait = 0.0
        if policy.backoff:
            wait = compute_backoff(
                retries_done,
                base=settings.base,
                cap=settings.cap,
                rng=self._rng,
                offset=self._offset,
            )
        if policy.honour_retry_after and error.retry_after is not None:
            wait = max(wait, error.retry_after)
        if _testing:
            wait = 0.0
        if wait >= remaining - self.settings.min_attempt:
            return None
        return wait

    async def run(
        self,
        first: BastionError,
        attempt: Callable[[], Awaitable[T]],
        *,
        sends_order: bool,
        deadline_at: float,
        before_retry: Callable[[RetryDetails], Awaitable[None]],
        can_refresh: bool = False,
    ) -> T:
        """Carry on after the first attempt failed with ``first``; return or raise the last.

        ``deadline_at`` is on the clock's monotonic scale. ``before_retry`` runs before each
        wait (it records the retry and may refresh credentials). Tenacity drives the loop; the
        first attempt ran outside it, so a call that succeeds at once never builds one.
        """
        pending: list[BastionError] = [first]
        planned: list[float] = [0.0]

        async def next_attempt() -> T:
            if pending:
                raise pending.pop()
            return await attempt()

        def should_retry(state: RetryCallState) -> bool:
            outcome = state.outcome
            error = outcome.exception() if outcome is not None and outcome.failed else None
            if not isinstance(error, BastionError):
                return False
            wait = self.next_wait(
                error,
                policy_for(error),
                retries_done=state.attempt_number - 1,
                sends_order=sends_order,
                remaining=deadline_at - self._clock.monotonic(),
                can_refresh=can_refresh,
            )
            if wait is None:
                return False
            planned[0] = wait
            return True

        async def announce(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            assert isinstance(error, BastionError)  # should_retry let only these through
            await before_retry(
                RetryDetails(state.attempt_number, planned[0], error, policy_for(error))
            )

        retrying = AsyncRetrying(
            sleep=self._sleep,
            stop=stop_never,
            wait=lambda state: planned[0],
            retry=should_retry,
            before_sleep=announce,
        )
        return await retrying(next_attempt)

    async def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            await self._clock.sleep(seconds)
