"""The one choke point for every external call: exchange, LLM, tool and peer agent.

Nothing in Bastion calls httpx or an SDK except inside a function handed to
:meth:`Resilience.call`. That is what makes every outbound request halt-aware, bounded in time,
classified into one :class:`~bastion.errors.ErrorCode`, retried the same way and measured the
same way.

One call runs::

    halt → breaker → timeout → retry → classify → record

1. **halt** — an order-sending call asks ``halt_check`` first (before every attempt); a
   :class:`~bastion.errors.HaltedError` means the dependency is never reached.
2. **breaker** — the dependency's breaker must admit the attempt; an open circuit fails fast
   with ``CIRCUIT_OPEN`` (``retry_after``: seconds until it half-opens). Each attempt's
   outcome is told to the breaker as its policy row's breaker column says
   (:class:`~bastion.resilience.policy.BreakerCount`): a broken dependency's failure counts at
   once, an answer counts as a success and withdraws the failures this call counted before it
   (retries recovered them), a rate limit counts as neither.
3. **timeout** — each attempt runs under ``asyncio.timeout(min(timeout, time left))``.
4. **retry** — per the failure's policy row (:mod:`~bastion.resilience.policy`), with full
   jitter, within the call's deadline (:mod:`~bastion.resilience.retry`); an auth failure
   awaits ``refresh`` and retries once; an order-sending call only after a failure that proves
   the order was not accepted.
5. **classify** — any failure becomes a :class:`~bastion.errors.BastionError` of the layer's
   class (:func:`~bastion.errors.classify`); one that already is passes through unchanged.
6. **record** — per attempt: the outcome counter (``ok`` or the code) and the duration
   histogram; per retry: the retry counter and a ``call_retried`` event with the wait; per
   call: an OpenTelemetry span on the runtime's tracer (``<dependency>``, kind CLIENT, with
   ``bastion.dependency``, ``bastion.layer``, ``bastion.outcome``: ``ok`` or the code,
   ``bastion.attempts`` and ``bastion.retries``; on failure ``error.type`` and the exception;
   :mod:`bastion.telemetry.tracing`) and, on final failure, a ``call_failed`` event. When
   the final failure's policy allows a fallback and the caller gave one, its answer is
   returned instead.

``asyncio.CancelledError`` is never caught, converted or recorded: cancellation belongs to the
caller.

Durations in metrics are wall time (``time.perf_counter``): they measure real I/O. Deadlines,
backoff and breakers use the injected clock.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Tracer

from bastion.clock import Clock, WallClock
from bastion.errors import (
    BastionError,
    ErrorCode,
    Layer,
    classify,
    error_class_for,
    error_message,
)
from bastion.events import EventKind, Journal
from bastion.resilience.breaker import (
    LAYER_DEFAULTS,
    BreakerChange,
    BreakerConfig,
    BreakerRegistry,
    BreakerState,
    CircuitBreaker,
    CountedFailure,
)
from bastion.resilience.policy import Action, BreakerCount, policy_for
from bastion.resilience.retry import Retrier, RetryDetails, RetrySettings
from bastion.telemetry.metrics import Metrics

__all__ = ["Resilience", "call", "classify_exception"]

T = TypeVar("T")

Fallback = Callable[[BastionError], Awaitable[T]]
Refresh = Callable[[BastionError], Awaitable[None]]


def classify_exception(
    exc: BaseException,
    dependency: str,
    *,
    timeout: float | None = None,
    error_class: type[BastionError] = BastionError,
) -> BastionError:
    """Compatibility name for :func:`bastion.errors.classify` of one exception."""
    return classify(exc, dependency=dependency, timeout=timeout, error_class=error_class)


@dataclass(slots=True)
class _Call(Generic[T]):
    """What one call needs on every attempt."""

    dependency: str
    fn: Callable[[], Awaitable[T]]
    layer: Layer
    timeout: float
    deadline_at: float
    circuit: CircuitBreaker | None
    sends_order: bool
    halt_check: Callable[[], None] | None
    error_class: type[BastionError]
    attempts: int = 0
    counted: list[CountedFailure] = field(default_factory=list)
    """Failures of this call's attempts still counting on the breaker: withdrawn if it recovers."""


class Resilience:
    """The choke point with its state: clock, breakers, retry settings, metrics, journal.

    One per runtime, injected into every adapter (``DeribitClient(resilience=...)``), so the
    breakers it holds are the ones the console shows. Its ``tracer`` (a no-op one unless given)
    is the runtime's, which the adapters that call through it (the LLM chain, the toolbox) use
    for their own spans too. ``breakers=None`` builds a registry with
    the layer defaults that reports to ``metrics`` and ``journal``; ``breakers=False`` runs
    without breakers (the module-level :func:`call`).
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        journal: Journal | None = None,
        breakers: BreakerRegistry | Literal[False] | None = None,
        retry: RetrySettings | None = None,
        breaker_defaults: Mapping[Layer, BreakerConfig] | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        """``breaker_defaults`` replaces layers' rows of ``LAYER_DEFAULTS`` in the registry
        built here (settings tune the LLM layer's)."""
        self.clock: Clock = clock or WallClock()
        self.metrics = metrics
        self.journal = journal
        if breakers is None:
            breakers = BreakerRegistry(
                clock=self.clock,
                defaults={**LAYER_DEFAULTS, **(breaker_defaults or {})},
                metrics=metrics,
                on_change=self._breaker_changed,
            )
        self.breakers: BreakerRegistry | None = None if breakers is False else breakers
        self.retrier = Retrier(retry, clock=self.clock)
        self.tracer: Tracer = tracer or trace.NoOpTracer()
        self._counters: dict[tuple[str, str, str], Any] = {}
        self._histograms: dict[tuple[str, str], Any] = {}

    async def call(
        self,
        dependency: str,
        fn: Callable[[], Awaitable[T]],
        *,
        layer: Layer,
        timeout: float,  # noqa: ASYNC109  the choke point owns the deadline; it applies asyncio.timeout
        fallback: Fallback[T] | None = None,
        sends_order: bool = False,
        halt_check: Callable[[], None] | None = None,
        breaker: str | None = None,
        deadline: float | None = None,
        refresh: Refresh | None = None,
    ) -> T:
        """Run ``fn`` as one guarded call to ``dependency`` and return its result.

        ``dependency`` names what is called (``"deribit public/ticker"``) and labels metrics
        and messages. ``timeout`` bounds each attempt; ``deadline`` (default: the retry
        settings', never less than ``timeout``) bounds the whole call, waits included.
        ``breaker`` names the breaker the call counts against (default: ``dependency``; the
        Deribit client uses one breaker for the venue). ``sends_order`` marks calls that may
        move money: ``halt_check`` runs before each attempt, and only failures that prove the
        order was not accepted are retried. ``refresh`` renews credentials before the one
        retry an auth failure allows. ``fallback`` answers with the final error when its policy
        row allows a fallback. Every failure leaves as a :class:`BastionError` of the layer's
        class.
        """
        breakers = self.breakers
        circuit = None if breakers is None else breakers.get(breaker or dependency, layer)
        budget = self.retrier.settings.deadline if deadline is None else deadline
        ctx = _Call(
            dependency,
            fn,
            layer,
            timeout,
            self.clock.monotonic() + budget,  # the call never outlives its deadline
            circuit,
            sends_order,
            halt_check,
            error_class_for(layer),
        )
        span = self.tracer.start_span(
            dependency,
            kind=SpanKind.CLIENT,
            attributes={"bastion.dependency": dependency, "bastion.layer": layer},
        )
        # Making a span current costs more than the rest of the call: only a recorded one is.
        if span.is_recording():
            with trace.use_span(span, end_on_exit=True):
                return await self._run(ctx, span, fallback, refresh)
        try:
            return await self._run(ctx, span, fallback, refresh)
        finally:
            span.end()

    async def _run(
        self,
        ctx: _Call[T],
        span: trace.Span,
        fallback: Fallback[T] | None,
        refresh: Refresh | None,
    ) -> T:
        try:
            try:
                result = await self._attempt(ctx)
            except BastionError as first:
                result = await self.retrier.run(
                    first,
                    lambda: self._attempt(ctx),
                    sends_order=ctx.sends_order,
                    deadline_at=ctx.deadline_at,
                    before_retry=lambda details: self._before_retry(ctx, details, refresh),
                    can_refresh=refresh is not None,
                )
        except BastionError as error:
            use_fallback = fallback is not None and policy_for(error).allows_fallback
            self._failed(ctx, error, span, fallback=use_fallback)
            if fallback is not None and use_fallback:
                return await fallback(error)
            raise
        if span.is_recording():
            span.set_attributes(
                {
                    "bastion.outcome": "ok",
                    "bastion.attempts": ctx.attempts,
                    "bastion.retries": ctx.attempts - 1,
                }
            )
        return result

    async def _attempt(self, ctx: _Call[T]) -> T:
        ctx.attempts += 1
        if ctx.sends_order and ctx.halt_check is not None:
            try:
                ctx.halt_check()
            except BastionError as exc:
                self._count(ctx, exc.code.value)
                raise
        circuit = ctx.circuit
        probe = circuit is not None and circuit.state is BreakerState.HALF_OPEN
        if circuit is not None and not circuit.acquire():
            self._count(ctx, ErrorCode.CIRCUIT_OPEN.value)
            raise self._circuit_open(ctx, circuit)
        limit = min(ctx.timeout, max(0.0, ctx.deadline_at - self.clock.monotonic()))
        started = time.perf_counter()
        began = self.clock.monotonic() if circuit is not None else 0.0
        expiry = asyncio.timeout(limit)
        try:
            async with expiry:
                result = await ctx.fn()
        except asyncio.CancelledError:
            if circuit is not None and probe:
                circuit.release()
            raise
        except Exception as exc:
            error = classify(
                exc,
                dependency=ctx.dependency,
                timeout=limit if expiry.expired() else None,
                now=self.clock.time(),
                error_class=ctx.error_class,
            )
            if circuit is not None:
                self._judge(ctx, circuit, error, self.clock.monotonic() - began, probe=probe)
            self._count(ctx, error.code.value, time.perf_counter() - started)
            if error is exc:
                raise
            raise error from exc
        if circuit is not None:
            self._answered(ctx, circuit, self.clock.monotonic() - began)
        self._count(ctx, "ok", time.perf_counter() - started)
        return result

    def _judge(
        self,
        ctx: _Call[Any],
        circuit: CircuitBreaker,
        error: BastionError,
        duration: float,
        *,
        probe: bool,
    ) -> None:
        """Tell the breaker what one failed attempt says, per its policy row's breaker column."""
        count = policy_for(error).breaker
        if count is BreakerCount.ATTEMPT:
            counted = circuit.on_failure(error.code.value)
            if counted is not None:
                ctx.counted.append(counted)
        elif count is BreakerCount.HEALTHY:
            self._answered(ctx, circuit, duration)
        elif probe:
            circuit.release()

    def _answered(self, ctx: _Call[Any], circuit: CircuitBreaker, duration: float) -> None:
        """The dependency answered this attempt: its call's earlier failures were recovered."""
        if ctx.counted:
            circuit.withdraw(ctx.counted)
            ctx.counted.clear()
        circuit.on_success(duration)

    def _circuit_open(self, ctx: _Call[Any], circuit: CircuitBreaker) -> BastionError:
        wait = circuit.retry_after()
        return ctx.error_class(
            error_message(
                ctx.dependency,
                ErrorCode.CIRCUIT_OPEN,
                f"({circuit.name} {circuit.state.value}; retry in {wait:.3g} s)",
            ),
            code=ErrorCode.CIRCUIT_OPEN,
            dependency=ctx.dependency,
            retry_after=wait,
        )

    async def _before_retry(
        self, ctx: _Call[Any], details: RetryDetails, refresh: Refresh | None
    ) -> None:
        error = details.error
        if self.metrics is not None:
            self.metrics.call_retries.labels(
                dependency=ctx.dependency, layer=ctx.layer, code=error.code.value
            ).inc()
        if self.journal is not None:
            self.journal.emit(
                EventKind.CALL_RETRIED,
                {
                    "dependency": ctx.dependency,
                    "layer": ctx.layer,
                    "retry": details.retry,
                    "wait": round(details.wait, 6),
                    "code": error.code.value,
                    "retry_after": error.retry_after,
                    "error": error.message,
                },
            )
        if refresh is not None and details.policy.action is Action.REFRESH_CREDENTIALS:
            await refresh(error)

    def _failed(
        self, ctx: _Call[Any], error: BastionError, span: trace.Span, *, fallback: bool
    ) -> None:
        if span.is_recording():
            span.set_attributes(
                {
                    "bastion.outcome": error.code.value,
                    "bastion.attempts": ctx.attempts,
                    "bastion.retries": ctx.attempts - 1,
                    "bastion.fallback": fallback,
                    "error.type": error.code.value,
                }
            )
            span.record_exception(error)
            span.set_status(trace.Status(trace.StatusCode.ERROR, error.message))
        if self.journal is not None:
            payload = error.to_dict()
            payload.update(layer=ctx.layer, attempts=ctx.attempts, fallback=fallback)
            payload.setdefault("dependency", ctx.dependency)
            self.journal.emit(EventKind.CALL_FAILED, payload)

    def _count(self, ctx: _Call[Any], outcome: str, duration: float | None = None) -> None:
        metrics = self.metrics
        if metrics is None:
            return
        key = (ctx.dependency, ctx.layer, outcome)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = metrics.external_calls.labels(*key)
        counter.inc()
        if duration is not None:
            pair = (ctx.dependency, ctx.layer)
            histogram = self._histograms.get(pair)
            if histogram is None:
                histogram = self._histograms[pair] = metrics.external_call_duration.labels(*pair)
            histogram.observe(duration)

    def _breaker_changed(self, change: BreakerChange) -> None:
        if self.journal is not None:
            self.journal.emit(EventKind.BREAKER_STATE_CHANGED, change.to_dict())


# Module-level call: no breakers (breaker state needs an owner that can show and reset it).
_bare: weakref.WeakKeyDictionary[Metrics, Resilience] = weakref.WeakKeyDictionary()
_bare_default: Resilience | None = None


def _without_breakers(metrics: Metrics | None) -> Resilience:
    global _bare_default  # noqa: PLW0603  one lazily built default for the convenience call
    if metrics is None:
        if _bare_default is None:
            _bare_default = Resilience(breakers=False)
        return _bare_default
    resilience = _bare.get(metrics)
    if resilience is None:
        resilience = _bare[metrics] = Resilience(metrics=metrics, breakers=False)
    return resilience


async def call(
    dependency: str,
    fn: Callable[[], Awaitable[T]],
    *,
    layer: Layer,
    timeout: float,  # noqa: ASYNC109  the choke point owns the deadline; it applies asyncio.timeout
    fallback: Fallback[T] | None = None,
    sends_order: bool = False,
    halt_check: Callable[[], None] | None = None,
    metrics: Metrics | None = None,
    resilience: Resilience | None = None,
    deadline: float | None = None,
) -> T:
    """:meth:`Resilience.call` on ``resilience``, or on a wall-clock one without breakers.

    For scripts and tests that have no runtime; a runtime injects its :class:`Resilience` so
    its breakers are shared and visible.
    """
    runner = resilience or _without_breakers(metrics)
    return await runner.call(
        dependency,
        fn,
        layer=layer,
        timeout=timeout,
        fallback=fallback,
        sends_order=sends_order,
        halt_check=halt_check,
        deadline=deadline,
    )
